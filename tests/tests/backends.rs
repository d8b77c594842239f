//! The behavioural matrix of the three backends: every scenario below is written once, as a
//! function of a [`Backend`], and runs as one test per backend (`rollback_after_sigkill::posix`,
//! `::file`, `::sysv`). A region in a file or a System V segment must behave exactly as a POSIX
//! region: the same values, locks, crash recovery, errors and queues, between real processes
//! (the `shm-helper` binary, which takes a location as text wherever it takes a name).
//!
//! Every test works on fresh [`Place`]s, which remove their region (name, file and directory, or
//! segment) when dropped, also when the test fails. Processes synchronise through the helper's
//! stdout lines, never through sleeps; the only timeouts asserted are the library's own
//! (`open_timeout` against a creator that never finishes).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::TryLockError;
use std::time::Duration;

use nix::libc;
use shmstore::{
    Error, Inspector, Location, QueueMode, Shm, ShmOptionsAt, ShmQueue, ShmQueueOptionsAt, ShmType,
};
use shmstore_tests::{
    assert_killed, assert_mentions, helper, is_root, noise, parse_progress, wait_until_blocked,
    Backend, Counter, Helper, Limits, Msg, MsgQueue, Page, Pair, Place, TempDir, QUEUE_CAPACITY,
};

/// One `#[test]` per backend for each scenario: `scenario::posix`, `scenario::file` and
/// `scenario::sysv`, each calling `scenario(Backend::…)`.
macro_rules! for_each_backend {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use shmstore_tests::Backend;

            #[test]
            fn posix() {
                super::$scenario(Backend::Posix);
            }

            #[test]
            fn file() {
                super::$scenario(Backend::File);
            }

            #[test]
            fn sysv() {
                super::$scenario(Backend::SysV);
            }
        }
    )*};
}

for_each_backend!(
    create_open_read_lock_round_trip,
    open_or_create_raced_by_processes_runs_init_once,
    increments_from_two_processes_add_up,
    rollback_after_sigkill,
    poison_after_sigkill_in_place,
    creator_killed_in_init,
    layout_mismatch_between_binaries,
    queue_kind_capacity_and_element_checks,
    permissions_of_another_user,
    wait_for_change_woken_by_another_process,
    no_torn_reads_under_a_writer_process,
    queue_spsc_stream_across_processes,
    queue_producer_killed_mid_stream,
    queue_spsc_roles_between_processes,
    a_dropped_queue_handle_releases_its_role_while_children_are_spawned,
    queue_mpmc_two_by_two_processes,
    unlink_while_mapped,
    unlink_on_drop_removes_only_its_own_object,
    corrupt_input_is_refused,
    invalid_location_is_refused,
    list_and_inspect,
);

const OLD: Pair = Pair { a: 1, b: 2 };

/// How long any wait that should succeed may take, even on a loaded 2-core machine: a bug
/// fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(30);

/// How long to wait for something that must never come.
const NEVER: Duration = Duration::from_millis(20);

/// The default options of a `T` region at `place`.
fn at<T: ShmType>(place: &Place) -> ShmOptionsAt<T> {
    Shm::<T>::options().at(place.location())
}

/// The default options of the helper's queue type at `place`.
fn queue_at(place: &Place) -> ShmQueueOptionsAt<Msg, QUEUE_CAPACITY> {
    MsgQueue::options().at(place.location())
}

/// A queue of `mode` created at `place`.
fn create_queue(place: &Place, mode: QueueMode) -> MsgQueue {
    MsgQueue::options()
        .queue_mode(mode)
        .at(place.location())
        .create()
        .unwrap()
}

fn assert_not_found<T: std::fmt::Debug>(result: Result<T, Error>, place: &Place) {
    match result {
        Err(Error::NotFound { name }) => assert_eq!(name, place.to_string()),
        other => panic!("{place}: expected NotFound, got {other:?}"),
    }
}

fn assert_already_exists<T: std::fmt::Debug>(result: Result<T, Error>, place: &Place) {
    match result {
        Err(Error::AlreadyExists { name }) => assert_eq!(name, place.to_string()),
        other => panic!("{place}: expected AlreadyExists, got {other:?}"),
    }
}

/// The bytes of a `Counter` as the region stores them (native endianness, `#[repr(C)]`).
fn counter_bytes(c: Counter) -> Vec<u8> {
    [c.count.to_ne_bytes(), c.mirror.to_ne_bytes()].concat()
}

// ---- raw System V segments, made without shmstore ----

/// The id of the segment with `key`.
fn segment_id(key: i32) -> i32 {
    // SAFETY: a look-up only: no memory of this process is involved.
    let id = unsafe { libc::shmget(key, 0, 0) };
    assert!(
        id >= 0,
        "shmget({key:#x}): {}",
        std::io::Error::last_os_error()
    );
    id
}

/// Attaches segment `id` (read-only or not); panics on failure.
fn attach(id: i32, read_only: bool) -> *mut u8 {
    let flags = if read_only { libc::SHM_RDONLY } else { 0 };
    // SAFETY: the kernel picks a free address (null hint); nothing of this process is
    // overwritten. The caller detaches it.
    let addr = unsafe { libc::shmat(id, std::ptr::null(), flags) };
    assert_ne!(
        addr as isize,
        -1,
        "shmat: {}",
        std::io::Error::last_os_error()
    );
    addr.cast()
}

fn detach(addr: *mut u8) {
    // SAFETY: `addr` came from `attach` and is not used after this.
    let rc = unsafe { libc::shmdt(addr.cast()) };
    assert_eq!(rc, 0, "shmdt: {}", std::io::Error::last_os_error());
}

/// The size of segment `id`, from `IPC_STAT`.
fn segment_size(id: i32) -> usize {
    // SAFETY: `shmid_ds` is plain data, valid all zero.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: IPC_STAT writes one `shmid_ds` into `ds`, which lives across the call.
    let rc = unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) };
    assert_eq!(rc, 0, "IPC_STAT: {}", std::io::Error::last_os_error());
    ds.shm_segsz
}

/// Makes a System V segment under `key` with plain `shmget` (mode 0600) and fills it with
/// `bytes`, the way another program could.
fn raw_segment(key: i32, bytes: &[u8]) {
    // SAFETY: plain system call; it creates a segment and touches no memory of this process.
    let id = unsafe { libc::shmget(key, bytes.len(), libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
    assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
    let addr = attach(id, false);
    // SAFETY: the attached segment is at least `bytes.len()` bytes long (created so) and
    // writable; nobody else uses it yet.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), addr, bytes.len()) };
    detach(addr);
}

/// Every byte of the segment with `key`.
fn segment_bytes(key: i32) -> Vec<u8> {
    let id = segment_id(key);
    let len = segment_size(id);
    let addr = attach(id, true);
    let mut out = vec![0u8; len];
    // SAFETY: the attached segment is `len` bytes long; nobody writes it meanwhile (the tests
    // read only segments no process uses).
    unsafe { std::ptr::copy_nonoverlapping(addr, out.as_mut_ptr(), len) };
    detach(addr);
    out
}

/// The bytes stored at `place`, whatever its backend.
fn stored_bytes(place: &Place) -> Vec<u8> {
    match (place.path(), place.key()) {
        (Some(path), _) => std::fs::read(path).unwrap(),
        (None, Some(key)) => segment_bytes(key),
        (None, None) => unreachable!("a place has a path or a key"),
    }
}

/// Puts `bytes` at `place` without shmstore: a file, or a raw segment.
fn plant(place: &Place, bytes: &[u8]) {
    match (place.path(), place.key()) {
        (Some(path), _) => std::fs::write(path, bytes).unwrap(),
        (None, Some(key)) => raw_segment(key, bytes),
        (None, None) => unreachable!("a place has a path or a key"),
    }
}

// ---- values ----

fn create_open_read_lock_round_trip(backend: Backend) {
    let place = Place::new(backend, "round-trip");
    assert_eq!(Location::parse(&place.to_string()), *place.location());

    // Nothing there yet: every way of opening says NotFound, and none creates anything.
    assert_not_found(at::<Pair>(&place).open(), &place);
    assert_not_found(at::<Pair>(&place).open_reader(), &place);
    assert_not_found(queue_at(&place).open(), &place);
    assert_not_found(Inspector::open(place.location()), &place);
    assert_not_found(shmstore::unlink(place.location()), &place);
    let e = at::<Pair>(&place).open().unwrap_err();
    assert_mentions(&e, &[&place.to_string(), "create it first"]);
    assert!(!place.exists(), "open must not create");
    assert_eq!(
        helper!("queue-open-as", place, "value").finish_ok(),
        ["err NotFound"]
    );

    let shm = at::<Pair>(&place).create(OLD).unwrap();
    assert!(place.exists());
    assert_eq!(shm.location(), place.location());
    assert_eq!(shm.name(), place.to_string());
    assert_eq!(shm.creator_pid(), std::process::id());
    assert_eq!(shm.read(), OLD);

    // Taken now, whatever the type, kind or mode asked for; the loser overwrites nothing.
    assert_already_exists(at::<Pair>(&place).create(Pair { a: 9, b: 9 }), &place);
    assert_already_exists(
        Shm::<Counter>::options()
            .in_place(true)
            .at(place.location())
            .create(Counter::at(9)),
        &place,
    );
    assert_already_exists(queue_at(&place).create(), &place);
    assert_eq!(shm.read(), OLD);

    {
        let mut g = shm.lock().unwrap();
        g.a = 3;
        g.b = 4;
    }
    shm.flush().unwrap();
    let v = shm.version();
    let other = at::<Pair>(&place).open().unwrap();
    assert_eq!((other.read(), other.version()), (Pair { a: 3, b: 4 }, v));
    let reader = at::<Pair>(&place).open_reader().unwrap();
    assert_eq!((reader.read(), reader.version()), (Pair { a: 3, b: 4 }, v));
    let opened = at::<Pair>(&place)
        .open_or_create(|| panic!("init ran over an existing region"))
        .unwrap();
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
        let shm = at::<Counter>(&place).open().unwrap();
        assert_eq!(shm.read(), Counter::at(value));
        assert_eq!(shm.creator_pid(), winner_pid);
        assert_eq!(shm.is_in_place(), in_place);
    }
}

/// Two processes increment under the lock, released at the same moment, while this process
/// reads: no lost update, no torn snapshot, one version per increment.
fn increments_from_two_processes_add_up(backend: Backend) {
    const PROCESSES: u64 = 2;
    const INCREMENTS: u64 = 10_000;
    for in_place in [false, true] {
        let place = Place::new(backend, "inc");
        let shm = Shm::<Counter>::options()
            .in_place(in_place)
            .at(place.location())
            .create(Counter::at(0))
            .unwrap();
        let v0 = shm.version();
        let mut helpers: Vec<Helper> = (0..PROCESSES)
            .map(|_| helper!("increment", place, INCREMENTS))
            .collect();
        for h in &mut helpers {
            h.expect("ready");
        }
        for h in &mut helpers {
            h.send("go");
        }
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut last = 0;
                while !done.load(Ordering::Relaxed) {
                    let c = shm.read();
                    assert_eq!(c.count, c.mirror, "torn read: {c:?}");
                    assert!(c.count >= last, "went backwards: {} after {last}", c.count);
                    last = c.count;
                }
            });
            let finished = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                for h in helpers {
                    assert_eq!(h.finish_ok(), ["done"]);
                }
            }));
            done.store(true, Ordering::Relaxed);
            reader.join().unwrap();
            finished.unwrap();
        });
        let total = PROCESSES * INCREMENTS;
        assert_eq!(shm.read(), Counter::at(total));
        assert_eq!(*shm.lock().unwrap(), Counter::at(total));
        assert_eq!(shm.version(), v0 + 2 * total);
        assert!(!shm.is_poisoned());
    }
}

// ---- processes that die ----

/// A holder SIGKILLed after writing half a value, with a locker of another process and a
/// thread of this one blocked behind it: both get the old value, and so does everyone after.
fn rollback_after_sigkill(backend: Backend) {
    let place = Place::new(backend, "rollback");
    let shm = at::<Pair>(&place).create(OLD).unwrap();
    let v0 = shm.version();

    let mut holder = helper!("hold-and-die", place, 100);
    holder.expect("written");
    assert_eq!(shm.read(), OLD);
    assert_eq!(shm.version(), v0);
    assert!(matches!(shm.try_lock(), Err(TryLockError::WouldBlock)));

    let mut locker = helper!("lock-and-print", place);
    locker.expect("locking");
    locker.wait_until_blocked();
    std::thread::scope(|s| {
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let shm = &shm;
        let thread = s.spawn(move || {
            tid_tx.send(nix::unistd::gettid()).unwrap();
            let g = shm.lock().expect("the default mode is never poisoned");
            *g
        });
        let tid = tid_rx.recv().unwrap();
        let blocked = std::panic::catch_unwind(|| {
            wait_until_blocked(&std::path::Path::new("/proc/self/task").join(tid.to_string()))
        });
        // Kill the holder in any case: the scope cannot end while the thread is blocked.
        holder.kill();
        let value = thread.join().unwrap();
        blocked.unwrap();
        assert_eq!(value, OLD, "a locker saw the dead holder's write");
    });
    assert_eq!(locker.finish_ok(), ["ok 1 2"]);
    assert_eq!(shm.read(), OLD);
    let v1 = shm.version();
    assert!(
        v1 > v0,
        "the rollback publishes a new version ({v1} after {v0})"
    );
    assert!(!shm.is_poisoned());

    // The region works as before, here and in another process.
    *shm.lock().unwrap() = Pair { a: 5, b: 6 };
    assert!(shm.version() > v1);
    assert_eq!(
        helper!("lock-and-print", place).finish_ok(),
        ["locking", "ok 5 6"]
    );
    assert_eq!(helper!("is-poisoned", place).finish_ok(), ["false"]);
}

/// In place, a holder SIGKILLed mid-write poisons the region for every process until
/// `clear_poison`; the partial write is what is there.
fn poison_after_sigkill_in_place(backend: Backend) {
    let place = Place::new(backend, "poison");
    let shm = Shm::<Pair>::options()
        .in_place(true)
        .at(place.location())
        .create(OLD)
        .unwrap();
    let v0 = shm.version();
    let mut holder = helper!("hold-and-die", place, 100);
    holder.expect("written");
    holder.kill();

    let g = shm
        .lock()
        .expect_err("the dead holder wrote: poisoned")
        .into_inner();
    assert_eq!(*g, Pair { a: 100, b: 2 });
    drop(g);
    assert!(shm.is_poisoned());
    assert!(shm.version() > v0);
    assert_eq!(helper!("is-poisoned", place).finish_ok(), ["true"]);
    assert_eq!(
        helper!("lock-and-print", place).finish_ok(),
        ["locking", "poisoned 100 2"]
    );
    assert!(matches!(shm.try_lock(), Err(TryLockError::Poisoned(_))));
    let info = Inspector::open(place.location()).unwrap().info();
    assert!(info.poisoned && info.in_place, "{info:?}");

    shm.clear_poison();
    assert!(!shm.is_poisoned());
    assert_eq!(helper!("is-poisoned", place).finish_ok(), ["false"]);
    assert_eq!(
        helper!("lock-and-print", place).finish_ok(),
        ["locking", "ok 100 2"]
    );
}

/// A creator SIGKILLed inside `init`: while it lives, openers wait (up to their timeout) and
/// never run init; once it is dead, `open` says `Incomplete` and `open_or_create` initialises
/// the region again, once.
fn creator_killed_in_init(backend: Backend) {
    let place = Place::new(backend, "die-in-init");
    let mut creator = helper!("create-and-die-in-init", place);
    creator.expect("in-init");
    let creator_pid = creator.pid().as_raw() as u32;

    let short = Duration::from_millis(100);
    let e = Shm::<Counter>::options()
        .open_timeout(short)
        .at(place.location())
        .open()
        .expect_err("still initialising");
    match &e {
        Error::Timeout { name, after, .. } => {
            assert_eq!((name.as_str(), *after), (place.to_string().as_str(), short));
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert_mentions(&e, &["open_timeout"]);
    let e = Shm::<Counter>::options()
        .open_timeout(short)
        .at(place.location())
        .open_or_create(|| panic!("init ran while the creator was alive"))
        .expect_err("still initialising");
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");

    creator.kill();

    for _ in 0..2 {
        let e = at::<Counter>(&place).open().expect_err("never finished");
        assert!(
            matches!(&e, Error::Incomplete { name } if *name == place.to_string()),
            "{e:?}"
        );
        assert_mentions(&e, &["open_or_create"]);
    }
    let e = at::<Counter>(&place)
        .open_reader()
        .expect_err("never finished");
    assert!(matches!(e, Error::Incomplete { .. }), "{e:?}");

    let mut ran = 0;
    let shm = at::<Counter>(&place)
        .open_or_create(|| {
            ran += 1;
            Counter::at(42)
        })
        .expect("re-initialised");
    assert_eq!(ran, 1);
    assert_eq!(shm.read(), Counter::at(42));
    assert_eq!(shm.creator_pid(), std::process::id());
    assert_ne!(shm.creator_pid(), creator_pid);
    assert_eq!(
        at::<Counter>(&place).open().unwrap().read(),
        Counter::at(42)
    );
    // Another process opens what the repair made.
    let mut waiter = helper!("wait-change", place, "shm");
    waiter.expect(&format!("waiting {}", shm.version()));
    *shm.lock().unwrap() = Counter::at(43);
    assert_eq!(
        waiter.finish_ok(),
        [format!("changed {} 43", shm.version())]
    );
}

// ---- types, kinds and permissions ----

/// The helper's `Limits` has `burst: f32` where this binary's has `burst: u32`: each refuses
/// the other's region with a `LayoutMismatch` naming only `burst`.
fn layout_mismatch_between_binaries(backend: Backend) {
    let place = Place::new(backend, "retyped");
    assert_eq!(helper!("create-retyped", place).finish_ok(), ["created"]);
    let e = at::<Limits>(&place)
        .open()
        .expect_err("burst is an f32 there");
    match &e {
        Error::LayoutMismatch {
            name,
            expected,
            found,
            expected_fingerprint,
            found_fingerprint,
            differences,
        } => {
            assert_eq!(name, &place.to_string());
            assert_eq!((expected.as_str(), found.as_str()), ("Limits", "Limits"));
            assert_ne!(expected_fingerprint, found_fingerprint);
            assert_eq!(differences.len(), 1, "{differences:?}");
            let d = &differences[0];
            assert!(
                d.contains("`burst`") && d.contains("u32") && d.contains("f32"),
                "{d}"
            );
        }
        other => panic!("expected LayoutMismatch, got {other:?}"),
    }
    let e = at::<Limits>(&place)
        .open_or_create(|| panic!("init ran over another type"))
        .expect_err("mismatch");
    assert!(matches!(e, Error::LayoutMismatch { .. }), "{e:?}");
    let e = at::<Limits>(&place).open_reader().expect_err("mismatch");
    assert!(matches!(e, Error::LayoutMismatch { .. }), "{e:?}");

    // And the other way round.
    let place = Place::new(backend, "retyped-back");
    let _shm = at::<Limits>(&place)
        .create(Limits {
            rate: 1,
            burst: 2,
            seq: 3,
        })
        .unwrap();
    let lines = helper!("open-retyped", place).finish_ok();
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with("err LayoutMismatch ") && lines[0].contains("`burst`"),
        "{lines:?}"
    );
}

/// A queue opened as a value (and the other way round) is `WrongKind`; another capacity is
/// `CapacityMismatch`, another element type `LayoutMismatch` — here and in another binary.
fn queue_kind_capacity_and_element_checks(backend: Backend) {
    let queue = Place::new(backend, "q-open");
    let value = Place::new(backend, "q-open-value");
    let q = create_queue(&queue, QueueMode::Spsc);
    q.try_push(Msg::new(0, 0)).unwrap();
    let _value = at::<Msg>(&value).create(Msg::new(5, 5)).unwrap();

    let wrong_kind = |e: Error, (expected, found): (&str, &str), place: &Place| match e {
        Error::WrongKind {
            name,
            expected: x,
            found: f,
        } => assert_eq!(
            (name.as_str(), x, f),
            (place.to_string().as_str(), expected, found)
        ),
        other => panic!("expected WrongKind, got {other:?}"),
    };
    let as_value = ("a single value", "a queue");
    let as_queue = ("a queue", "a single value");
    wrong_kind(at::<Msg>(&queue).open().unwrap_err(), as_value, &queue);
    wrong_kind(
        at::<Msg>(&queue)
            .open_or_create(|| panic!("init ran over a queue"))
            .unwrap_err(),
        as_value,
        &queue,
    );
    wrong_kind(queue_at(&value).open().unwrap_err(), as_queue, &value);
    wrong_kind(
        queue_at(&value).open_or_create().unwrap_err(),
        as_queue,
        &value,
    );
    match ShmQueue::<Msg, 128>::options()
        .at(queue.location())
        .open()
        .unwrap_err()
    {
        Error::CapacityMismatch {
            name,
            expected,
            found,
        } => assert_eq!(
            (name, expected, found),
            (queue.to_string(), 128, QUEUE_CAPACITY)
        ),
        other => panic!("expected CapacityMismatch, got {other:?}"),
    }
    match ShmQueue::<[u64; 8], QUEUE_CAPACITY>::options()
        .at(queue.location())
        .open()
        .unwrap_err()
    {
        Error::LayoutMismatch {
            expected, found, ..
        } => assert_eq!((expected.as_str(), found.as_str()), ("[u64; 8]", "Msg")),
        other => panic!("expected LayoutMismatch, got {other:?}"),
    }

    for (how, answer) in [
        ("queue", "ok"),
        ("value", "err WrongKind"),
        ("capacity", "err CapacityMismatch"),
        ("element", "err LayoutMismatch"),
    ] {
        assert_eq!(
            helper!("queue-open-as", queue, how).finish_ok(),
            [answer],
            "{how}"
        );
    }
    assert_eq!(
        helper!("queue-open-as", value, "queue").finish_ok(),
        ["err WrongKind"]
    );
    // Nothing above changed either region.
    assert_eq!(q.len(), 1);
    assert_eq!(at::<Msg>(&value).open().unwrap().read(), Msg::new(5, 5));
}

/// A process dropped to uid 65534 is refused a region of root's: by the mode (0600), or by the
/// owner check without `allow_other_owner` (0666); with mode 0644 and `allow_other_owner`, it
/// reads through a `ShmReader`, sees changes, and cannot open read-write.
fn permissions_of_another_user(backend: Backend) {
    if !is_root() {
        eprintln!("skipped: setuid needs root");
        return;
    }
    let private = Place::new(backend, "perm-0600");
    let _private = at::<Counter>(&private).create(Counter::at(5)).unwrap();
    for allow in [false, true] {
        let h = if allow {
            helper!("setuid-open", private, "allow-other-owner")
        } else {
            helper!("setuid-open", private)
        };
        let lines = h.finish_ok();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with("err PermissionDenied ")
                && lines[0].contains(&private.to_string())
                && lines[0].contains("mode"),
            "allow_other_owner {allow}: {lines:?}"
        );
    }

    let open = Place::new(backend, "perm-0666");
    let _open = Shm::<Counter>::options()
        .mode(0o666)
        .at(open.location())
        .create(Counter::at(6))
        .unwrap();
    let lines = helper!("setuid-open", open).finish_ok();
    assert!(
        lines.len() == 1
            && lines[0].starts_with("err PermissionDenied ")
            && lines[0].contains("allow_other_owner"),
        "{lines:?}"
    );
    assert_eq!(
        helper!("setuid-open", open, "allow-other-owner").finish_ok(),
        ["ok 6"]
    );

    for in_place in [false, true] {
        let readable = Place::new(backend, "perm-0644");
        let shm = Shm::<Counter>::options()
            .mode(0o644)
            .in_place(in_place)
            .at(readable.location())
            .create(Counter::at(11))
            .unwrap();
        let v0 = shm.version();
        let mut child = helper!("setuid-reader", readable);
        child.expect("reader-plain err PermissionDenied");
        child.expect("read-write err PermissionDenied");
        child.expect(&format!("reader 11 {v0} {in_place}"));
        *shm.lock().unwrap() = Counter::at(12);
        let v1 = shm.version();
        assert_eq!(child.finish_ok(), [format!("changed 12 {v1}")]);
        assert!(!shm.is_poisoned());
    }
}

// ---- reading and waiting ----

/// Waiters in other processes, through a `Shm` and a `ShmReader`, asleep in
/// `wait_for_change`: one write here wakes both.
fn wait_for_change_woken_by_another_process(backend: Backend) {
    for in_place in [false, true] {
        let place = Place::new(backend, "wake");
        let shm = Shm::<Counter>::options()
            .in_place(in_place)
            .notify_readers(true)
            .at(place.location())
            .create(Counter::at(0))
            .unwrap();
        let v0 = shm.version();
        let mut waiters = [
            helper!("wait-change", place, "shm"),
            helper!("wait-change", place, "reader"),
        ];
        for w in &mut waiters {
            w.expect(&format!("waiting {v0}"));
        }
        for w in &waiters {
            w.wait_until_blocked();
        }
        *shm.lock().unwrap() = Counter::at(7);
        let v1 = shm.version();
        assert!(v1 > v0);
        for w in waiters {
            assert_eq!(w.finish_ok(), [format!("changed {v1} 7")]);
        }
    }
}

/// A child rewrites a 4 KiB `Page` back to back while this process reads it through a `Shm`
/// and a `ShmReader` in turn: every snapshot has all its words equal, and values never go
/// backwards. Stops on what was seen (enough writes and distinct values), not on a clock.
fn no_torn_reads_under_a_writer_process(backend: Backend) {
    const MIN_WRITES: u64 = 20_000;
    const MIN_DISTINCT: u64 = 50;
    const GIVE_UP: u64 = 2_000_000;
    for in_place in [false, true] {
        let place = Place::new(backend, "torn");
        let shm = Shm::<Page>::options()
            .in_place(in_place)
            .at(place.location())
            .create(Page::filled(0))
            .unwrap();
        let reader = at::<Page>(&place).open_reader().unwrap();
        let v0 = shm.version();
        let mut writer = helper!("page-writer", place);
        writer.expect("started");
        let (mut last, mut distinct, mut reads) = (0u64, 0u64, 0u64);
        loop {
            let page = if reads % 2 == 0 {
                shm.read()
            } else {
                reader.read()
            };
            reads += 1;
            let Some(n) = page.uniform() else {
                let first = page.words[0];
                let at = page.words.iter().position(|&w| w != first).unwrap();
                panic!(
                    "torn snapshot on read {reads}: word 0 is {first}, word {at} is {}",
                    page.words[at]
                );
            };
            assert!(n >= last, "went backwards: {n} after {last}");
            if n != last {
                distinct += 1;
            }
            last = n;
            if (n >= MIN_WRITES && distinct > MIN_DISTINCT) || n >= GIVE_UP {
                break;
            }
        }
        writer.send("stop");
        let lines = writer.finish_ok();
        let fields: Vec<&str> = lines.first().map_or(vec![], |l| l.split(' ').collect());
        let ["done", count, poisoned, _sleeps] = fields.as_slice() else {
            panic!("unexpected report {lines:?}");
        };
        let count: u64 = count.parse().unwrap();
        assert_eq!(*poisoned, "poisoned=0");
        assert!(
            distinct > MIN_DISTINCT,
            "only {distinct} distinct values in {reads} reads of {last} writes"
        );
        assert!(count >= last);
        assert_eq!(shm.version(), v0 + 2 * count);
        assert_eq!(reader.version(), shm.version());
        assert_eq!(shm.read(), Page::filled(count));
        assert_eq!(reader.read(), Page::filled(count));
    }
}

// ---- queues ----

/// A numbered stream of 100 000 elements from a producer process arrives in order and whole.
fn queue_spsc_stream_across_processes(backend: Backend) {
    const COUNT: u64 = 100_000;
    let place = Place::new(backend, "q-stream");
    let q = create_queue(&place, QueueMode::Spsc);
    let mut producer = helper!("queue-push", place, 0, 0, COUNT, "close");
    producer.expect("pushing");
    let mut next = 0u64;
    while let Some(msg) = q.pop_timeout(PATIENCE).unwrap() {
        assert_eq!(msg, Msg::new(0, next), "element {next}");
        next += 1;
    }
    assert_eq!(next, COUNT, "the queue ended early");
    assert_eq!(
        producer.finish_ok(),
        [format!("pushed {COUNT}"), "closed".into()]
    );
    assert!(q.is_closed() && q.is_empty());
    assert_eq!(q.pop().unwrap(), None);
}

/// Rounds of: a producer process pushes an endless stream, this process pops part of it and
/// SIGKILLs the producer mid-stream. Everything it published is there, whole and gap-free, up
/// to at least the last number it reported, and nothing after; then a replacement producer
/// process takes over (the dead one's role, in SPSC mode) and its elements arrive.
fn queue_producer_killed_mid_stream(backend: Backend) {
    const ROUNDS: u64 = 2;
    const POP_BEFORE_KILL: u64 = 5_000;
    for mode in [QueueMode::Spsc, QueueMode::Mpmc] {
        let place = Place::new(backend, "q-kill-producer");
        let q = create_queue(&place, mode);
        let pop = || {
            let msg = q.pop_timeout(PATIENCE).unwrap().expect("an element");
            assert!(msg.is_intact(), "damaged element {msg:?}");
            msg
        };
        let mut next = 0u64;
        for round in 0..ROUNDS {
            let mut producer = helper!("queue-push-forever", place, round, next, 1000);
            producer.expect("started");
            let stop_at = next + POP_BEFORE_KILL;
            while next < stop_at {
                assert_eq!(pop(), Msg::new(round, next), "{mode:?}");
                next += 1;
            }
            let (status, lines) = producer.kill_and_finish();
            assert_killed(status, &lines);
            let reported = lines
                .iter()
                .map(|l| parse_progress(l, "pushed"))
                .max()
                .expect("progress lines");
            let left = q.len() as u64;
            for _ in 0..left {
                assert_eq!(pop(), Msg::new(round, next), "{mode:?}");
                next += 1;
            }
            assert!(
                next >= reported,
                "the producer reported {reported} pushed, the queue delivered {next}"
            );
            match q.pop_timeout(NEVER) {
                Err(Error::Timeout { .. }) => {}
                other => panic!("expected nothing more, got {other:?}"),
            }
        }
        let mut replacement = helper!("queue-push", place, ROUNDS, next, 1000, "close");
        replacement.expect("pushing");
        for _ in 0..1000 {
            assert_eq!(pop(), Msg::new(ROUNDS, next));
            next += 1;
        }
        assert_eq!(q.pop_timeout(PATIENCE).unwrap(), None);
        assert_eq!(replacement.finish_ok(), ["pushed 1000", "closed"]);
    }
}

/// The SPSC roles between processes: a live holder keeps its role against this process and
/// against a second producer process (`RoleTaken`, naming its pid); a holder that exits or is
/// SIGKILLed leaves the role free.
fn queue_spsc_roles_between_processes(backend: Backend) {
    let place = Place::new(backend, "q-roles");
    let q = create_queue(&place, QueueMode::Spsc);
    let mut holder = helper!("queue-hold-role", place, "producer");
    holder.expect("holding");
    let pid = holder.pid().as_raw() as u32;

    assert_eq!(q.has_other_producer().unwrap(), Some(true));
    assert_eq!(q.has_other_consumer().unwrap(), Some(false));
    match q.try_push(Msg::new(0, 0)) {
        Err(
            ref e @ Error::RoleTaken {
                ref name,
                role,
                holder_pid,
            },
        ) => {
            assert_eq!(
                (name.as_str(), role, holder_pid),
                (place.to_string().as_str(), "producer", Some(pid))
            );
            assert!(e.to_string().contains(&format!("pid {pid}")), "{e}");
        }
        other => panic!("expected RoleTaken, got {other:?}"),
    }
    // A second live producer process is refused too, before it pushes anything.
    assert_eq!(
        helper!("queue-push", place, 2, 0, 1).finish_ok(),
        ["pushing", "err RoleTaken 0"]
    );
    // The consumer role is another one: this process takes it, and then a consumer process
    // is refused.
    assert_eq!(q.try_pop().unwrap(), Some(Msg::new(1, 0)));
    assert_eq!(
        helper!("queue-pop", place, 1).finish_ok(),
        ["popping", "err RoleTaken", "done"]
    );

    // A holder that exits hands the role back.
    holder.send("go");
    assert!(holder.finish_ok().is_empty());
    assert_eq!(q.has_other_producer().unwrap(), Some(false));

    // A holder SIGKILLed while holding it leaves it free too.
    let mut holder = helper!("queue-hold-role", place, "producer");
    holder.expect("holding");
    assert_eq!(q.has_other_producer().unwrap(), Some(true));
    holder.kill();
    assert_eq!(q.has_other_producer().unwrap(), Some(false));
    q.try_push(Msg::new(0, 1)).expect("the dead holder's role");
    assert_eq!(q.try_pop().unwrap(), Some(Msg::new(1, 0)));
    assert_eq!(q.try_pop().unwrap(), Some(Msg::new(0, 1)));

    // The same for the consumer role, on a queue whose consumer role this process never took.
    let place = Place::new(backend, "q-roles-consumer");
    let q = create_queue(&place, QueueMode::Spsc);
    let mut holder = helper!("queue-hold-role", place, "consumer");
    holder.expect("holding");
    q.try_push(Msg::new(0, 2)).unwrap();
    assert!(matches!(
        q.try_pop(),
        Err(Error::RoleTaken {
            role: "consumer",
            holder_pid: Some(p),
            ..
        }) if p == holder.pid().as_raw() as u32
    ));
    holder.kill();
    assert_eq!(q.try_pop().unwrap(), Some(Msg::new(0, 2)));

    // Dropping the handle hands its role back at once, also while other test threads are
    // spawning children, which share this process's open file descriptions until they exec.
    drop(q);
    let mut holder = helper!("queue-hold-role", place, "consumer");
    holder.expect("holding");
    holder.kill();
}

/// A role is free as soon as the handle that held it is dropped, even while another thread of
/// the process spawns children: each shares the process's open file descriptions (and so a
/// byte lock on one) until it execs, so closing the descriptor alone would leave the role
/// taken for a moment. Without the explicit release, this found it taken in about one round
/// out of six.
fn a_dropped_queue_handle_releases_its_role_while_children_are_spawned(backend: Backend) {
    const ROUNDS: usize = 300;
    let place = Place::new(backend, "q-role-drop");
    drop(create_queue(&place, QueueMode::Spsc));
    /// Stops the spawning thread when dropped: also when a round panics, or the scope would
    /// wait for that thread forever.
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let stop = AtomicBool::new(false);
    let still_taken = std::thread::scope(|s| {
        let _stop = Stop(&stop);
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let _ = std::process::Command::new("/bin/true").status();
            }
        });
        let mut still_taken = 0;
        for _ in 0..ROUNDS {
            let taker = MsgQueue::options().at(place.location()).open().unwrap();
            // Takes the consumer role (a role still held elsewhere makes this RoleTaken).
            match taker.try_pop() {
                Ok(None) => {}
                Err(Error::RoleTaken { .. }) => still_taken += 1,
                other => panic!("try_pop: {other:?}"),
            }
            drop(taker);
            let next = MsgQueue::options().at(place.location()).open().unwrap();
            if next.has_other_consumer().unwrap() == Some(true) {
                still_taken += 1;
            }
        }
        still_taken
    });
    assert_eq!(
        still_taken, 0,
        "rounds out of {ROUNDS} that found the role still taken"
    );
}

/// Two producer and two consumer processes on an MPMC queue: the multiset popped is the
/// multiset pushed, and each consumer sees each producer's elements in order.
fn queue_mpmc_two_by_two_processes(backend: Backend) {
    const PER_PRODUCER: u64 = 100_000;
    let place = Place::new(backend, "q-mpmc");
    let dir = TempDir::new("q-mpmc-out");
    let q = create_queue(&place, QueueMode::Mpmc);
    let files = [dir.join("consumer-0"), dir.join("consumer-1")];
    let consumers: Vec<Helper> = files
        .iter()
        .map(|file| helper!("queue-drain", place, file.display()))
        .collect();
    let producers: Vec<Helper> = (0..2)
        .map(|p| helper!("queue-push", place, p, p * PER_PRODUCER, PER_PRODUCER))
        .collect();
    for p in producers {
        assert_eq!(
            p.finish_ok(),
            ["pushing".to_string(), format!("pushed {PER_PRODUCER}")]
        );
    }
    q.close();

    let mut popped: Vec<(u64, u64)> = Vec::new();
    for (consumer, file) in consumers.into_iter().zip(&files) {
        let lines = consumer.finish_ok();
        let [line] = lines.as_slice() else {
            panic!("expected one `got COUNT` line, read {lines:?}");
        };
        let count = parse_progress(line, "got");
        let got: Vec<(u64, u64)> = std::fs::read_to_string(file)
            .unwrap()
            .lines()
            .map(|l| {
                let (p, s) = l.split_once(' ').expect("PRODUCER SEQ");
                (p.parse().unwrap(), s.parse().unwrap())
            })
            .collect();
        assert_eq!(got.len() as u64, count, "{}", file.display());
        for p in 0..2 {
            let seqs: Vec<u64> = got.iter().filter(|e| e.0 == p).map(|e| e.1).collect();
            assert!(
                seqs.windows(2).all(|w| w[0] < w[1]),
                "{} took producer {p}'s elements out of order",
                file.display()
            );
        }
        popped.extend(got);
    }
    // The multiset popped is the multiset pushed.
    popped.sort_unstable();
    let mut distinct = popped.clone();
    distinct.dedup();
    let duplicated = popped.len() - distinct.len();
    let expected: Vec<(u64, u64)> = (0..2)
        .flat_map(|p| (p * PER_PRODUCER..(p + 1) * PER_PRODUCER).map(move |s| (p, s)))
        .collect();
    let missing = expected
        .iter()
        .filter(|e| popped.binary_search(e).is_err())
        .count();
    assert_eq!((missing, duplicated), (0, 0), "(lost, duplicated) elements");
    assert!(
        popped == expected,
        "the multiset popped differs from the one pushed"
    );
    assert!(q.is_empty());
}

// ---- removing ----

/// `unlink` while this process and another one map the region: both handles keep working on
/// the same (now nameless) region, opening says `NotFound`, and a new create at the location
/// makes a fresh region that the old handles never see.
fn unlink_while_mapped(backend: Backend) {
    let place = Place::new(backend, "unlink");
    let shm = at::<Counter>(&place).create(Counter::at(1)).unwrap();
    let mut holder = helper!("write-and-hold", place, 5);
    holder.expect("holding");

    shmstore::unlink(place.location()).unwrap();
    assert!(!place.exists());
    assert_not_found(at::<Counter>(&place).open(), &place);
    assert_not_found(shmstore::unlink(place.location()), &place);
    assert_eq!(
        helper!("queue-open-as", place, "value").finish_ok(),
        ["err NotFound"]
    );

    // The helper still holds the lock of the removed region: its commit reaches this handle.
    assert!(matches!(shm.try_lock(), Err(TryLockError::WouldBlock)));
    holder.send("go");
    assert_eq!(holder.finish_ok(), ["released"]);
    assert_eq!(shm.read(), Counter::at(5));
    *shm.lock().unwrap() = Counter::at(6);
    assert_eq!(shm.read(), Counter::at(6));

    // A fresh region at the same location, independent of the old one.
    let fresh = at::<Counter>(&place)
        .open_or_create(|| Counter::at(100))
        .unwrap();
    assert_eq!(fresh.read(), Counter::at(100));
    assert_eq!(shm.read(), Counter::at(6));
    *shm.lock().unwrap() = Counter::at(7);
    assert_eq!(fresh.read(), Counter::at(100));
    // Another process opens the fresh one.
    let mut waiter = helper!("wait-change", place, "shm");
    waiter.expect(&format!("waiting {}", fresh.version()));
    *fresh.lock().unwrap() = Counter::at(101);
    assert_eq!(
        waiter.finish_ok(),
        [format!("changed {} 101", fresh.version())]
    );
    assert_eq!(shm.read(), Counter::at(7));
}

/// A handle with `unlink_on_drop` removes the location when dropped only if it still refers to
/// its own object, not to one created there since.
fn unlink_on_drop_removes_only_its_own_object(backend: Backend) {
    let place = Place::new(backend, "unlink-on-drop");
    let first = Shm::<Counter>::options()
        .unlink_on_drop(true)
        .at(place.location())
        .create(Counter::at(1))
        .unwrap();
    shmstore::unlink(place.location()).unwrap();
    let second = at::<Counter>(&place).create(Counter::at(2)).unwrap();
    drop(first);
    assert!(place.exists(), "a handle removed another object");
    assert_eq!(at::<Counter>(&place).open().unwrap().read(), Counter::at(2));

    // A handle that opened (did not create) the region removes it too, and the others keep
    // working.
    let opener = Shm::<Counter>::options()
        .unlink_on_drop(true)
        .at(place.location())
        .open()
        .unwrap();
    drop(opener);
    assert!(!place.exists());
    assert_not_found(at::<Counter>(&place).open(), &place);
    *second.lock().unwrap() = Counter::at(3);
    assert_eq!(second.read(), Counter::at(3));

    // A queue too.
    let q = MsgQueue::options()
        .unlink_on_drop(true)
        .at(place.location())
        .create()
        .unwrap();
    assert_eq!(helper!("queue-open-as", place, "queue").finish_ok(), ["ok"]);
    drop(q);
    assert!(!place.exists());
}

// ---- bad input ----

/// Opening `place` in every way gives `Corrupt` whose reason mentions `why`, runs no init,
/// never crashes (no SIGBUS), and leaves the bytes as they were.
fn assert_corrupt(place: &Place, why: &str) {
    let before = stored_bytes(place);
    let check = |what: &str, e: Error| match &e {
        Error::Corrupt { name, reason } => {
            assert_eq!(name, &place.to_string(), "{what}");
            assert!(
                reason.contains(why),
                "{what}: {why:?} missing from {reason:?}"
            );
        }
        other => panic!("{what} of {place}: expected Corrupt, got {other:?}"),
    };
    check("open", at::<Counter>(place).open().unwrap_err());
    check(
        "open_reader",
        at::<Counter>(place).open_reader().unwrap_err(),
    );
    check(
        "open_or_create",
        at::<Counter>(place)
            .open_or_create(|| panic!("init ran over a corrupt object"))
            .unwrap_err(),
    );
    check("queue open", queue_at(place).open().unwrap_err());
    check(
        "Inspector::open",
        Inspector::open(place.location()).unwrap_err(),
    );
    assert_eq!(stored_bytes(place), before, "the object changed");
    assert!(shmstore::list()
        .unwrap()
        .iter()
        .all(|r| r.location != *place.location()));
}

fn corrupt_input_is_refused(backend: Backend) {
    // Garbage, long and short.
    for (len, why) in [
        (256, "magic"),
        (4096, "magic"),
        (100, "shorter than its own 256-byte header"),
        (1, "shorter"),
    ] {
        let place = Place::new(backend, "garbage");
        let mut bytes = noise(len, 0x5eed + len as u64);
        bytes[0] = 0xa5; // neither "SHMSTORE" nor a blank header
        plant(&place, &bytes);
        assert_corrupt(&place, why);
        // Another process gets the same answer.
        assert_eq!(
            helper!("queue-open-as", place, "value").finish_ok(),
            ["err Corrupt"]
        );
    }

    // A valid region cut short: its header describes more bytes than there are. A segment
    // cannot shrink, so the System V case copies the start of a valid region into a smaller
    // segment.
    let valid = Place::new(backend, "valid");
    drop(at::<Counter>(&valid).create(Counter::at(9)).unwrap());
    let whole = stored_bytes(&valid);
    assert!(whole.len() > 300);
    for (len, why) in [
        (300, "truncated"),
        (100, "shorter than its own 256-byte header"),
    ] {
        let place = Place::new(backend, "truncated");
        plant(&place, &whole[..len]);
        assert_corrupt(&place, why);
    }
    // The valid one is fine.
    assert_eq!(at::<Counter>(&valid).open().unwrap().read(), Counter::at(9));
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
            at_location::<Counter>(location)
                .create(Counter::at(1))
                .unwrap_err(),
        );
        check("open", at_location::<Counter>(location).open().unwrap_err());
        check(
            "open_reader",
            at_location::<Counter>(location).open_reader().unwrap_err(),
        );
        check(
            "open_or_create",
            at_location::<Counter>(location)
                .open_or_create(|| panic!("init ran"))
                .unwrap_err(),
        );
        check(
            "queue create",
            MsgQueue::options().at(location).create().unwrap_err(),
        );
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

fn at_location<T: ShmType>(location: &Location) -> ShmOptionsAt<T> {
    Shm::<T>::options().at(location)
}

// ---- listing and inspecting ----

/// `list()` shows POSIX regions by name and System V regions as `sysv:0x…` (files are not
/// searched for); `Inspector::open` reads a region of every backend, also as another process
/// writes it.
fn list_and_inspect(backend: Backend) {
    let place = Place::new(backend, "list");
    let queue = Place::new(backend, "list-queue");
    let shm = at::<Counter>(&place).create(Counter::at(3)).unwrap();
    *shm.lock().unwrap() = Counter::at(4);
    let q = create_queue(&queue, QueueMode::Mpmc);
    q.try_push(Msg::new(0, 0)).unwrap();

    let listed = shmstore::list().unwrap();
    let find = |p: &Place| listed.iter().find(|r| r.location == *p.location());
    match backend {
        Backend::File => {
            assert!(find(&place).is_none() && find(&queue).is_none());
        }
        Backend::Posix | Backend::SysV => {
            let info = find(&place).unwrap_or_else(|| panic!("{place} is not listed"));
            assert_eq!(info.name, place.to_string());
            if backend == Backend::SysV {
                let key = place.key().unwrap();
                assert_eq!(info.name, format!("sysv:{:#010x}", key as u32));
                assert!(info.name.starts_with("sysv:0x5e"), "{}", info.name);
            }
            assert_eq!((info.type_name.as_str(), info.size), ("Counter", 16));
            assert_eq!(info.version, shm.version());
            assert_eq!(info.creator_pid, std::process::id());
            assert!(!info.poisoned && !info.in_place && info.queue.is_none());
            let info = find(&queue).unwrap_or_else(|| panic!("{queue} is not listed"));
            let qi = info.queue.as_ref().expect("listed as a queue");
            assert_eq!(
                (qi.mode, qi.capacity, qi.len, qi.closed),
                (QueueMode::Mpmc, QUEUE_CAPACITY, 1, false)
            );
        }
    }

    let inspector = Inspector::open(place.location()).unwrap();
    assert_eq!(inspector.name(), place.to_string());
    assert_eq!(inspector.type_name(), "Counter");
    assert!(!inspector.is_queue());
    assert_eq!(inspector.read(), counter_bytes(Counter::at(4)));
    assert_eq!(inspector.version(), shm.version());
    let info = inspector.info();
    assert_eq!(info.location, *place.location());
    assert_eq!(info.name, place.to_string());
    let names: Vec<&str> = inspector.fields().iter().map(|f| f.path.as_str()).collect();
    assert_eq!(names, ["count", "mirror"]);

    // Another process writes: the inspector sees the committed value, never the one in
    // progress.
    let v0 = inspector.version();
    let mut writer = helper!("write-and-hold", place, 9);
    writer.expect("holding");
    assert_eq!(inspector.read(), counter_bytes(Counter::at(4)));
    writer.send("go");
    assert_eq!(writer.finish_ok(), ["released"]);
    let v1 = inspector.wait_for_change(v0, Some(PATIENCE)).unwrap();
    assert_eq!(v1, shm.version());
    assert_eq!(inspector.read(), counter_bytes(Counter::at(9)));

    let queue_inspector = Inspector::open(queue.location()).unwrap();
    assert!(queue_inspector.is_queue());
    assert_eq!(queue_inspector.type_name(), "Msg");
    assert_eq!(queue_inspector.info().queue.map(|q| q.len), Some(1));
}

// ---- System V keys from ftok ----

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
        .sysv_key(key)
        .create(OLD)
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
        Shm::<Pair>::options().sysv_key(key).open(),
        Err(Error::NotFound { .. })
    ));
}
