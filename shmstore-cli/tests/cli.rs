//! Every subcommand of the built `shmstore` binary against real regions: `list`, `inspect`,
//! `watch`, `rm`, `gc`, `header`, and the exit codes; regions in `/dev/shm`, in files and in
//! System V segments.

mod common;

use common::*;
use serde_json::Value;
use shmstore::inspect::Inspector;
use shmstore::{Error, Location, QueueMode, Shm, ShmQueue, ShmType};

#[test]
fn child_process_entry() {
    child_action();
}

fn json(ran: &Ran) -> Value {
    serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("`{}` printed no JSON ({e}):\n{}", ran.what, ran.stdout))
}

fn row<'a>(table: &'a str, name: &str) -> &'a str {
    table
        .lines()
        .find(|line| line.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row for {name} in\n{table}"))
}

fn a_queue(name: &str) -> ShmQueue<Wheel, 8> {
    let queue = ShmQueue::<Wheel, 8>::options()
        .queue_mode(QueueMode::Mpmc)
        .create(name)
        .unwrap();
    queue
        .push(Wheel {
            pressure: 1.5,
            rpm: 10,
        })
        .unwrap();
    queue
        .push(Wheel {
            pressure: 2.5,
            rpm: 20,
        })
        .unwrap();
    queue
}

/// A region whose creator wrote the start of the header and died before finishing it: what
/// FORMAT.md's "States" leaves behind (state 1, no initialiser lock held).
fn an_incomplete_region(name: &str) -> u32 {
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    let pid = dead.id();
    dead.wait().unwrap();
    let mut header = vec![0u8; 4096];
    header[..8].copy_from_slice(b"SHMSTORE");
    header[8..12].copy_from_slice(&1u32.to_ne_bytes()); // format_version
    header[12..16].copy_from_slice(&256u32.to_ne_bytes()); // header_size
    header[16..20].copy_from_slice(&1u32.to_ne_bytes()); // state: initialising
    header[80..84].copy_from_slice(&pid.to_ne_bytes()); // creator_pid
    header[84..88].copy_from_slice(&40u32.to_ne_bytes()); // mutex_size (64-bit glibc)
    std::fs::write(std::path::Path::new(SHM_DIR).join(name), header).unwrap();
    pid
}

// ---- list ----

#[test]
fn list_shows_values_queues_incomplete_regions_and_foreign_objects() {
    let _scan = whole_shm_lock();
    let (value, _value) = region("list-value");
    let (queue, _queue) = region("list-queue");
    let (incomplete, _incomplete) = region("list-incomplete");
    let _shm = Shm::<Sample>::create(&value, sample()).unwrap();
    let _queue = a_queue(&queue);
    let dead_pid = an_incomplete_region(&incomplete);
    let (foreign, _foreign) = foreign_object(b"another program's bytes");
    let (empty, _empty) = foreign_object(b"");

    let ran = run(&["list"]);
    ran.ok();
    let header = ran.stdout.lines().next().unwrap();
    for column in [
        "NAME", "BACKEND", "KIND", "TYPE", "SIZE", "LEN", "VERSION", "CREATOR", "POISONED", "MODE",
        "OWNER",
    ] {
        assert!(header.contains(column), "no {column} column: {header}");
    }
    let me = std::process::id();
    let v = row(&ran.stdout, &value);
    for cell in [
        " posix ",
        "value",
        "Sample",
        "80 B",
        &format!("{me} alive"),
        "no",
        "0600",
    ] {
        assert!(v.contains(cell), "no `{cell}` in {v}");
    }
    let q = row(&ran.stdout, &queue);
    for cell in ["queue", "Wheel", "8 B x 8", " 2 ", &format!("{me} alive")] {
        assert!(q.contains(cell), "no `{cell}` in {q}");
    }
    let i = row(&ran.stdout, &incomplete);
    assert!(i.contains("incomplete"), "{i}");
    assert!(i.contains(&format!("{dead_pid} dead")), "{i}");
    let f = row(&ran.stdout, &foreign);
    assert!(f.contains("foreign"), "{f}");
    assert!(f.contains("(23 B)"), "{f}");
    // An empty object could be any program's segment before it is sized: foreign, not an
    // incomplete region.
    assert!(row(&ran.stdout, &empty).contains("foreign"));
}

#[test]
fn list_json_describes_every_object() {
    let _scan = whole_shm_lock();
    let (value, _value) = region("listjson-value");
    let (queue, _queue) = region("listjson-queue");
    let shm = Shm::<Sample>::options()
        .in_place(true)
        .create(&value, sample())
        .unwrap();
    shm.lock().unwrap().counter += 1;
    let _queue = a_queue(&queue);
    let (foreign, _foreign) = foreign_object(b"not a region");

    let ran = run(&["list", "--json"]);
    ran.ok();
    let all = json(&ran);
    let find = |name: &str| -> &Value {
        all.as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == name)
            .unwrap_or_else(|| panic!("{name} is not in the list"))
    };
    let v = find(&value);
    assert_eq!(v["backend"], "posix");
    assert_eq!(v["kind"], "value");
    assert_eq!(v["type"], "Sample");
    assert_eq!(v["size"], 80);
    assert_eq!(v["version"], shm.version());
    assert_eq!(v["in_place"], true);
    assert_eq!(v["poisoned"], false);
    assert_eq!(v["creator_pid"], std::process::id());
    assert_eq!(v["creator_alive"], true);
    assert_eq!(v["mode"], "0600");
    assert!(v["owner"].is_string());

    let q = find(&queue);
    assert_eq!(q["kind"], "queue");
    assert_eq!(q["type"], "Wheel");
    assert_eq!(q["size"], 8);
    assert_eq!(q["version"], Value::Null);
    assert_eq!(q["queue"]["mode"], "mpmc");
    assert_eq!(q["queue"]["capacity"], 8);
    assert_eq!(q["queue"]["len"], 2);
    assert_eq!(q["queue"]["closed"], false);

    let f = find(&foreign);
    assert_eq!(f["kind"], "foreign");
    assert_eq!(f["type"], Value::Null);
    assert_eq!(f["object_size"], 12);
    assert!(f["note"].as_str().unwrap().contains("magic"), "{f}");
}

// ---- inspect ----

#[test]
fn inspect_prints_the_header_and_every_field() {
    let (name, _cleanup) = region("inspect");
    let shm = Shm::<Sample>::create(&name, sample()).unwrap();
    let ran = run(&["inspect", &name]);
    ran.ok();
    let out = &ran.stdout;
    for line in [
        format!("region   {name}"),
        "kind     value, default mode (two copies, crash-atomic)".to_string(),
        "type     Sample (80 bytes, align 16)".to_string(),
        format!("creator  pid {} (alive)", std::process::id()),
        "  magic               SHMSTORE".to_string(),
        "  format_version      1".to_string(),
        "  state               2 (ready)".to_string(),
        "  flags               0x0 (in_place: no, notify_readers: no)".to_string(),
        format!(
            "  fingerprint         {:#018x}",
            <Sample as ShmType>::LAYOUT.fingerprint()
        ),
        "  payload_size        80".to_string(),
        "  payload_align       16".to_string(),
        "  kind                1 (value)".to_string(),
        "  queue_mode          0 (none)".to_string(),
        format!("value at version {}", shm.version()),
    ] {
        assert!(out.lines().any(|l| l == line), "no line `{line}` in\n{out}");
    }
    for field in [
        "payload_offset",
        "region_size",
        "descriptor_offset",
        "descriptor_len",
        "creator_pid",
        "mutex_size",
        "boot_id",
        "queue_capacity",
        "queue_element_size",
        "version",
        "waiters",
        "poisoned",
        "commit_in_progress",
        "read_requests",
        "reads_served",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("  {field} "))),
            "header field {field} missing in\n{out}"
        );
    }
    let fields: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(" = "))
        .map(str::trim)
        .collect();
    assert_eq!(fields, SAMPLE_LINES);

    // Long arrays are cut short, saying how much is left out.
    let short = run(&["inspect", &name, "--max-elements", "2"]);
    short.ok();
    assert!(
        short.stdout.contains("  samples = [1, 2, … (4 more)]\n"),
        "{}",
        short.stdout
    );
}

#[test]
fn inspect_json_has_the_header_and_typed_values() {
    let (name, _cleanup) = region("inspect-json");
    let _shm = Shm::<Sample>::options()
        .notify_readers(true)
        .create(&name, sample())
        .unwrap();
    let ran = run(&["inspect", &name, "--json"]);
    ran.ok();
    let v = json(&ran);
    assert_eq!(v["name"], name.as_str());
    assert_eq!(v["kind"], "value");
    assert_eq!(v["type"], "Sample");
    assert_eq!(v["version"], 0);
    let h = &v["header"];
    assert_eq!(h["magic"], "SHMSTORE");
    assert_eq!(h["format_version"], 1);
    assert_eq!(h["flags"]["in_place"], false);
    assert_eq!(h["flags"]["notify_readers"], true);
    assert_eq!(h["kind"], 1);
    assert_eq!(h["payload_size"], 80);
    assert_eq!(
        h["fingerprint"],
        format!("{:#018x}", <Sample as ShmType>::LAYOUT.fingerprint())
    );
    let field = |path: &str| -> &Value {
        v["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == path)
            .unwrap_or_else(|| panic!("no field {path}"))
    };
    assert_eq!(field("counter")["value"], 7);
    assert_eq!(field("counter")["type"], "u64");
    assert_eq!(field("counter")["offset"], 0);
    assert_eq!(field("tail")["value"], u64::MAX);
    // Outside the 64-bit range: a string, so that no reader rounds it.
    assert_eq!(
        field("big")["value"],
        "-170141183460469231731687303715884105728"
    );
    assert_eq!(field("pos.x")["value"], 1.5);
    assert_eq!(
        field("wheels[].rpm")["value"],
        serde_json::json!([100, 200])
    );
    assert_eq!(field("wheels[].rpm")["dims"], serde_json::json!([[2, 8]]));
    assert_eq!(field("samples")["count"], 6);
}

#[test]
fn inspect_shows_a_queue_and_its_oldest_element() {
    let (name, _cleanup) = region("inspect-queue");
    let _queue = a_queue(&name);
    let ran = run(&["inspect", &name]);
    ran.ok();
    let out = &ran.stdout;
    for line in [
        "kind     queue, mpmc, capacity 8, 2 queued, open",
        "  kind                2 (queue)",
        "  queue_mode          2 (mpmc)",
        "  queue_capacity      8",
        "  queue_element_size  8",
        "oldest element (of 2)",
        "  pressure = 1.5",
        "  rpm = 10",
    ] {
        assert!(out.lines().any(|l| l == line), "no line `{line}` in\n{out}");
    }
}

#[test]
fn inspect_explains_what_is_not_a_region() {
    let (missing, _missing) = region("inspect-missing");
    let ran = run(&["inspect", &missing]);
    ran.expect_failure(&format!("shmstore: region `{missing}` does not exist"));
    assert_eq!(ran.stderr.lines().count(), 1, "one line: {}", ran.stderr);

    let (foreign, _foreign) = foreign_object(b"xyz");
    let ran = run(&["inspect", &foreign]);
    ran.expect_code(1);
    assert!(
        ran.stderr.starts_with("shmstore: ") && ran.stderr.contains("not a shmstore region"),
        "{}",
        ran.stderr
    );

    let ran = run(&["inspect", "no such:name"]);
    ran.expect_failure("shmstore: invalid region name");

    // Text with a `/` is a file: read (its magic), never opened as a region unless it is one.
    let ran = run(&["inspect", "/etc/passwd"]);
    ran.expect_failure(
        "shmstore: `/etc/passwd` is not a shmstore region: it does not start with the magic",
    );
    let ran = run(&["inspect", "/no/such/dir/state.shm"]);
    ran.expect_failure("shmstore: region `/no/such/dir/state.shm` does not exist");

    // Key 0 is IPC_PRIVATE: no region can be there.
    let ran = run(&["inspect", "sysv:0"]);
    ran.expect_failure("shmstore: invalid region location");
}

// ---- regions in files and System V segments ----

/// The `path = value` lines of an `inspect` output.
fn value_lines(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| l.contains(" = "))
        .map(str::trim)
        .collect()
}

#[test]
fn inspect_reads_a_region_in_a_file_by_relative_and_absolute_path() {
    let dir = TempDir::new("inspect-file");
    let path = dir.path().join("state.shm");
    let shm = Shm::<Sample>::create(Location::path(&path), sample()).unwrap();

    let ran = run_in(dir.path(), &["inspect", "./state.shm"]);
    ran.ok();
    let out = &ran.stdout;
    for line in [
        "region   ./state.shm",
        "kind     value, default mode (two copies, crash-atomic)",
        "type     Sample (80 bytes, align 16)",
        &format!("creator  pid {} (alive)", std::process::id()),
        "  state               2 (ready)",
        &format!("value at version {}", shm.version()),
    ] {
        assert!(out.lines().any(|l| l == line), "no line `{line}` in\n{out}");
    }
    assert_eq!(value_lines(out), SAMPLE_LINES);

    let absolute = path.to_str().unwrap();
    let ran = run(&["inspect", absolute, "--json"]);
    ran.ok();
    let v = json(&ran);
    assert_eq!(v["name"], absolute);
    assert_eq!(v["backend"], "file");
    assert_eq!(v["type"], "Sample");
    assert_eq!(v["mode"], "0600");
}

#[test]
fn inspect_reads_a_region_in_a_system_v_segment() {
    let (shm, segment) = sysv_region(sample());
    shm.lock().unwrap().counter = 8;
    let location = segment.to_string();
    assert_eq!(
        location,
        format!("sysv:{:#010x}", segment.key().unwrap() as u32)
    );

    let ran = run(&["inspect", &location]);
    ran.ok();
    let out = &ran.stdout;
    for line in [
        format!("region   {location}"),
        "type     Sample (80 bytes, align 16)".to_string(),
        format!("creator  pid {} (alive)", std::process::id()),
        format!("value at version {}", shm.version()),
    ] {
        assert!(out.lines().any(|l| l == line), "no line `{line}` in\n{out}");
    }
    let mut expected = SAMPLE_LINES.to_vec();
    expected[0] = "counter = 8";
    assert_eq!(value_lines(out), expected);
    // The object line comes from the kernel's segment table.
    assert!(
        out.lines()
            .any(|l| l.starts_with("object   ") && l.contains("mode 0600")),
        "{out}"
    );

    // The key in decimal is the same segment.
    let decimal = run(&[
        "inspect",
        &format!("sysv:{}", segment.key().unwrap()),
        "--json",
    ]);
    decimal.ok();
    let v = json(&decimal);
    assert_eq!(v["name"], location.as_str());
    assert_eq!(v["backend"], "sysv");
    assert_eq!(v["version"], shm.version());
}

#[test]
fn list_shows_system_v_regions_but_not_other_programs_segments() {
    let _scan = whole_shm_lock();
    let dir = TempDir::new("list-sysv");
    let (shm, segment) = sysv_region(sample());
    let foreign = foreign_segment(dir.path());
    let location = segment.to_string();

    let ran = run(&["list"]);
    ran.ok();
    let header = ran.stdout.lines().next().unwrap();
    assert!(header.starts_with("NAME"), "{header}");
    assert!(header.contains(" BACKEND "), "{header}");
    let me = std::process::id();
    let r = row(&ran.stdout, &location);
    for cell in [
        " sysv ",
        " value ",
        "Sample",
        "80 B",
        &format!(" {} ", shm.version()),
        &format!("{me} alive"),
        "0600",
    ] {
        assert!(r.contains(cell), "no `{cell}` in {r}");
    }
    assert!(
        !ran.stdout.contains(&foreign.to_string()),
        "another program's segment is listed:\n{}",
        ran.stdout
    );

    let ran = run(&["list", "--json"]);
    ran.ok();
    let all = json(&ran);
    let v = all
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == location.as_str())
        .unwrap_or_else(|| panic!("{location} is not in the list:\n{}", ran.stdout));
    assert_eq!(v["backend"], "sysv");
    assert_eq!(v["kind"], "value");
    assert_eq!(v["type"], "Sample");
    assert_eq!(v["size"], 80);
    assert_eq!(v["version"], shm.version());
    assert_eq!(v["creator_pid"], me);
    assert_eq!(v["creator_alive"], true);
    assert_eq!(v["mode"], "0600");
    assert!(v["object_size"].as_u64().unwrap() >= 80);
}

#[test]
fn rm_removes_a_system_v_region() {
    let (shm, segment) = sysv_region(sample());
    let location = segment.to_string();
    let ran = run(&["rm", &location]);
    ran.ok();
    assert_eq!(ran.stdout, format!("removed {location} (value Sample)\n"));
    assert!(matches!(
        Inspector::open(Location::SysV(segment.key().unwrap())),
        Err(Error::NotFound { .. })
    ));
    // As with a name: a process that has the region attached keeps using it.
    shm.lock().unwrap().counter = 1;
    assert_eq!(shm.read().counter, 1);
    drop(shm);
    assert!(
        !segment_exists(segment.key().unwrap()),
        "the segment outlived its last attachment"
    );

    run(&["rm", &location]).expect_code(1);
}

#[test]
fn rm_refuses_another_programs_segment_unless_forced() {
    let dir = TempDir::new("rm-foreign-segment");
    let foreign = foreign_segment(dir.path());
    let location = foreign.to_string();
    let ran = run(&["rm", &location]);
    ran.expect_failure(&format!(
        "shmstore: refusing to remove `{location}`: it is not a shmstore region"
    ));
    assert!(ran.stderr.contains("--force"), "{}", ran.stderr);
    assert!(
        segment_exists(foreign.key().unwrap()),
        "a foreign segment was removed without --force"
    );
    // Nor does anything else touch it.
    let ran = run(&["inspect", &location]);
    ran.expect_failure(&format!(
        "shmstore: `{location}` is not a shmstore region: "
    ));
    assert!(
        ran.stderr.contains(&format!(
            "`shmstore rm --force {location}` removes the segment"
        )),
        "{}",
        ran.stderr
    );
    run(&["watch", &location]).expect_code(1);

    let ran = run(&["rm", "--force", &location]);
    ran.ok();
    assert_eq!(ran.stdout, format!("removed {location} (foreign)\n"));
    assert!(!segment_exists(foreign.key().unwrap()));
}

#[test]
fn rm_removes_a_region_file_and_refuses_any_other_file_unless_forced() {
    let dir = TempDir::new("rm-file");
    std::fs::write(dir.path().join("notes.txt"), "a file of the user's\n").unwrap();
    std::fs::write(dir.path().join("empty"), "").unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let shm =
        Shm::<Sample>::create(Location::path(dir.path().join("state.shm")), sample()).unwrap();

    let ran = run_in(
        dir.path(),
        &[
            "rm",
            "./notes.txt",
            "./empty",
            "./sub",
            "./missing.shm",
            "./state.shm",
        ],
    );
    ran.expect_code(1);
    for refused in ["./notes.txt", "./empty"] {
        assert!(
            ran.stderr.contains(&format!(
                "shmstore: refusing to remove `{refused}`: it is not a shmstore region (it does \
                 not start with the magic SHMSTORE); add --force to remove it anyway"
            )),
            "{}",
            ran.stderr
        );
    }
    assert!(
        ran.stderr.contains(
            "refusing to remove `./sub`: it is not a shmstore region (it is not a regular file)"
        ),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr
            .contains("shmstore: region `./missing.shm` does not exist"),
        "{}",
        ran.stderr
    );
    assert_eq!(ran.stdout, "removed ./state.shm (value Sample)\n");
    assert!(dir.path().join("notes.txt").exists() && dir.path().join("empty").exists());
    assert!(dir.path().join("sub").is_dir());
    assert!(!dir.path().join("state.shm").exists());
    // The process that has it open keeps using it.
    shm.lock().unwrap().counter = 1;
    assert_eq!(shm.read().counter, 1);

    let notes = dir.path().join("notes.txt");
    let ran = run(&["rm", "--force", notes.to_str().unwrap()]);
    ran.ok();
    assert_eq!(
        ran.stdout,
        format!("removed {} (foreign)\n", notes.display())
    );
    assert!(!notes.exists());
}

#[test]
fn watch_follows_a_region_in_a_file() {
    let dir = TempDir::new("watch-file");
    let path = dir.path().join("state.shm");
    let shm = Shm::<Sample>::create(Location::path(&path), sample()).unwrap();
    let text = path.to_str().unwrap();
    let watch = start_watch(&["watch", text, "--count", "1"]);
    assert_eq!(
        watch.first,
        format!("watching {text} (Sample) from version 0; Ctrl-C stops\n")
    );

    // It is waiting now: write until it has seen a version (bounded).
    let rest = watch.output_while(|| {
        let mut g = shm.lock().unwrap();
        g.counter += 1;
        g.tag = *b"wxyz";
    });
    let mut lines = rest.lines();
    assert!(
        lines.next().is_some_and(|l| l.starts_with("version ")),
        "{rest}"
    );
    assert!(rest.contains("  counter: 7 -> "), "{rest}");
    assert!(rest.contains("  tag[0]: 97 -> 119\n"), "{rest}");
    assert!(rest.contains("  tag[3]: 100 -> 122\n"), "{rest}");
}

// ---- watch ----

#[test]
fn watch_prints_two_versions_and_what_changed_while_another_thread_writes() {
    let (name, _cleanup) = region("watch");
    let _shm = Shm::<Sample>::create(&name, sample()).unwrap();
    let watch = start_watch(&["watch", &name, "--count", "2"]);
    assert!(
        watch.first.starts_with(&format!(
            "watching {name} (Sample) from version 0; Ctrl-C stops"
        )),
        "{:?}",
        watch.first
    );

    // It is waiting now: write until it has seen two versions (bounded).
    let writer = Shm::<Sample>::open(&name).unwrap();
    let rest = watch.output_while(|| {
        let mut g = writer.lock().unwrap();
        g.counter += 1;
        g.wheels[1].rpm += 5;
    });

    let versions: Vec<u64> = rest
        .lines()
        .filter_map(|l| l.strip_prefix("version "))
        // `version 9 (3 commits since version 6, shown as one change)` for several at once.
        .map(|v| v.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(versions.len(), 2, "two versions, then it stops:\n{rest}");
    assert!(0 < versions[0] && versions[0] < versions[1], "{versions:?}");
    let counter_lines: Vec<&str> = rest
        .lines()
        .filter(|l| l.starts_with("  counter: "))
        .collect();
    assert_eq!(counter_lines.len(), 2, "{rest}");
    assert!(counter_lines[0].starts_with("  counter: 7 -> "), "{rest}");
    assert!(
        rest.lines()
            .any(|l| l.starts_with("  wheels[1].rpm: 200 -> ")),
        "an element of an array of structs is named by its index:\n{rest}"
    );
}

#[test]
fn watch_refuses_a_queue() {
    let (name, _cleanup) = region("watch-queue");
    let _queue = a_queue(&name);
    let ran = run(&["watch", &name]);
    ran.expect_code(1);
    assert!(
        ran.stderr.starts_with("shmstore: ") && ran.stderr.contains("watch follows values"),
        "{}",
        ran.stderr
    );
}

// ---- rm ----

#[test]
fn rm_removes_regions_and_goes_on_after_a_missing_name() {
    let (first, _first) = region("rm-a");
    let (second, _second) = region("rm-b");
    let (missing, _missing) = region("rm-missing");
    let shm = Shm::<Sample>::create(&first, sample()).unwrap();
    let _queue = a_queue(&second);

    let ran = run(&["rm", &missing, &first, &second]);
    ran.expect_failure(&format!("shmstore: region `{missing}` does not exist"));
    assert!(ran
        .stdout
        .contains(&format!("removed {first} (value Sample)")));
    assert!(ran
        .stdout
        .contains(&format!("removed {second} (queue Wheel)")));
    assert!(!exists(&first) && !exists(&second));
    // Removing the name does not disturb a process that has the region open.
    shm.lock().unwrap().counter = 1;
    assert_eq!(shm.read().counter, 1);

    run(&["rm", &missing]).expect_code(1);
}

#[test]
fn rm_refuses_a_foreign_object_unless_forced() {
    let (foreign, _foreign) = foreign_object(b"someone else's");
    let ran = run(&["rm", &foreign]);
    ran.expect_failure(&format!("shmstore: refusing to remove `{foreign}`"));
    assert!(ran.stderr.contains("--force"), "{}", ran.stderr);
    assert!(
        exists(&foreign),
        "a foreign object was removed without --force"
    );

    let ran = run(&["rm", "--force", &foreign]);
    ran.ok();
    assert!(ran.stdout.contains(&format!("removed {foreign} (foreign)")));
    assert!(!exists(&foreign));
}

// ---- gc ----

#[test]
fn gc_removes_only_regions_whose_creator_died_and_that_nobody_uses() {
    let _scan = whole_shm_lock();
    let prefix = format!("{}-", unique_name("gc"));
    let dead = format!("{prefix}dead");
    let _dead = Place::adopt_name(&dead);
    let mapped = format!("{prefix}mapped");
    let _mapped = Place::adopt_name(&mapped);
    let live = format!("{prefix}live");
    let _live = Place::adopt_name(&live);
    let incomplete = format!("{prefix}incomplete");
    let _incomplete = Place::adopt_name(&incomplete);
    let foreign = format!("{prefix}foreign");
    let _foreign = Place::adopt_name(&foreign);

    run_child(&format!("create {dead}"));
    run_child(&format!("create {mapped}"));
    let _mapping = Shm::<Sample>::open(&mapped).unwrap(); // this live process maps it
    let _live = Shm::<Sample>::create(&live, sample()).unwrap(); // its creator is alive
    an_incomplete_region(&incomplete);
    std::fs::write(std::path::Path::new(SHM_DIR).join(&foreign), b"x").unwrap();

    // Some processes may be impossible to look into (other users' processes, or more
    // privileged ones even for root, such as a sandbox's init): then gc keeps everything
    // unless told to ignore them.
    let first = run(&["gc", "--dry-run", &prefix]);
    first.ok();
    let mut flags = vec![];
    if first.stdout.contains("cannot be read") {
        assert!(
            first.stdout.contains("gc: would remove 0 regions, kept 4"),
            "{}",
            first.stdout
        );
        assert!(
            first
                .stdout
                .contains("gc: kept 2 abandoned-looking regions because the memory maps of"),
            "{}",
            first.stdout
        );
        assert!(first.stdout.contains("--ignore-unreadable"));
        flags.push("--ignore-unreadable");
    }

    let dry = run(&[&["gc", "--dry-run"], &flags[..], &[&prefix]].concat());
    dry.ok();
    assert!(
        dry.stdout.contains(&format!("would remove {dead}: ")),
        "{}",
        dry.stdout
    );
    assert!(dry.stdout.contains(&format!("would remove {incomplete}: ")));
    for name in [&dead, &mapped, &live, &incomplete, &foreign] {
        assert!(exists(name), "--dry-run removed {name}");
    }

    let ran = run(&[&["gc", "--verbose"], &flags[..], &[&prefix]].concat());
    ran.ok();
    let out = &ran.stdout;
    let me = std::process::id();
    assert!(
        out.contains(&format!("removed {dead}: its creator, pid ")),
        "{out}"
    );
    assert!(out.contains("is dead and no process uses it"), "{out}");
    assert!(out.contains(&format!("removed {incomplete}: it is incomplete")));
    assert!(
        out.contains(&format!("kept {mapped}: in use by pid {me}")),
        "{out}"
    );
    assert!(
        out.contains(&format!("kept {live}: its creator, pid {me}, is alive")),
        "{out}"
    );
    assert!(
        !out.contains(&foreign),
        "gc looked at a foreign object:\n{out}"
    );
    assert!(out.contains("gc: removed 2 regions, kept 2"), "{out}");
    assert!(!exists(&dead) && !exists(&incomplete));
    assert!(exists(&mapped) && exists(&live) && exists(&foreign));
}

// ---- header ----

/// Types whose C spelling needs care: a reserved word, a tuple struct, a packed struct.
#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Pair(u32, u32);

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Odd {
    int: u32,
    default: u16,
    flags: [u8; 2],
    pair: Pair,
    unsigned_big: u128,
}

#[derive(ShmType, Clone, Copy)]
#[repr(C, packed)]
struct Packed {
    a: u8,
    b: u32,
}

#[test]
fn header_compiles_and_opens_values_queues_and_primitives() {
    let (sample_name, _sample_name) = region("header-sample");
    let (in_place, _in_place) = region("header-inplace");
    let (queue, _queue) = region("header-queue");
    let (primitive, _primitive) = region("header-u64");
    let (array, _array) = region("header-array");
    let (odd, _odd) = region("header-odd");
    let (packed, _packed) = region("header-packed");
    let (packed_queue, _packed_queue) = region("header-packed-queue");
    let _a = Shm::<Sample>::create(&sample_name, sample()).unwrap();
    let _b = Shm::<Sample>::options()
        .in_place(true)
        .create(&in_place, sample())
        .unwrap();
    let _c = a_queue(&queue);
    let _d = Shm::<u64>::create(&primitive, 42).unwrap();
    let _e = Shm::<[u32; 4]>::create(&array, [1, 2, 3, 4]).unwrap();
    let _f = Shm::<Odd>::create(
        &odd,
        Odd {
            int: 1,
            default: 2,
            flags: [3, 4],
            pair: Pair(5, 6),
            unsigned_big: u128::MAX,
        },
    )
    .unwrap();
    let _g = Shm::<Packed>::create(&packed, Packed { a: 1, b: 2 }).unwrap();
    let _h = ShmQueue::<Packed, 3>::create(&packed_queue).unwrap();

    let source = c_dir().join("open_and_check.c");
    for (name, expect) in [
        (&sample_name, "value of Sample at version 0"),
        (&in_place, "value of Sample at version 0"),
        (&queue, "queue of Wheel: 2 of 8 queued"),
        (&primitive, "value of u64 at version 0"),
        (&array, "value of [u32; 4] at version 0"),
        (&odd, "value of Odd at version 0"),
        (&packed, "value of Packed at version 0"),
        (&packed_queue, "queue of Packed: 0 of 3 queued"),
    ] {
        let dir = TempDir::new("header");
        let header = dir.path().join("region.h");
        run(&["header", name, "-o", header.to_str().unwrap()]).ok();
        let program = compile_c(&source, dir.path(), &dir.path().join("open_and_check"))
            .unwrap_or_else(|e| panic!("the header of {name} does not compile:\n{e}"));
        let output = std::process::Command::new(&program).output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.trim() == expect,
            "{name}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    // The same header on stdout; its reserved and tuple names are spelled for C.
    let ran = run(&["header", &odd]);
    ran.ok();
    for text in [
        "uint32_t int_; /* offset 0 */",
        "uint16_t default_; /* offset 4 */",
        "Odd_pair pair; /* offset 8 */",
        "uint32_t _0; /* offset 0 */",
        "unsigned __int128 unsigned_big; /* offset 16 */",
        "#define SHMSTORE_FINGERPRINT UINT64_C(0x",
        "static inline int shmstore_lock(shmstore_region_t *h)",
        // The header fields of migration, named (no `reserved` words left), and its error.
        "uint32_t lifecycle;",
        "uint64_t versions_offset;",
        "_Static_assert(offsetof(shmstore_header_t, versions_len) == 184, \"versions_len at 184\");",
        "#define SHMSTORE_E_MOVED (-1012)",
        "static inline int shmstore_has_moved(shmstore_region_t *h)",
    ] {
        assert!(ran.stdout.contains(text), "no `{text}` in the header");
    }
    let packed_header = run(&["header", &packed]);
    assert!(
        packed_header
            .stdout
            .contains("typedef struct __attribute__((packed)) Packed {"),
        "{}",
        packed_header.stdout
    );

    // A header refuses a region of another type at open.
    let dir = TempDir::new("header-wrong");
    let header = dir.path().join("region.h");
    run(&["header", &sample_name, "-o", header.to_str().unwrap()]).ok();
    let program = compile_c(&source, dir.path(), &dir.path().join("open_and_check")).unwrap();
    let output = std::process::Command::new(&program)
        .arg(&primitive)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("holds another type"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn header_of_a_file_region_names_its_path_and_maps_it_with_from_base() {
    let dir = TempDir::new("header-file");
    // A directory name C must escape: a quote, a backslash, a `?` (trigraphs) and a `*/`.
    let odd = dir.path().join("we\"ird\\?*/");
    std::fs::create_dir_all(&odd).unwrap();
    let path = odd.join("state.shm");
    let shm = Shm::<Sample>::create(Location::path(&path), sample()).unwrap();
    shm.lock().unwrap().counter = 9;
    let header = dir.path().join("region.h");
    run(&[
        "header",
        path.to_str().unwrap(),
        "-o",
        header.to_str().unwrap(),
    ])
    .ok();
    let text = std::fs::read_to_string(&header).unwrap();
    assert!(text.contains("#define SHMSTORE_REGION_PATH \""), "{text}");
    assert!(!text.contains("SHMSTORE_REGION_NAME"), "{text}");
    let program = compile_c_with(
        &c_dir().join("map_file.c"),
        dir.path(),
        &dir.path().join("map_file"),
        &["-Wextra"],
    )
    .unwrap_or_else(|e| panic!("the header of a file region does not compile:\n{e}"));
    let output = std::process::Command::new(&program).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stdout,
        format!(
            "value of Sample at version {} in {}\n",
            shm.version(),
            path.display()
        )
    );
}

// ---- usage ----

#[test]
fn usage_errors_exit_with_2_and_help_shows_an_example() {
    run(&[]).expect_code(2);
    run(&["frobnicate"]).expect_code(2);
    run(&["inspect"]).expect_code(2);
    run(&["rm"]).expect_code(2);
    run(&["watch", "x", "--count", "0"]).expect_code(2);
    run(&["list", "--jsonn"]).expect_code(2);
    for sub in ["list", "inspect", "watch", "rm", "gc", "header"] {
        let ran = run(&[sub, "--help"]);
        ran.ok();
        assert!(
            ran.stdout.contains(&format!("Example:\n  shmstore {sub}")),
            "`{sub} --help` has no example:\n{}",
            ran.stdout
        );
    }
}
