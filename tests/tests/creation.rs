//! What creation may and may not do to what it finds (issue 13, points 4, 7 and 14):
//!
//! - `open_or_create` takes over only a blank object (empty, or exactly the zeros an
//!   interrupted creation of its type leaves) or an unfinished shmstore region; anything else
//!   is `Error::Corrupt` and stays byte for byte as it was, and nothing is ever shrunk;
//! - a System V segment that no shmstore creator claimed is never taken over;
//! - a full tmpfs or disk makes `create` fail with `Error::Io` (the pages are reserved with
//!   `fallocate`) instead of killing the process with SIGBUS later;
//! - `create` over a symbolic link, a FIFO or a directory says what is there.
//!
//! Some scenarios run in a child process: this test binary started again (see [`child`]), in a
//! private mount namespace (`unshare -m`) where it mounts a small tmpfs, or so that a segment's
//! creator is a process that has exited.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::TryLockError;
use std::time::Duration;

use nix::libc;
use shmstore::inspect::Inspector;
use shmstore::{Error, Location, Shm, ShmQueue, ShmType};
use shmstore_tests::{
    assert_already_exists, assert_mentions, assert_not_found, helper, noise, segment, stored_bytes,
    Backend, Counter, Helper, MsgQueue, Page, Pair, Place, TempDir, OLD,
};

/// The environment variable that makes [`child_role`] act: a role and its arguments, separated
/// by spaces.
const ROLE: &str = "SHMSTORE_CREATION_CHILD_ROLE";

/// How long an open waits for an initialiser that no longer exists (none of these tests has a
/// live one).
const SHORT: Duration = Duration::from_millis(200);

/// Runs this test binary again as a child that performs `role` (see [`child_role`]), with
/// `prefix` (a program and its arguments, such as `unshare -m`) in front of it, and returns
/// what it printed and how it ended.
fn child(prefix: &[&str], role: &str) -> Output {
    let exe = std::env::current_exe().expect("the test binary's path");
    let (program, args) = match prefix.split_first() {
        Some((program, args)) => (*program, args.to_vec()),
        None => (exe.to_str().expect("a UTF-8 path"), Vec::new()),
    };
    let mut command = Command::new(program);
    command.args(args);
    if !prefix.is_empty() {
        command.arg(&exe);
    }
    command
        .args(["--exact", "child_role", "--nocapture", "--test-threads=1"])
        .env(ROLE, role);
    command.output().expect("start the child")
}

/// What a child printed after `child-result: `.
fn results(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        // libtest prints "test child_role ... " before the first line.
        .filter_map(|line| line.split_once("child-result: "))
        .map(|(_, result)| result.to_string())
        .collect()
}

/// Not a test of its own: the body of the children [`child`] starts. Does nothing unless the
/// [`ROLE`] variable is set.
#[test]
fn child_role() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let words: Vec<&str> = role.split(' ').collect();
    match words.as_slice() {
        ["raw-segment", key, size] => {
            let key: i32 = key.parse().expect("KEY");
            let size: usize = size.parse().expect("SIZE");
            // SAFETY: plain system call; it creates a zero-filled segment and touches no
            // memory of this process.
            let id = unsafe { libc::shmget(key, size, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
            assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
            println!("child-result: created");
        }
        ["full", backend, kind, dir] => full_tmpfs(backend, kind, Path::new(dir)),
        other => panic!("unknown role {other:?}"),
    }
}

// ---- blank or not ----

/// The size of a fresh default-mode `T` region: what an interrupted creation of it leaves.
fn region_size<T: ShmType>() -> usize {
    let place = Place::new(Backend::Posix, "size-probe");
    let shm = Shm::<T>::options()
        .create_with(place.location(), |_| {})
        .unwrap();
    drop(shm);
    std::fs::metadata(place.path().unwrap()).unwrap().len() as usize
}

/// Puts `bytes` at a file place, or in a new segment at a System V place made by a child
/// process that has exited since (so that no live creator is waited for).
fn plant(place: &Place, bytes: &[u8]) {
    match (place.path(), place.key()) {
        (Some(path), _) => std::fs::write(path, bytes).unwrap(),
        (None, Some(key)) => {
            let made = child(&[], &format!("raw-segment {key} {}", bytes.len()));
            assert_eq!(results(&made), ["created"], "{made:?}");
            segment::write(key, bytes);
        }
        (None, None) => unreachable!("a place has a path or a key"),
    }
}

fn open_or_create_counter(place: &Place) -> Result<Shm<Counter>, Error> {
    Shm::<Counter>::options()
        .open_timeout(SHORT)
        .open_or_create(place.location(), || Counter::at(7))
}

/// `bytes` planted at a fresh place: `open_or_create` (and `open`) must call it corrupt, saying
/// `why`, and leave every byte as it was.
fn assert_left_alone(backend: Backend, tag: &str, bytes: &[u8], why: &str) {
    let place = Place::new(backend, tag);
    plant(&place, bytes);
    for attempt in ["open_or_create", "open"] {
        let result = match attempt {
            "open" => Shm::<Counter>::options()
                .open_timeout(SHORT)
                .open(place.location()),
            _ => open_or_create_counter(&place),
        };
        match result {
            Err(e @ Error::Corrupt { .. }) => {
                assert_mentions(&e, &[why]);
                // Only an unfinished region is worth `open_or_create`.
                assert!(!e.to_string().contains("open_or_create"), "{e}");
            }
            other => panic!("{tag} on {backend:?}: {attempt} gave {other:?}"),
        }
        assert!(
            stored_bytes(&place) == bytes,
            "{tag} on {backend:?}: {attempt} changed what it did not create"
        );
    }
}

/// Bug: `open_or_create` took over and truncated a file that merely began with zeros.
///
/// `open_or_create` used to take over any object whose first 8 bytes and state word were zero,
/// and truncate it to its own size: a 1 MiB file that merely began with zeros lost all but
/// its first few hundred bytes.
fn regression_open_or_create_truncated_data_that_starts_with_zeros(backend: Backend) {
    let blank_size = region_size::<Counter>();
    // A segment claimed by a dead creator, as an interrupted creation leaves it (an unclaimed
    // one is never taken over at all).
    let claimed = |bytes: Vec<u8>| match backend {
        Backend::SysV => claimed_by_the_dead(&bytes),
        _ => bytes,
    };

    // Zeros, then someone's data.
    let mut data = vec![0u8; 4096];
    data.extend(noise((1 << 20) - 4096, 0xda7a));
    let data = claimed(data);
    assert_left_alone(backend, "zeros-then-data", &data, "holds something else");
    // The same at exactly the size of an unfinished region.
    let mut data = vec![0u8; blank_size];
    *data.last_mut().unwrap() = 1;
    let data = claimed(data);
    assert_left_alone(backend, "zeros-then-one", &data, "bytes after it are not");
    // Only zeros, but not the size an unfinished creation of this type leaves: never shrunk.
    assert_left_alone(
        backend,
        "zeros-1mib",
        &claimed(vec![0u8; 1 << 20]),
        &format!("leaves {blank_size}"),
    );

    // What an interrupted creation does leave is taken over. (A segment is never empty.)
    let mut blanks = vec![vec![0u8; blank_size]];
    if backend != Backend::SysV {
        blanks.push(Vec::new());
    }
    for blank in blanks {
        let place = Place::new(backend, "blank");
        plant(&place, &claimed(blank));
        let shm = open_or_create_counter(&place).expect("blank");
        assert_eq!(shm.read(), Counter::at(7));
    }
}

/// `blank` with a `creator_pid` (bytes 80..84) that names no live process.
fn claimed_by_the_dead(blank: &[u8]) -> Vec<u8> {
    let mut claimed = blank.to_vec();
    claimed[80..84].copy_from_slice(&u32::MAX.to_ne_bytes());
    claimed
}

/// Bug: taking over a larger unfinished region truncated it to the new size.
///
/// An unfinished region whose creator died is taken over, but a larger one keeps its size:
/// `open_or_create` used to truncate it to the new region's size.
fn regression_taking_over_an_unfinished_region_shrank_it(backend: Backend) {
    if backend == Backend::SysV {
        // A segment cannot change size at all (see
        // `regression_an_unclaimed_zero_segment_was_taken_over`).
        return;
    }
    let place = Place::new(backend, "unfinished-large");
    drop(Shm::<Page>::create(place.location(), Page::filled(3)).unwrap());
    let mut bytes = stored_bytes(&place);
    // State 1, "initialising", and nobody holds its flock: its creator is gone.
    bytes[16..20].copy_from_slice(&1u32.to_ne_bytes());
    plant(&place, &bytes);
    let e = Shm::<Counter>::open(place.location()).expect_err("unfinished");
    assert!(matches!(e, Error::Incomplete { .. }), "{e:?}");

    let shm = open_or_create_counter(&place).expect("an unfinished region is taken over");
    assert_eq!(shm.read(), Counter::at(7));
    let len = std::fs::metadata(place.path().unwrap()).unwrap().len() as usize;
    assert_eq!(len, bytes.len(), "the object was resized");
}

/// Bug: a System V segment no shmstore creator claimed was taken over when its header was zero.
///
/// A System V segment that no shmstore creator claimed (its `creator_pid` is 0) and whose
/// creator has exited used to be taken over when its header was zero. It may be any program's.
#[test]
fn regression_an_unclaimed_zero_segment_was_taken_over() {
    let blank_size = region_size::<Counter>();
    let place = Place::new(Backend::SysV, "unclaimed");
    let zeros = vec![0u8; blank_size];
    plant(&place, &zeros);
    let e = open_or_create_counter(&place).expect_err("unclaimed");
    assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
    assert_mentions(&e, &["no shmstore creator", "ipcrm -m"]);
    assert!(
        stored_bytes(&place) == zeros,
        "changed an unclaimed segment"
    );

    // Zero header, data after it, larger than the region: also left alone.
    let place = Place::new(Backend::SysV, "unclaimed-data");
    let mut data = vec![0u8; 4096];
    data.extend(noise(8192, 0x5e9));
    plant(&place, &data);
    let e = open_or_create_counter(&place).expect_err("unclaimed");
    assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
    assert!(stored_bytes(&place) == data, "changed an unclaimed segment");
    // Even claimed (by a dead pid), it is not blank.
    segment::write(place.key().unwrap(), &claimed_by_the_dead(&data));
    let e = open_or_create_counter(&place).expect_err("not blank");
    assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
    assert!(
        stored_bytes(&place) == claimed_by_the_dead(&data),
        "changed someone's segment"
    );
}

mod regression_open_or_create_truncated_data_that_starts_with_zeros {
    use shmstore_tests::Backend;

    #[test]
    fn posix() {
        super::regression_open_or_create_truncated_data_that_starts_with_zeros(Backend::Posix);
    }

    #[test]
    fn file() {
        super::regression_open_or_create_truncated_data_that_starts_with_zeros(Backend::File);
    }

    #[test]
    fn sysv() {
        super::regression_open_or_create_truncated_data_that_starts_with_zeros(Backend::SysV);
    }
}

mod regression_taking_over_an_unfinished_region_shrank_it {
    use shmstore_tests::Backend;

    #[test]
    fn posix() {
        super::regression_taking_over_an_unfinished_region_shrank_it(Backend::Posix);
    }

    #[test]
    fn file() {
        super::regression_taking_over_an_unfinished_region_shrank_it(Backend::File);
    }
}

// ---- a full tmpfs ----

/// A value of 1 MiB: two copies of it do not fit in the children's 1 MiB tmpfs.
type Big = [u64; 1 << 17];
/// A queue of 2 MiB of slots.
type BigQueue = ShmQueue<u64, { 1 << 18 }>;

/// In a child, in its private mount namespace: mounts a 1 MiB tmpfs on `/dev/shm` (`posix`)
/// or on `dir` (`file`), checks that a small region fits, then creates a region of `kind`
/// (`value` or `queue`) too large for it and fills it, printing what `create` returned.
fn full_tmpfs(backend: &str, kind: &str, dir: &Path) {
    let (mount_point, location): (&Path, fn(&str, &Path) -> Location) = match backend {
        "posix" => (Path::new("/dev/shm"), |name, _| {
            Location::Named(name.into())
        }),
        "file" => (dir, |name, dir| Location::File(dir.join(name))),
        other => panic!("unknown backend {other}"),
    };
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "shmstore-test"])
        .arg(mount_point)
        .status()
        .expect("mount");
    assert!(mounted.success(), "mount: {mounted}");

    let small = Shm::<Counter>::create(location("small", dir), Counter::at(1));
    assert_eq!(small.expect("a small region fits").read(), Counter::at(1));

    let created = match kind {
        "value" => Shm::<Big>::options()
            .create_with(location("big", dir), |value| value.fill(u64::MAX))
            .map(drop),
        "queue" => BigQueue::options()
            .create(location("big", dir))
            .map(|queue| while queue.try_push(u64::MAX).is_ok() {}),
        other => panic!("unknown kind {other}"),
    };
    match created {
        Ok(()) => println!("child-result: created"),
        Err(e) => println!("child-result: {} {e}", variant(&e)),
    }
    let leftover = std::fs::read_dir(mount_point)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    println!("child-result: left {leftover}");
}

fn variant(e: &Error) -> &'static str {
    match e {
        Error::Io { .. } => "Io",
        Error::Corrupt { .. } => "Corrupt",
        _ => "other",
    }
}

/// Bug: a region larger than its tmpfs's free space was created sparse, then died of SIGBUS.
///
/// A region larger than the free space of its tmpfs (Docker's `/dev/shm` is 64 MiB) used to be
/// created sparse, and the process died of SIGBUS when it first wrote a page the tmpfs had no
/// room for. Now `create` reserves the pages and reports `ENOSPC` as `Error::Io`.
fn regression_sigbus_when_a_region_outgrows_a_full_tmpfs(backend: &str, kind: &str) {
    let dir = TempDir::new("full-tmpfs");
    let role = format!("full {backend} {kind} {}", dir.path().display());
    let output = child(&["unshare", "--mount", "--propagation", "private"], &role);
    assert!(
        output.status.success(),
        "the child failed (signal {:?}): {}{}",
        output.status.signal(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let lines = results(&output);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("Io fallocate"), "{lines:?}");
    assert!(lines[0].contains("No space left on device"), "{lines:?}");
    // The failed creation left nothing under the name.
    assert_eq!(lines[1], "left small", "{lines:?}");
}

mod regression_sigbus_when_a_region_outgrows_a_full_tmpfs {
    #[test]
    fn posix_value() {
        super::regression_sigbus_when_a_region_outgrows_a_full_tmpfs("posix", "value");
    }

    #[test]
    fn posix_queue() {
        super::regression_sigbus_when_a_region_outgrows_a_full_tmpfs("posix", "queue");
    }

    #[test]
    fn file_value() {
        super::regression_sigbus_when_a_region_outgrows_a_full_tmpfs("file", "value");
    }

    #[test]
    fn file_queue() {
        super::regression_sigbus_when_a_region_outgrows_a_full_tmpfs("file", "queue");
    }
}

// ---- messages ----

/// Bug: `create` over a symbolic link, FIFO or directory said the region "already exists".
///
/// `create` over a symbolic link, a FIFO or a directory used to say the region "already
/// exists" and advise opening it.
#[test]
fn regression_create_over_a_link_fifo_or_directory_said_already_exists() {
    for (kind, plant) in [
        ("a symbolic link", plant_symlink as fn(&Path)),
        ("a FIFO", plant_fifo),
        ("a directory", plant_dir),
    ] {
        for backend in [Backend::Posix, Backend::File] {
            let place = Place::new(backend, "taken");
            plant(&place.path().unwrap());
            let e = Shm::<Counter>::create(place.location(), Counter::at(1))
                .expect_err("the name is taken");
            assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
            assert_mentions(&e, &[kind, &place.to_string()]);
            assert!(!e.to_string().contains("Shm::open"), "{e}");
        }
    }
}

fn plant_symlink(path: &Path) {
    std::os::unix::fs::symlink("/nonexistent/shmstore-test-target", path).unwrap();
}

fn plant_fifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

fn plant_dir(path: &Path) {
    std::fs::create_dir(path).unwrap();
}

/// The `InvalidLocation` message had a run of ten spaces in the middle of a sentence.
#[test]
fn the_invalid_location_message_has_no_run_of_spaces() {
    let e = Location::File("/tmp/".into()).validate().unwrap_err();
    assert!(matches!(e, Error::InvalidLocation { .. }), "{e:?}");
    let message = e.to_string();
    assert!(!message.contains("  "), "{message}");
    assert!(
        message.contains("a path ending in a file name"),
        "{message}"
    );
}

// ---- symbolic links among the directory components ----

/// Bug: `unlink_on_drop` looked a re-pointed directory up again and left its own file behind.
///
/// The directory part of a file region's path is resolved once, when the handle is made
/// (symbolic links in it followed, as any program follows them); the handle's later steps use
/// that directory. A handle with `unlink_on_drop` whose directory path was re-pointed used to
/// look the path up again, find another file there, and leave its own file behind.
#[test]
fn regression_unlink_on_drop_left_its_file_behind_a_repointed_directory() {
    let base = TempDir::new("dir-once");
    let (first, second, current) = (
        base.join("first"),
        base.join("second"),
        base.join("current"),
    );
    std::fs::create_dir(&first).unwrap();
    std::fs::create_dir(&second).unwrap();
    std::os::unix::fs::symlink(&first, &current).unwrap();
    let path = current.join("state.shm");

    let shm = Shm::<Counter>::options()
        .unlink_on_drop(true)
        .create(path.clone(), Counter::at(1))
        .expect("a symbolic link among the directories is followed");
    assert!(first.join("state.shm").exists());
    let reopened = Shm::<Counter>::open(path.clone()).unwrap();
    assert_eq!(reopened.read(), Counter::at(1));
    drop(reopened);

    // `current` now leads to `second`, where another file has the same name.
    std::fs::remove_file(&current).unwrap();
    std::os::unix::fs::symlink(&second, &current).unwrap();
    std::fs::write(second.join("state.shm"), b"someone else's").unwrap();
    drop(shm);
    assert!(
        !first.join("state.shm").exists(),
        "unlink_on_drop left the handle's own file behind"
    );
    assert_eq!(
        std::fs::read(second.join("state.shm")).unwrap(),
        b"someone else's"
    );
}

// ---- every backend (the matrix) ----

shmstore_tests::for_each_backend!(
    create_open_read_lock_round_trip,
    open_or_create_raced_by_processes_runs_init_once,
    invalid_location_is_refused,
);

fn create_open_read_lock_round_trip(backend: Backend) {
    let place = Place::new(backend, "round-trip");
    assert_eq!(Location::parse(&place.to_string()), *place.location());

    // Nothing there yet: every way of opening says NotFound, and none creates anything.
    assert_not_found(Shm::<Pair>::open(&place), &place);
    assert_not_found(Shm::<Pair>::open_reader(&place), &place);
    assert_not_found(MsgQueue::open(&place), &place);
    assert_not_found(Inspector::open(place.location()), &place);
    assert_not_found(shmstore::unlink(place.location()), &place);
    let e = Shm::<Pair>::open(&place).unwrap_err();
    assert_mentions(&e, &[&place.to_string(), "create it first"]);
    assert!(!place.exists(), "open must not create");
    assert_eq!(
        helper!("queue-open-as", place, "value").finish_ok(),
        ["err NotFound"]
    );

    let shm = Shm::<Pair>::create(&place, OLD).unwrap();
    assert!(place.exists());
    assert_eq!(shm.location(), place.location());
    assert_eq!(shm.name(), place.to_string());
    assert_eq!(shm.creator_pid(), std::process::id());
    assert_eq!(shm.read(), OLD);

    // Taken now, whatever the type, kind or mode asked for; the loser overwrites nothing.
    let taken = Shm::<Pair>::create(&place, Pair { a: 9, b: 9 });
    if let Err(e) = &taken {
        assert_mentions(e, &[&place.to_string(), "Shm::open"]);
    }
    assert_already_exists(taken, &place);
    assert_already_exists(
        Shm::<Counter>::options()
            .in_place(true)
            .create(place.location(), Counter::at(9)),
        &place,
    );
    assert_already_exists(MsgQueue::create(&place), &place);
    assert_eq!(shm.read(), OLD);

    {
        let mut g = shm.lock().unwrap();
        g.a = 3;
        g.b = 4;
    }
    shm.flush().unwrap();
    let v = shm.version();
    let other = Shm::<Pair>::open(&place).unwrap();
    assert_eq!((other.read(), other.version()), (Pair { a: 3, b: 4 }, v));
    let reader = Shm::<Pair>::open_reader(&place).unwrap();
    assert_eq!((reader.read(), reader.version()), (Pair { a: 3, b: 4 }, v));
    let opened =
        Shm::<Pair>::open_or_create(&place, || panic!("init ran over an existing region")).unwrap();
    assert_eq!(opened.read(), Pair { a: 3, b: 4 });

    // Another process reads what this one wrote, and its lock excludes this process.
    assert_eq!(
        helper!("lock-and-print", place).finish_ok(),
        ["locking", "ok 3 4"]
    );
    let mut holder = helper!("hold", place);
    holder.expect("locked");
    assert!(matches!(shm.try_lock(), Err(TryLockError::WouldBlock)));
    assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
    holder.send("go");
    assert_eq!(holder.finish_ok(), ["released"]);
    {
        let mut g = shm.try_lock().expect("free again");
        g.b = 5;
    }
    assert_eq!(reader.read(), Pair { a: 3, b: 5 });
    assert_eq!(
        helper!("lock-and-print", place).finish_ok(),
        ["locking", "ok 3 5"]
    );
}

/// 12 processes race `open_or_create` on one fresh location: exactly one runs its init,
/// and every one sees the value that init returned.
fn open_or_create_raced_by_processes_runs_init_once(backend: Backend) {
    const RACERS: usize = 12;
    for in_place in [false, true] {
        let place = Place::new(backend, "race");
        let mut helpers: Vec<Helper> = (0..RACERS)
            .map(|i| helper!("open-or-create", place, 1000 + i, u8::from(in_place)))
            .collect();
        for h in &mut helpers {
            h.expect("ready");
        }
        for h in &mut helpers {
            h.send("go");
        }
        let reports: Vec<(u32, String)> = helpers
            .into_iter()
            .map(|h| {
                let pid = h.pid().as_raw() as u32;
                let lines = h.finish_ok();
                assert_eq!(lines.len(), 1, "{lines:?}");
                (pid, lines[0].clone())
            })
            .collect();
        let winners: Vec<usize> = (0..RACERS)
            .filter(|&i| reports[i].1.starts_with("init=yes"))
            .collect();
        assert_eq!(winners.len(), 1, "init ran in {winners:?}: {reports:?}");
        let (winner_pid, _) = reports[winners[0]];
        let value = 1000 + winners[0] as u64;
        for (i, (_, report)) in reports.iter().enumerate() {
            let init = if i == winners[0] { "yes" } else { "no" };
            assert_eq!(
                report,
                &format!("init={init} count={value} mirror={value} creator={winner_pid}"),
                "racer {i}, in_place {in_place}"
            );
        }
        let shm = Shm::<Counter>::open(&place).unwrap();
        assert_eq!(shm.read(), Counter::at(value));
        assert_eq!(shm.creator_pid(), winner_pid);
        assert_eq!(shm.is_in_place(), in_place);
    }
}

/// Locations that cannot name a region are refused before any system call, by every entry
/// point, in this process and in another one.
fn invalid_location_is_refused(backend: Backend) {
    let guard = Place::new(backend, "invalid");
    let (locations, variant): (Vec<Location>, &str) = match backend {
        Backend::Posix => (
            vec![
                Location::Named(String::new()),
                Location::Named("..".into()),
                Location::Named("a b".into()),
            ],
            "InvalidName",
        ),
        Backend::File => {
            let dir = guard.dir().expect("a file place has a directory");
            (
                vec![
                    Location::File("".into()),
                    Location::File(format!("{}/", dir.display()).into()),
                    Location::File(dir.join("..")),
                    Location::File("/".into()),
                ],
                "InvalidLocation",
            )
        }
        Backend::SysV => (vec![Location::SysV(0)], "InvalidLocation"),
    };
    for location in &locations {
        let check = |what: &str, e: Error| {
            let text = location.to_string();
            let ok = match (&e, backend) {
                (Error::InvalidName { name, .. }, Backend::Posix) => *name == text,
                (Error::InvalidLocation { location, .. }, Backend::File | Backend::SysV) => {
                    *location == text
                }
                _ => false,
            };
            assert!(ok, "{what}({location:?}): expected {variant}, got {e:?}");
        };
        check(
            "create",
            Shm::<Counter>::create(location, Counter::at(1)).unwrap_err(),
        );
        check("open", Shm::<Counter>::open(location).unwrap_err());
        check(
            "open_reader",
            Shm::<Counter>::open_reader(location).unwrap_err(),
        );
        check(
            "open_or_create",
            Shm::<Counter>::open_or_create(location, || panic!("init ran")).unwrap_err(),
        );
        check("queue create", MsgQueue::create(location).unwrap_err());
        check("unlink", shmstore::unlink(location).unwrap_err());
        check("Inspector::open", Inspector::open(location).unwrap_err());
        let text = location.to_string();
        if !text.is_empty() && Location::parse(&text) == *location {
            assert_eq!(
                helper!("queue-open-as", text, "value").finish_ok(),
                [format!("err {variant}")],
                "{location:?}"
            );
        }
    }
    // Nothing was created anywhere.
    assert!(!guard.exists());
    if let Some(dir) = guard.dir() {
        assert_eq!(std::fs::read_dir(dir).unwrap().count(), 0);
    }
}

/// A key derived with `ftok` from a file names the same segment in every process that derives
/// it, and prints as `sysv:0x…` for the helper.
#[test]
fn a_key_from_ftok_names_the_same_segment_in_another_process() {
    let dir = TempDir::new("ftok");
    let file = dir.join("anchor");
    std::fs::write(&file, b"").unwrap();
    // Project id 0x5f: Place keys start with 0x5e, so the two never meet.
    let key = shmstore::ftok(&file, 0x5f).unwrap();
    assert_eq!(key, shmstore::ftok(&file, 0x5f).unwrap());
    assert_ne!(key, shmstore::ftok(&file, 0x60).unwrap());
    let shm = Shm::<Pair>::options()
        .unlink_on_drop(true) // removed by the handle, also when an assertion fails
        .create(Location::sysv(key), OLD)
        .unwrap();
    let text = Location::SysV(key).to_string();
    assert_eq!(shm.name(), text);
    assert_eq!(Location::parse(&text), Location::SysV(key));
    assert_eq!(
        helper!("lock-and-print", text).finish_ok(),
        ["locking", "ok 1 2"]
    );
    drop(shm);
    assert!(matches!(
        Shm::<Pair>::open(Location::sysv(key)),
        Err(Error::NotFound { .. })
    ));
}
