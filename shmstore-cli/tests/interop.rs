//! C and Python programs using regions that Rust created: through the header `shmstore
//! header` writes (compiled with the machine's `cc`, every `_Static_assert` included), and
//! through `examples/python/read_region.py` (standard library only). A region in a System V
//! segment is read by a C program written in the classic `ftok` + `shmget` + `shmat` style.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use shmstore::{Location, Shm, ShmQueue};

#[test]
fn child_process_entry() {
    child_action();
}

/// Writes the header for `name` into `dir/region.h`.
fn header_into(name: &str, dir: &Path) {
    let path = dir.join("region.h");
    run(&["header", name, "-o", path.to_str().unwrap()]).ok();
    assert!(path.exists(), "`shmstore header -o` wrote nothing");
}

/// Compiles `tests/c/<program>.c` against `dir/region.h`.
fn build(program: &str, dir: &Path) -> std::path::PathBuf {
    let source = c_dir().join(format!("{program}.c"));
    compile_c(&source, dir, &dir.join(program))
        .unwrap_or_else(|errors| panic!("{program}.c does not compile:\n{errors}"))
}

/// The C templates (`shmstore-cli/c/*.h`), as the headers carry them verbatim.
const TEMPLATES: [(&str, &str); 5] = [
    ("prelude.h", include_str!("../c/prelude.h")),
    ("format_common.h", include_str!("../c/format_common.h")),
    ("value_helpers.h", include_str!("../c/value_helpers.h")),
    ("queue_helpers.h", include_str!("../c/queue_helpers.h")),
    ("kind_helpers.h", include_str!("../c/kind_helpers.h")),
];

#[test]
fn every_c_template_compiles_in_the_header_of_a_value_a_queue_or_a_type_with_kinds() {
    let (value, _value_cleanup) = region("c-templates-value");
    let _shm = Shm::<Sample>::create(&value, sample()).unwrap();
    let (queue, _queue_cleanup) = region("c-templates-queue");
    let _queue = ShmQueue::<Wheel, 4>::create(&queue).unwrap();
    let (kinds, _kinds_cleanup) = config_region("c-templates-kinds", false);
    let mut carried = [false; TEMPLATES.len()];
    for name in [&value, &queue, &kinds] {
        let dir = TempDir::new("c-templates");
        header_into(name, dir.path());
        let header = std::fs::read_to_string(dir.path().join("region.h")).unwrap();
        for (seen, (_, template)) in carried.iter_mut().zip(TEMPLATES) {
            *seen |= header.contains(template);
        }
        let source = dir.path().join("use.c");
        std::fs::write(
            &source,
            "#include \"region.h\"\nint main(void) { return 0; }\n",
        )
        .unwrap();
        compile_c(&source, dir.path(), &dir.path().join("use"))
            .unwrap_or_else(|errors| panic!("the header of {name} does not compile:\n{errors}"));
    }
    for (seen, (file, _)) in carried.iter().zip(TEMPLATES) {
        assert!(seen, "no header carries c/{file} verbatim");
    }
}

#[test]
fn a_c_program_locks_writes_and_commits_and_rust_sees_it() {
    let (name, _cleanup) = region("c-bump");
    let shm = Shm::<Sample>::create(&name, sample()).unwrap();
    let dir = TempDir::new("c-bump");
    header_into(&name, dir.path());
    let program = build("lock_and_bump", dir.path());

    let v0 = shm.version();
    let output = Command::new(&program).arg(&name).output().unwrap();
    assert!(
        output.status.success(),
        "lock_and_bump failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    let now = shm.read();
    let mut expected = sample();
    expected.counter += 1;
    expected.pos.y = 2.5;
    expected.wheels[1].rpm = 1234;
    assert_eq!(now, expected, "Rust sees the C program's commit, whole");
    assert_eq!(shm.version(), v0 + 1, "the C commit published one version");
    // And the C program's `shmstore_version` counts as Rust does.
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        printed.contains(&format!("version {v0} -> {}", v0 + 1)),
        "{printed}"
    );
    assert!(!shm.is_poisoned());
    // The commit copied the working copy to the second copy: a Rust write that dies now would
    // roll back to the C program's value, not to an older one. A lock and an unchanged read
    // show the copies agree as far as the API can tell.
    drop(shm.lock().unwrap());
    assert_eq!(shm.read(), expected);
}

#[test]
fn a_c_writer_killed_mid_write_poisons_an_in_place_region() {
    let (name, _cleanup) = region("c-poison");
    let shm = Shm::<Sample>::options()
        .in_place(true)
        .create(&name, sample())
        .unwrap();
    let dir = TempDir::new("c-poison");
    header_into(&name, dir.path());
    let program = build("poison_and_die", dir.path());

    let mut child = Command::new(&program)
        .arg(&name)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_status(&mut child, Duration::from_secs(30), "poison_and_die");
    assert_eq!(
        status.signal(),
        Some(9),
        "poison_and_die should die of SIGKILL holding the lock, it ended with {status:?}"
    );

    // The read-only inspector cannot repair the region: it says so instead of waiting for a
    // write that will never be published.
    let ran = run(&["inspect", &name]);
    ran.ok();
    assert!(
        ran.stdout
            .contains("value: not shown: an in-place write has been under way"),
        "{}",
        ran.stdout
    );

    let err = shm
        .lock()
        .expect_err("a writer died mid-write in place: lock() must report the poison");
    assert!(shm.is_poisoned());
    let guard = err.into_inner();
    assert_eq!(guard.counter, 99, "the partial write stays visible");
    assert_eq!(guard.tail, u64::MAX);
    drop(guard);
    shm.clear_poison();
    assert!(!shm.is_poisoned());
}

/// The lines `tests/c/read_sysv.c` prints for a [`Sample`] at `version`.
fn read_sysv_lines(value: &Sample, version: u64) -> String {
    let f32_text = |v: f32| -> String {
        // `%.9g` of the values these tests use.
        match v {
            0.1 => "0.100000001".to_string(),
            v => format!("{v}"),
        }
    };
    let samples: Vec<String> = value.samples.iter().flatten().map(u16::to_string).collect();
    format!(
        "version {version}\ncounter {}\nscale {}\nbig {:#034x}\npos {} {}\nwheel 0 {} {}\n\
         wheel 1 {} {}\nsamples {}\ntag {}\ntail {}\n",
        value.counter,
        value.scale,
        value.big as u128,
        f32_text(value.pos.x),
        f32_text(value.pos.y),
        f32_text(value.wheels[0].pressure),
        value.wheels[0].rpm,
        f32_text(value.wheels[1].pressure),
        value.wheels[1].rpm,
        samples.join(" "),
        String::from_utf8_lossy(&value.tag),
        value.tail,
    )
}

#[test]
fn a_classic_ftok_shmget_shmat_c_program_reads_what_rust_wrote() {
    let dir = TempDir::new("c-sysv");
    // The file both sides give to ftok, with the same project id.
    let token = dir.path().join("app.token");
    std::fs::write(&token, b"").unwrap();
    let id = b'C';
    let key = shmstore::ftok(&token, id).unwrap();
    let created = Shm::<Sample>::create(Location::sysv(key), sample());
    // From here on the segment is removed however the test ends.
    let _segment = created.is_ok().then(|| Place::adopt_key(key));
    let shm = created
        .unwrap_or_else(|e| panic!("cannot create the region at {}: {e}", Location::SysV(key)));

    let location = Location::SysV(key).to_string();
    header_into(&location, dir.path());
    let header = std::fs::read_to_string(dir.path().join("region.h")).unwrap();
    assert!(
        header.contains(&format!(
            "#define SHMSTORE_REGION_SYSV_KEY ((int32_t){:#010x}u)",
            key as u32
        )),
        "{header}"
    );
    assert!(
        header.contains("static inline int shmstore_from_base(void *base, size_t size"),
        "{header}"
    );
    let program = compile_c_with(
        &c_dir().join("read_sysv.c"),
        dir.path(),
        &dir.path().join("read_sysv"),
        &["-Wextra"],
    )
    .unwrap_or_else(|errors| panic!("read_sysv.c does not compile:\n{errors}"));
    let read = || -> String {
        let child = Command::new(&program)
            .arg(&token)
            .arg(id.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let output = wait_with_timeout(child, Duration::from_secs(30), "read_sysv");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "read_sysv failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };

    assert_eq!(read(), read_sysv_lines(&sample(), shm.version()));

    // Rust writes under the lock; the C program, run again, sees the new value whole.
    {
        let mut g = shm.lock().unwrap();
        g.counter = 8;
        g.scale = -3.5;
        g.big = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210;
        g.pos.y = 2.5;
        g.wheels[1].rpm = 1234;
        g.samples[2] = [60, 70];
        g.tag = *b"wxyz";
        g.tail = 42;
    }
    let now = shm.read();
    assert_eq!(now.counter, 8);
    assert_eq!(shm.version(), 1, "one commit, one version, in C too");
    assert_eq!(read(), read_sysv_lines(&now, shm.version()));
}

#[test]
fn a_header_whose_layout_is_wrong_does_not_compile() {
    let (name, _cleanup) = region("c-asserts");
    let _shm = Shm::<Sample>::create(&name, sample()).unwrap();
    let dir = TempDir::new("c-asserts");
    header_into(&name, dir.path());
    let header = std::fs::read_to_string(dir.path().join("region.h")).unwrap();

    // The header as written compiles, with every assertion in it.
    build("lock_and_bump", dir.path());
    for assertion in [
        "_Static_assert(offsetof(Sample, big) == 16",
        "_Static_assert(offsetof(Sample, wheels[0].rpm) == 44",
        "_Static_assert(sizeof(Sample) == 80",
        "_Static_assert(offsetof(shmstore_header_t, mutex) == 192",
        "_Static_assert(sizeof(shmstore_header_t) == 256",
    ] {
        assert!(header.contains(assertion), "no `{assertion}` in the header");
    }

    // A member of the wrong width (as a generator bug would write it) moves the next member
    // and grows the struct: the assertions stop the build.
    let right = "    float pressure; /* offset 0 */\n";
    let broken = header.replacen(right, "    double pressure; /* offset 0 */\n", 1);
    assert_ne!(broken, header, "the header declares `{right}`");
    let bad_dir = TempDir::new("c-asserts-bad");
    std::fs::write(bad_dir.path().join("region.h"), broken).unwrap();
    let errors = compile_c(
        &c_dir().join("lock_and_bump.c"),
        bad_dir.path(),
        &bad_dir.path().join("lock_and_bump"),
    )
    .expect_err("a header with a wrong offset compiled");
    assert!(
        errors.contains("static assertion failed"),
        "the compiler refused it for another reason:\n{errors}"
    );
}

#[test]
fn the_python_example_reads_a_region_like_inspect() {
    if Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("note: python3 is not installed; skipping the Python interop test");
        return;
    }
    let (name, _cleanup) = region("python");
    let shm = Shm::<Sample>::create(&name, sample()).unwrap();
    {
        // A committed write, so that the version is not 0.
        shm.lock().unwrap().counter = 8;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/python/read_region.py");
    let child = Command::new("python3")
        .arg(&script)
        .arg(&name)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = wait_with_timeout(child, Duration::from_secs(30), "read_region.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "read_region.py failed:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("type     Sample (80 bytes, align 16)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("value at version {}", shm.version())),
        "{stdout}"
    );

    // Its lines are exactly those of `shmstore inspect`.
    let fields = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.contains(" = "))
            .map(|l| l.trim().to_string())
            .collect()
    };
    let inspect = run(&["inspect", &name]);
    inspect.ok();
    // Nothing changes the region meanwhile: the whole output is the same, header included.
    assert_eq!(stdout, inspect.stdout);
    let python_fields = fields(&stdout);
    assert_eq!(python_fields, fields(&inspect.stdout));
    let mut expected: Vec<String> = SAMPLE_LINES.iter().map(|s| s.to_string()).collect();
    expected[0] = "counter = 8".to_string();
    assert_eq!(python_fields, expected);

    // Reading did not remove or change the region (Python's resource tracker is kept out).
    assert!(exists(&name), "read_region.py removed the region");
    assert_eq!(shm.read().counter, 8);
}

/// A C program unlocks the mutex after its holder died without `pthread_mutex_consistent`,
/// which makes it unrecoverable. Two C lockers asleep in `shmstore_lock` at that moment both
/// get `-ENOTRECOVERABLE`: glibc's unlock wakes one of them, whose lock then frees the word
/// without waking the other (`lll_unlock` wakes only for a word > 1 as an `int`, and a word
/// with `FUTEX_WAITERS` is negative), so `shmstore_lock` wakes every sleeper after that answer.
/// Then Rust lockers get the typed error, and a C locker after them `-ENOTRECOVERABLE` again:
/// glibc's trylock under the Rust locker used to leave its thread id in the word, where the C
/// locker waited for ever.
#[test]
fn every_c_and_rust_locker_of_an_unrecoverable_mutex_gets_the_error() {
    let (name, _cleanup) = region("c-unrecoverable");
    let shm = Shm::<Sample>::create(&name, sample()).unwrap();
    let dir = TempDir::new("c-unrecoverable");
    header_into(&name, dir.path());
    let program = build("unrecoverable", dir.path());
    let spawn = |role: &str| {
        shmstore_tests::Helper::spawn(program.to_str().unwrap(), &[role.to_string(), name.clone()])
    };

    let mut dead = spawn("hold");
    dead.expect("locked ok");
    dead.kill();
    let mut careless = spawn("hold");
    careless.expect("locked owner-died");
    let mut asleep = [spawn("lock"), spawn("lock")];
    for locker in &mut asleep {
        locker.expect("locking");
        locker.wait_until_blocked();
    }
    careless.send("unlock");
    careless.expect("unlocked ok");
    for locker in &mut asleep {
        // A hung locker is killed by its alarm: `expect` then fails on the missing line.
        locker.expect("rc not-recoverable");
    }

    for _ in 0..2 {
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            drop(shm.try_lock());
        }))
        .expect_err("try_lock of an unrecoverable mutex panics with the error");
        let message = panicked
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(message.contains("unrecoverable"), "{message}");
    }
    let mut after = spawn("lock");
    after.expect("locking");
    after.expect("rc not-recoverable");
}

/// In a helper process: creates a `ServiceConfig` region (format version 2), valid or forged.
fn config_region(tag: &str, forged: bool) -> (String, Place) {
    let (name, place) = region(tag);
    let value = if forged {
        shmstore_tests::ServiceConfig::forged()
    } else {
        shmstore_tests::ServiceConfig::example()
    };
    Shm::<shmstore_tests::ServiceConfig>::create(&name, value).unwrap();
    (name, place)
}

#[test]
fn a_c_program_reads_and_writes_a_region_with_kinds_through_typed_accessors() {
    let (name, _cleanup) = config_region("c-kinds", false);
    let dir = TempDir::new("c-kinds");
    header_into(&name, dir.path());
    let header = std::fs::read_to_string(dir.path().join("region.h")).unwrap();
    assert!(
        header.contains("#define SHMSTORE_REGION_FORMAT_VERSION 2u"),
        "{header}"
    );
    assert!(
        header.contains("enum shmstore_LogLevel {\n    LogLevel_Error = 0,\n"),
        "{header}"
    );
    let program = build("read_kinds", dir.path());
    let output = Command::new(&program).arg(&name).output().unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        printed,
        "service_name=billing-api (11 bytes)\n\
         hostname=db-1.internal (13 bytes)\n\
         log_level=2 (Info)\n\
         tls=true maintenance=false\n\
         request_limit=500\n\
         updated_at=1796554822666698771\n"
    );

    // Written from C under the lock: Rust and the command see it.
    let output = Command::new(&program)
        .args([&name, "set"])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}");
    assert!(
        printed.starts_with("set: too long 1, invalid 1, ok 1\n"),
        "{printed}"
    );
    assert!(printed.contains("hostname=c-host (6 bytes)\n"), "{printed}");
    let shm = Shm::<shmstore_tests::ServiceConfig>::open(&name).unwrap();
    assert_eq!(shm.read().hostname, "c-host");
    assert_eq!(
        shm.read().log_level.get(),
        Ok(shmstore_tests::LogLevel::Debug)
    );
    let got = run(&["get", &name, "hostname", "log_level"]);
    got.ok();
    assert_eq!(got.stdout, "c-host\nDebug\n");
}

#[test]
fn the_c_accessors_refuse_forged_text_and_report_unknown_enum_values() {
    let (name, _cleanup) = config_region("c-kinds-forged", true);
    let dir = TempDir::new("c-kinds-forged");
    header_into(&name, dir.path());
    let program = build("read_kinds", dir.path());
    let output = Command::new(&program).arg(&name).output().unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}");
    // Length 200 above the capacity 60; 0xff is not UTF-8; 99 names no variant.
    assert!(
        printed.starts_with("service_name=<invalid>\nhostname=<invalid>\nlog_level=99\n"),
        "{printed}"
    );
}

#[test]
fn a_c_header_for_a_plain_type_still_checks_format_version_1() {
    let (name, _cleanup) = region("c-format-v1");
    let _shm = Shm::<Sample>::create(&name, sample()).unwrap();
    let dir = TempDir::new("c-format-v1");
    header_into(&name, dir.path());
    let header = std::fs::read_to_string(dir.path().join("region.h")).unwrap();
    assert!(
        header.contains("#define SHMSTORE_REGION_FORMAT_VERSION 1u"),
        "{header}"
    );
    assert!(!header.contains("shmstore_text_get"), "no kind helpers");
}

#[test]
fn the_python_example_reads_a_region_with_kinds_like_inspect() {
    if Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("note: python3 is not installed; skipping the Python interop test");
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/python/read_region.py");
    for (tag, forged) in [("python-kinds", false), ("python-kinds-forged", true)] {
        let (name, _cleanup) = config_region(tag, forged);
        let child = Command::new("python3")
            .arg(&script)
            .arg(&name)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let output = wait_with_timeout(child, Duration::from_secs(30), "read_region.py");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "read_region.py failed:\n{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let inspect = run(&["inspect", &name]);
        inspect.ok();
        assert_eq!(stdout, inspect.stdout);
        let expected = if forged {
            "  log_level = 99 (unknown variant)\n"
        } else {
            "  service_name = \"billing-api\"\n"
        };
        assert!(stdout.contains(expected), "{stdout}");
        assert!(
            stdout.contains("  updated_at = 2026-12-06T11:00:22.666698771Z\n"),
            "{stdout}"
        );
    }
}

// ---- Migration (FORMAT.md "Migration"): C peers learn that a region moved ----

/// A release-1 config value (`shmstore_tests::config_versions::ConfigV1`).
fn config_v1(workers: u32) -> shmstore_tests::config_versions::ConfigV1 {
    shmstore_tests::config_versions::ConfigV1 {
        workers,
        timeout_ms: 500,
        service: shmstore::value::FixedStr::new("gateway").expect("fits"),
        level: shmstore_tests::config_versions::LevelV1::Warn.into(),
        _pad: [0; 3],
    }
}

/// `tests/c/follow_migration.c`, compiled against the header of `name` as it is now, started
/// on `name`.
fn follower(name: &str, dir: &Path) -> shmstore_tests::Helper {
    header_into(name, dir);
    let program = build("follow_migration", dir);
    shmstore_tests::Helper::spawn(program.to_str().unwrap(), &[name.to_string()])
}

/// The header's `lifecycle` word (offset 156) of the object `file` is open on.
fn lifecycle_of(file: &std::fs::File) -> u32 {
    use std::os::unix::fs::FileExt;
    let mut word = [0u8; 4];
    file.read_exact_at(&mut word, 156).unwrap();
    u32::from_ne_bytes(word)
}

/// Stores `value` in the header's `lifecycle` word of the object `file` is open on, as a
/// migrator does under the lock (nobody holds it in these tests).
fn set_lifecycle(file: &std::fs::File, value: u32) {
    use std::os::unix::fs::FileExt;
    file.write_all_at(&value.to_ne_bytes(), 156).unwrap();
}

fn open_object(name: &str) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(Path::new(SHM_DIR).join(name))
        .unwrap()
}

/// A C writer and a C reader hold a release-1 region when a Rust writer of a wider type opens
/// it and migrates it: the writer's next lock and the reader's next read answer
/// `SHMSTORE_E_MOVED` (the read with the last value), instead of writing into, or reading
/// from, an object nobody else sees any more. Reopened, the old header's program gets
/// `SHMSTORE_E_WRONG_TYPE` (C peers do not read through a compatible layout); one compiled
/// with the header of the region as it is now writes it, and Rust sees that.
#[test]
fn c_peers_of_a_region_rust_migrated_get_moved_and_reopen() {
    use shmstore_tests::config_versions::ConfigV1;
    use shmstore_tests::config_versions_plus::ConfigV1Plus;
    let (name, _cleanup) = region("c-migrated");
    let old = Shm::<ConfigV1>::create(&name, config_v1(4)).unwrap();
    let old_dir = TempDir::new("c-migrated-old");
    let mut writer = follower(&name, old_dir.path());
    writer.expect("open ok");
    let mut reader = shmstore_tests::Helper::spawn(
        old_dir.path().join("follow_migration").to_str().unwrap(),
        std::slice::from_ref(&name),
    );
    reader.expect("open ok");
    writer.send("lock");
    writer.expect("lock ok");
    assert_eq!(
        old.read().workers,
        5,
        "the C writer's commit, before the migration"
    );

    let new = Shm::<ConfigV1Plus>::open(&name).expect("the wider writer migrates the region");
    assert_eq!((new.read().workers, new.read().retries), (5, 0));

    reader.send("read");
    reader.expect("read moved first=5");
    writer.send("lock");
    writer.expect("lock moved");
    assert_eq!(new.read().workers, 5, "the moved C writer wrote nothing");
    writer.send("reopen");
    writer.expect("open wrong-type");
    reader.send("reopen");
    reader.expect("open wrong-type");

    let new_dir = TempDir::new("c-migrated-new");
    let mut regenerated = follower(&name, new_dir.path());
    regenerated.expect("open ok");
    regenerated.send("lock");
    regenerated.expect("lock ok");
    regenerated.send("read");
    regenerated.expect("read ok first=6");
    assert_eq!(new.read().workers, 6);
    assert_eq!(old.read().workers, 6, "the old Rust handle followed too");
}

/// A migrator that died after storing `lifecycle = 1` (MIGRATING) but before its rename: the
/// name still refers to the old object, so the next C locker settles it (stores 0, removes
/// the temporary name the migrator may have left) and goes on; its write is there for Rust.
#[test]
fn a_c_locker_settles_a_dead_migration_whose_name_is_still_its_region() {
    use std::os::unix::fs::MetadataExt;
    let (name, _cleanup) = region("c-dead-migrator");
    let shm = Shm::<Sample>::create(&name, sample()).unwrap();
    let object = open_object(&name);
    let temporary = format!(
        ".{name}.shmstore-migrating-{}",
        object.metadata().unwrap().ino()
    );
    let planted = RemoveOnDrop(Path::new(SHM_DIR).join(&temporary));
    std::fs::write(&planted.0, b"half-built").unwrap();
    let dir = TempDir::new("c-dead-migrator");
    let mut c = follower(&name, dir.path());
    c.expect("open ok");
    set_lifecycle(&object, 1);

    c.send("read");
    c.expect(&format!("read ok first={}", sample().counter));
    c.send("lock");
    c.expect("lock ok");
    assert_eq!(
        lifecycle_of(&object),
        0,
        "the C locker settled the dead migration"
    );
    assert!(
        !exists(&temporary),
        "the C locker removed the migrator's temporary name"
    );
    assert_eq!(shm.read().counter, sample().counter + 1);
    c.send("lock");
    c.expect("lock ok");
    assert_eq!(shm.read().counter, sample().counter + 2);
}

/// A migrator that died after its rename and before storing `lifecycle = 2`: the name refers
/// to the complete new region. A C reader of the old object gets `SHMSTORE_E_MOVED`; the next
/// C locker stores 2 (MOVED) and gets it too; reopened, it works on the region the name
/// refers to now.
#[test]
fn a_c_locker_of_a_dead_migration_whose_name_moved_on_gets_moved() {
    let (name, _cleanup) = region("c-dead-renamed");
    let _old = Shm::<Sample>::create(&name, sample()).unwrap();
    let old_object = open_object(&name);
    let (successor, _successor_cleanup) = region("c-dead-successor");
    let mut value = sample();
    value.counter = 77;
    drop(Shm::<Sample>::create(&successor, value).unwrap());
    let dir = TempDir::new("c-dead-renamed");
    let mut c = follower(&name, dir.path());
    c.expect("open ok");
    set_lifecycle(&old_object, 1);
    std::fs::rename(
        Path::new(SHM_DIR).join(&successor),
        Path::new(SHM_DIR).join(&name),
    )
    .unwrap();

    c.send("read");
    c.expect(&format!("read moved first={}", sample().counter));
    assert_eq!(lifecycle_of(&old_object), 1, "a reader writes nothing");
    c.send("lock");
    c.expect("lock moved");
    assert_eq!(
        lifecycle_of(&old_object),
        2,
        "the C locker recorded the move"
    );
    c.send("reopen");
    c.expect("open ok");
    c.send("lock");
    c.expect("lock ok");
    c.send("read");
    c.expect("read ok first=78");
    assert_eq!(Shm::<Sample>::open(&name).unwrap().read().counter, 78);
}

/// A migrator that died before its rename while the name was removed, and a handle that then
/// recorded the move (`lifecycle = 2`): the temporary name it left is removed by the next C
/// locker, which gets `SHMSTORE_E_MOVED`; reopened, the name is gone.
#[test]
fn a_c_locker_of_a_moved_region_removes_a_dead_migrators_temporary_name() {
    use std::os::unix::fs::MetadataExt;
    let (name, _cleanup) = region("c-moved-leftover");
    let _shm = Shm::<Sample>::create(&name, sample()).unwrap();
    let object = open_object(&name);
    let temporary = format!(
        ".{name}.shmstore-migrating-{}",
        object.metadata().unwrap().ino()
    );
    let planted = RemoveOnDrop(Path::new(SHM_DIR).join(&temporary));
    let dir = TempDir::new("c-moved-leftover");
    let mut c = follower(&name, dir.path());
    c.expect("open ok");
    std::fs::write(&planted.0, b"half-built").unwrap();
    std::fs::remove_file(Path::new(SHM_DIR).join(&name)).unwrap();
    set_lifecycle(&object, 2);

    c.send("lock");
    c.expect("lock moved");
    assert!(
        !exists(&temporary),
        "the C locker removed the migrator's temporary name"
    );
    c.send("reopen");
    c.expect("open -2"); // -ENOENT: no region under the name
}

/// Removes a path when dropped (a test's planted file), whether the test passes or not.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `examples/python/read_region.py` on `name`: its exit status, stdout and stderr. `None`
/// when python3 is not installed.
fn python_read(name: &str) -> Option<(bool, String, String)> {
    if Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("note: python3 is not installed; skipping the Python interop test");
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/python/read_region.py");
    let child = Command::new("python3")
        .arg(&script)
        .arg(name)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = wait_with_timeout(child, Duration::from_secs(30), "read_region.py");
    Some((
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

/// A region Rust migrated has a versions table between its descriptor and its payload: the
/// Python reader places the payload after it, and prints the versions block as `inspect`
/// does (both releases, the newest held, which release knows each field).
#[test]
fn the_python_example_reads_a_migrated_region_and_its_versions_like_inspect() {
    use shmstore_tests::config_versions::ConfigV1;
    use shmstore_tests::config_versions_plus::ConfigV1Plus;
    let (name, _cleanup) = region("python-migrated");
    let _old = Shm::<ConfigV1>::create(&name, config_v1(4)).unwrap();
    let new = Shm::<ConfigV1Plus>::open(&name).expect("the wider writer migrates the region");
    new.lock().unwrap().retries = 3;
    let Some((ok, stdout, stderr)) = python_read(&name) else {
        return;
    };
    assert!(ok, "read_region.py failed:\n{stdout}{stderr}");
    let inspect = run(&["inspect", &name]);
    inspect.ok();
    assert_eq!(stdout, inspect.stdout);
    assert!(
        stdout.contains("  workers = 4\n  retries = 3\n"),
        "{stdout}"
    );
    assert!(stdout.contains("\n  #1 Config (fingerprint "), "{stdout}");
    assert!(
        stdout.contains(", newest, held): workers, retries, "),
        "{stdout}"
    );
    assert!(stdout.contains("\n  retries        #2\n"), "{stdout}");
}

/// The header's `lifecycle` word decides whether the Python reader follows the name: 1
/// (a migrator at work, or dead before its rename) while the name still refers to the object
/// is read as usual; 2 (moved) is said, and the name read again, once.
#[test]
fn the_python_example_follows_a_moved_region_once() {
    let (name, _cleanup) = region("python-follow");
    let _shm = Shm::<Sample>::create(&name, sample()).unwrap();
    let object = open_object(&name);
    set_lifecycle(&object, 1);
    let Some((ok, stdout, stderr)) = python_read(&name) else {
        return;
    };
    assert!(ok, "read_region.py failed:\n{stdout}{stderr}");
    assert!(!stdout.contains("reading its successor"), "{stdout}");
    assert!(stdout.contains("value at version 0"), "{stdout}");

    // Moved, yet the name still refers to it (no successor to read): said, then refused.
    set_lifecycle(&object, 2);
    let (ok, stdout, stderr) = python_read(&name).unwrap();
    assert!(!ok, "{stdout}");
    assert_eq!(
        stdout,
        format!("region `{name}` moved: migrated to a wider type; reading its successor\n")
    );
    assert!(stderr.contains("moved again while it was read"), "{stderr}");
}
