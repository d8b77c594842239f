//! Looking never crashes (issue 13, points 3, 13 and 2): `shmstore::list`, `Store::list` and
//! `Inspector` survive other processes shrinking, swapping or forging objects, even objects
//! they were not asked about; names that belong to others are refused; `Store::remove_all`
//! removes what it can before it reports what it could not; a segment's creator is listed.
//!
//! A lister that the code under test could kill runs in a child process (this test binary run
//! again as `child_process_entry` with a role in [`ROLE`]), and the test checks how it exited:
//! a SIGBUS shows as a signal, not as a failed assertion.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shmstore::inspect::Inspector;
use shmstore::{Error, Location, Shm, Store};
use shmstore_tests::*;

/// The environment variable that makes this binary a child playing a role.
const ROLE: &str = "SHMSTORE_LOOKING_ROLE";

/// How many times the lister child lists while a peer churns an object.
const LISTINGS: usize = 20_000;

/// Runs this test binary again as a child playing `role` (words separated by spaces).
fn spawn_child(role: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "child_process_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, role)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Waits for `child`; kills it and panics if it takes longer than `limit` (a hang: the
/// children here do a bounded amount of work, which takes a few seconds on a loaded machine).
fn wait_bounded(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} hung: still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn assert_exited_cleanly(status: ExitStatus, what: &str) {
    assert!(
        status.success(),
        "{what} did not exit cleanly: {status} (signal {:?}; 7 is SIGBUS)",
        status.signal()
    );
}

#[test]
fn child_process_entry() {
    let Ok(role) = std::env::var(ROLE) else {
        return; // an ordinary test run: nothing to do
    };
    let words: Vec<&str> = role.split_whitespace().collect();
    match words.as_slice() {
        ["list", prefix] => {
            let store = Store::new(prefix).unwrap();
            for _ in 0..LISTINGS {
                let mine = store.list().unwrap();
                assert_eq!(mine.len(), 1, "{mine:?}");
                shmstore::list().unwrap();
            }
        }
        ["inspect", name] => inspect_across_a_shrink(name),
        ["list-forged", prefix, count] => {
            let count: usize = count.parse().unwrap();
            let before = bytes_read();
            let listed = Store::new(prefix).unwrap().list().unwrap();
            let read = bytes_read() - before;
            assert_eq!(listed.len(), count, "{listed:?}");
            assert!(listed.iter().all(|r| r.type_name == "Forged"), "{listed:?}");
            // The header and at most 64 KiB of descriptor per object, and the reads of
            // /proc/self/io itself: nowhere near 16 MiB each.
            let bound = count as u64 * (64 << 10) + 64 * 1024;
            assert!(read <= bound, "read {read} bytes for {count} objects");
            println!("read {read}");
        }
        ["remove-all", prefix] => {
            use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};
            setgroups(&[]).expect("setgroups");
            setgid(Gid::from_raw(65534)).expect("setgid");
            setuid(Uid::from_raw(65534)).expect("setuid");
            // Made by this user, so the sticky /dev/shm lets it remove this one.
            let store = Store::new(prefix).unwrap();
            drop(store.create::<u64>("z-own", 1).unwrap());
            match store.remove_all() {
                Ok(n) => println!("removed {n}"),
                Err(e) => println!("err {} {e}", variant(&e)),
            }
        }
        _ => panic!("unknown role {role:?}"),
    }
}

/// In a child: opens an inspector, says `opened`, waits for a line (meanwhile the test
/// truncates the object to nothing), then uses every view of the inspector.
fn inspect_across_a_shrink(name: &str) {
    let view = Inspector::open(name).unwrap();
    assert_eq!(view.read().len(), 16);
    let version = view.version();
    println!("opened");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    // Every view survives; the ones that can fail say why.
    let _ = view.header_fields();
    let _ = view.info();
    assert_eq!(view.version(), version, "the version as of the open");
    assert!(view.read().is_empty(), "nothing left to read");
    let read = view.read_timeout(Duration::from_millis(50)).unwrap_err();
    assert!(matches!(read, Error::Corrupt { .. }), "{read}");
    assert_mentions(&read, &["shrank"]);
    let wait = view
        .wait_for_change(version, Some(Duration::from_millis(50)))
        .unwrap_err();
    assert!(matches!(wait, Error::Corrupt { .. }), "{wait}");
    println!("survived");
}

/// How many bytes this process has read with `read`-like system calls (`rchar`).
fn bytes_read() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap();
    io.lines()
        .find_map(|line| line.strip_prefix("rchar: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("/proc/self/io has rchar")
}

/// The largest descriptor a header may claim (16 MiB, `MAX_DESCRIPTOR_LEN`).
const HUGE_DESCRIPTOR: u64 = 16 << 20;

/// Turns the `Shm<u64>` region `name` (default mode) into one whose header claims a 16 MiB
/// type descriptor, consistent with the rest of the header: the type name `Forged`, then a
/// field count of 0 and zeros (so the whole descriptor does not decode). The object is sparse:
/// it costs no memory, and reading it whole would cost time.
fn forge_huge_descriptor(name: &str) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(shm_path(name))
        .unwrap();
    // FORMAT.md: the payload starts at the next 64-byte boundary after the descriptor, the
    // second copy at the next one after the first copy.
    let payload_offset = 256 + HUGE_DESCRIPTOR;
    let region_size = payload_offset + 64 + 8;
    file.set_len(region_size).unwrap();
    for (offset, value) in [
        (32, payload_offset),
        (56, region_size),
        (72, HUGE_DESCRIPTOR),
    ] {
        file.write_all_at(&value.to_ne_bytes(), offset).unwrap();
    }
    let mut descriptor = 6u32.to_ne_bytes().to_vec();
    descriptor.extend_from_slice(b"Forged");
    descriptor.extend_from_slice(&0u32.to_ne_bytes());
    file.write_all_at(&descriptor, 256).unwrap();
}

/// A peer that truncates an object and writes it back, over and over, until told to stop.
fn churn(path: std::path::PathBuf, stop: &AtomicBool) {
    let bytes = std::fs::read(&path).unwrap();
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    while !stop.load(Ordering::Relaxed) {
        file.set_len(0).unwrap();
        file.set_len(bytes.len() as u64).unwrap();
        file.write_all_at(&bytes, 0).unwrap();
    }
}

/// Another user's object shrinking under a lister killed it with SIGBUS, even when the lister
/// only asked for its own store's regions: `Store::list` must not touch other names, and
/// `shmstore::list` must read what it touches with `pread`.
#[test]
fn listing_survives_a_peer_shrinking_an_object() {
    let (victim, _victim_cleanup) = region("looking-victim");
    drop(Shm::<Counter>::create(&victim, Counter::at(3)).unwrap());
    let prefix = unique_name("looking-store");
    let store = Store::new(&prefix).unwrap();
    let _mine_cleanup = Place::adopt_name(&store.name_of("mine").unwrap());
    drop(store.create::<u64>("mine", 7).unwrap());

    let stop = AtomicBool::new(false);
    let status = std::thread::scope(|s| {
        s.spawn(|| churn(shm_path(&victim), &stop));
        let mut lister = spawn_child(&format!("list {prefix}"));
        let status = wait_bounded(&mut lister, Duration::from_secs(300), "the lister");
        stop.store(true, Ordering::Relaxed);
        status
    });
    assert_exited_cleanly(status, "the lister");
}

/// Bug: `list` read each descriptor whole and skipped regions whose rest did not decode.
///
/// Fifty regions whose headers claim 16 MiB descriptors: a listing reads only the type name
/// (at most 64 KiB of each), so it lists them without reading 800 MiB; it used to read each
/// descriptor whole, and then skip the region because the rest did not decode.
#[test]
fn regression_list_read_huge_descriptors_whole_and_skipped_their_regions() {
    const FORGED: usize = 50;
    let prefix = unique_name("looking-huge");
    let store = Store::new(&prefix).unwrap();
    let mut cleanup = Vec::new();
    for i in 0..FORGED {
        let name = store.name_of(&format!("r{i}")).unwrap();
        cleanup.push(Place::adopt_name(&name));
        drop(Shm::<u64>::create(&name, 1).unwrap());
        forge_huge_descriptor(&name);
    }
    let mut lister = spawn_child(&format!("list-forged {prefix} {FORGED}"));
    let status = wait_bounded(&mut lister, Duration::from_secs(120), "the lister");
    assert_exited_cleanly(status, "the lister");
    // The inspector reads it whole, and says what is wrong.
    let name = store.name_of("r0").unwrap();
    match Inspector::open(name.as_str()) {
        Err(e @ Error::Corrupt { .. }) => assert_mentions(&e, &["trailing"]),
        other => panic!("{other:?}"),
    }
}

/// Bug: an inspector died of SIGBUS once another process truncated its object.
///
/// An inspector that was open when another process truncated the object used to die of
/// SIGBUS on its next read; it reads with `pread` now, and says the object shrank.
#[test]
fn regression_sigbus_when_a_peer_truncates_an_inspected_object() {
    let (name, _cleanup) = region("looking-inspect");
    drop(Shm::<Counter>::create(&name, Counter::at(5)).unwrap());
    let mut child = spawn_child(&format!("inspect {name}"));
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("opened") {
        let mut line = String::new();
        assert_ne!(out.read_line(&mut line).unwrap(), 0, "child ended: {seen}");
        seen.push_str(&line);
    }
    OpenOptions::new()
        .write(true)
        .open(shm_path(&name))
        .unwrap()
        .set_len(0)
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "go").unwrap();
    let status = wait_bounded(&mut child, Duration::from_secs(60), "the inspector");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert_exited_cleanly(status, "the inspector");
    assert!(rest.contains("survived"), "{rest}");
}

/// A FIFO, a symbolic link or a directory under a region's name is another program's, never
/// opened in a way that blocks: the listing skips it and the inspector says what it is.
#[test]
fn objects_that_are_not_files_are_refused_at_once() {
    let prefix = unique_name("looking-odd");
    let store = Store::new(&prefix).unwrap();
    let mut cleanup = Vec::new();
    let fifo = store.name_of("fifo").unwrap();
    let link = store.name_of("link").unwrap();
    let dir = store.name_of("dir").unwrap();
    for name in [&fifo, &link, &dir] {
        cleanup.push(Place::adopt_name(name));
    }
    nix::unistd::mkfifo(
        &shm_path(&fifo),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    std::os::unix::fs::symlink(shm_path(&fifo), shm_path(&link)).unwrap();
    std::fs::create_dir(shm_path(&dir)).unwrap();
    assert_eq!(store.list().unwrap(), []);
    for name in [&fifo, &dir] {
        match Inspector::open(name.as_str()) {
            Err(e @ Error::Corrupt { .. }) => assert_mentions(&e, &["not a regular file"]),
            other => panic!("{name}: {other:?}"),
        }
        match Inspector::read_head(&Location::Named(name.clone())) {
            Err(e @ Error::Corrupt { .. }) => assert_mentions(&e, &["not a regular file"]),
            other => panic!("{name}: {other:?}"),
        }
    }
    // A link is never followed (O_NOFOLLOW): an error, not the FIFO behind it.
    assert!(Inspector::open(link.as_str()).is_err());
    assert!(Inspector::read_head(&Location::Named(link.clone())).is_err());
}

/// `sem.*` is glibc's (named semaphores), and a name starting with `-` reads as an option.
#[test]
fn names_that_belong_to_others_are_refused() {
    let names = ["sem.shmstore-test-looking", "sem.", "-rf", "-"];
    // Only if a name were wrongly accepted would there be anything to remove.
    let mut _cleanup = Vec::new();
    for name in names {
        _cleanup.push(Place::adopt_name(name));
    }
    for name in names {
        match Shm::<u64>::create(name, 1) {
            Err(e @ Error::InvalidName { .. }) => assert_mentions(&e, &[name]),
            other => panic!("{name}: {other:?}"),
        }
        assert!(shmstore::validate_name(name).is_err(), "{name}");
        assert!(Inspector::open(name).is_err(), "{name}");
    }
    match Store::new("sem") {
        Err(e @ Error::InvalidName { .. }) => assert_mentions(&e, &["\"sem\"", "semaphores"]),
        other => panic!("{other:?}"),
    }
    assert!(Store::new("-x").is_err());
    assert!(Store::new("semaphores").is_ok());
    assert!(shmstore::validate_name("my-sem.x").is_ok());
}

/// Bug: `remove_all` stopped at the first name it could not remove.
///
/// `remove_all` used to stop at the first name it could not remove; it removes every other
/// one first now, and its error names what is left.
#[test]
fn regression_remove_all_stopped_at_the_first_name_it_could_not_remove() {
    if !is_root() {
        eprintln!("skipped: setuid needs root");
        return;
    }
    let prefix = unique_name("looking-removeall");
    let store = Store::new(&prefix).unwrap();
    let mut cleanup = Vec::new();
    // Root's, mode 0644: the sticky /dev/shm keeps uid 65534 from removing it. It sorts
    // before the child's own region, so an early return leaves the child's in place.
    let roots = store.name_of("a-root").unwrap();
    cleanup.push(Place::adopt_name(&roots));
    cleanup.push(Place::adopt_name(&store.name_of("z-own").unwrap()));
    drop(Shm::<u64>::options().mode(0o644).create(&roots, 1).unwrap());
    std::fs::set_permissions(shm_path(&roots), std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut child = spawn_child(&format!("remove-all {prefix}"));
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    let status = wait_bounded(&mut child, Duration::from_secs(60), "remove_all");
    assert_exited_cleanly(status, "remove_all");
    // The harness prints `test child_process_entry ... ` before the child's own output.
    let line = ["err ", "removed "]
        .iter()
        .find_map(|word| out.find(word).map(|at| &out[at..]))
        .unwrap_or_else(|| panic!("no outcome in {out}"));
    assert!(line.starts_with("err PermissionDenied"), "{line}");
    assert!(line.contains(&roots), "{line}");
    assert!(exists(&roots), "root's region stays");
    assert!(
        !exists(&store.name_of("z-own").unwrap()),
        "the removable region was removed before the error"
    );
}

/// A System V segment's creator (`cuid`) is listed beside its owner: the owner can be given
/// away with `IPC_SET`, the creator cannot.
#[test]
fn a_segment_is_listed_with_its_creator() {
    let place = Place::new(Backend::SysV, "looking-cuid");
    let _shm = Shm::<u64>::options()
        .unlink_on_drop(true)
        .create(place.location().clone(), 9)
        .unwrap();
    let listed = shmstore::list()
        .unwrap()
        .into_iter()
        .find(|r| &r.location == place.location())
        .expect("the segment is listed");
    assert_eq!(listed.creator_uid, Some(nix::unistd::geteuid().as_raw()));
    let view = Inspector::open(place.location().clone()).unwrap();
    assert_eq!(view.info().creator_uid, listed.creator_uid);
    // POSIX regions have no separate creator.
    let (name, _cleanup) = region("looking-cuid-posix");
    let _posix = Shm::<u64>::create(&name, 1).unwrap();
    let posix = shmstore::list()
        .unwrap()
        .into_iter()
        .find(|r| r.name == name)
        .unwrap();
    assert_eq!(posix.creator_uid, None);
}
