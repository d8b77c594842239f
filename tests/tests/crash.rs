//! Processes that die at the worst moment: a lock holder SIGKILLed after writing half a value,
//! a thread that panics inside a guard, a creator killed inside `init`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::TryLockError;
use std::time::Duration;

use shmstore::inspect::Inspector;
use shmstore::{Error, Shm};
use shmstore_tests::{
    assert_mentions, helper, region, wait_until_blocked, Backend, Counter, Helper, Pair, Place, OLD,
};

// ---- default mode: a dead or panicking holder is rolled back ----

/// A default-mode `Pair` region of [`OLD`] at a fresh place of `backend`, and a holder in
/// another process that has written `a = 100` and sleeps holding the lock: readers see the old
/// value and the old version, never the write in progress (checked here). The place, the
/// handle, the version before and the holder.
fn a_holder_in_the_middle_of_a_write(backend: Backend) -> (Place, Shm<Pair>, u64, Helper) {
    let place = Place::new(backend, "rollback");
    let shm = Shm::<Pair>::create(&place, OLD).unwrap();
    let v0 = shm.version();
    let mut holder = helper!("hold-and-die", place, 100);
    holder.expect("written");
    assert_eq!(shm.read(), OLD);
    assert_eq!(shm.version(), v0);
    assert!(matches!(shm.try_lock(), Err(TryLockError::WouldBlock)));
    (place, shm, v0, holder)
}

/// A holder SIGKILLed after writing half a value: readers see the old value and version
/// until a locker rolls the write back, which publishes a new version of the old value.
fn a_holder_killed_before_committing_is_rolled_back(backend: Backend) {
    let (place, shm, v0, holder) = a_holder_in_the_middle_of_a_write(backend);

    holder.kill();
    assert_eq!(shm.read(), OLD, "a reader saw the dead holder's write");
    assert_eq!(shm.version(), v0);
    {
        let g = shm.lock().expect("the default mode is never poisoned");
        assert_eq!(*g, OLD);
    }
    // The rollback published a new version with the old value.
    let v1 = shm.version();
    assert!(v1 > v0, "version {v1} after the rollback, {v0} before");
    assert_eq!(shm.read(), OLD);
    assert!(!shm.is_poisoned());

    // The region works as before, for this process and for another one.
    {
        let mut g = shm.lock().unwrap();
        g.a = 5;
        g.b = 6;
    }
    assert_eq!(shm.read(), Pair { a: 5, b: 6 });
    assert!(shm.version() > v1);
    assert_eq!(
        helper!("lock-and-print", place).finish_ok(),
        ["locking", "ok 5 6"]
    );
}

/// Locks `shm` on another thread, writes `a = 100` and panics with the guard held; `true` if
/// that thread panicked (seen through `join`).
fn panics_in_a_thread_after_writing(shm: &Shm<Pair>) -> bool {
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut g = shm.lock().unwrap();
            g.a = 100;
            panic!("deliberate panic while writing");
        })
        .join()
        .is_err()
    })
}

#[test]
fn a_panic_inside_a_guard_rolls_back() {
    let (name, _cleanup) = region("panic-rollback");
    let shm = Shm::<Pair>::create(&name, OLD).unwrap();
    let v0 = shm.version();

    // In another thread, seen through join().
    assert!(panics_in_a_thread_after_writing(&shm));
    assert_eq!(shm.read(), OLD);
    let v1 = shm.version();
    assert!(v1 > v0, "the rollback publishes a new version");
    assert_eq!(*shm.lock().expect("not poisoned"), OLD);

    // In this thread, caught with catch_unwind.
    let mut during = None;
    let caught = catch_unwind(AssertUnwindSafe(|| {
        let mut g = shm.lock().unwrap();
        g.b = 200;
        during = Some(shm.read());
        panic!("deliberate panic while writing");
    }));
    assert!(caught.is_err());
    assert_eq!(during, Some(OLD), "a reader saw a write in progress");
    assert_eq!(*shm.lock().expect("not poisoned"), OLD);
    assert!(shm.version() > v1);
    assert!(!shm.is_poisoned());
    // Another process sees the rolled-back value.
    assert_eq!(
        helper!("lock-and-print", name).finish_ok(),
        ["locking", "ok 1 2"]
    );
}

#[test]
fn a_holder_that_dies_without_writing_changes_nothing() {
    for in_place in [false, true] {
        let (name, _cleanup) = region("die-unwritten");
        let shm = Shm::<Pair>::options()
            .in_place(in_place)
            .create(&name, OLD)
            .unwrap();
        let v0 = shm.version();
        let mut holder = helper!("hold-and-die", name, "none");
        holder.expect("written");
        holder.kill();
        let g = shm
            .lock()
            .expect("a holder that never wrote poisons nothing");
        assert_eq!(*g, OLD);
        drop(g);
        assert!(!shm.is_poisoned());
        assert_eq!(shm.version(), v0);
    }
}

// ---- in place: a dead or panicking writer poisons ----

/// In place, a holder SIGKILLed mid-write poisons the region for every process until
/// `clear_poison`; the partial write is what is there.
fn in_place_a_holder_killed_mid_write_poisons_for_every_process(backend: Backend) {
    let place = Place::new(backend, "poison");
    let shm = Shm::<Pair>::options()
        .in_place(true)
        .create(place.location(), OLD)
        .unwrap();
    let v0 = shm.version();

    let mut holder = helper!("hold-and-die", place, 100);
    holder.expect("written");
    holder.kill();

    let poisoned = shm.lock().expect_err("the dead holder wrote: poisoned");
    let g = poisoned.into_inner();
    // In place there is nothing to roll back to: the partial write is what is there.
    assert_eq!(*g, Pair { a: 100, b: 2 });
    drop(g);
    assert!(shm.is_poisoned());
    assert!(shm.version() > v0);

    // Another process sees the poison, and so do the inspector and the listing (which shows
    // POSIX and System V regions; files are not searched for).
    assert_eq!(helper!("is-poisoned", place).finish_ok(), ["true"]);
    let info = Inspector::open(place.location()).unwrap().info();
    assert!(info.poisoned && info.in_place, "{info:?}");
    if backend != Backend::File {
        let info = shmstore::list()
            .unwrap()
            .into_iter()
            .find(|r| r.location == *place.location())
            .expect("listed");
        assert!(info.poisoned && info.in_place);
    }
    // It stays poisoned across lock and unlock, in every process.
    assert!(shm.lock().is_err());
    assert_eq!(
        helper!("lock-and-print", place).finish_ok(),
        ["locking", "poisoned 100 2"]
    );
    assert!(matches!(shm.try_lock(), Err(TryLockError::Poisoned(_))));

    shm.clear_poison();
    assert!(!shm.is_poisoned());
    assert_eq!(helper!("is-poisoned", place).finish_ok(), ["false"]);
    assert_eq!(
        helper!("lock-and-print", place).finish_ok(),
        ["locking", "ok 100 2"]
    );
    assert_eq!(*shm.lock().expect("cleared"), Pair { a: 100, b: 2 });
}

/// In place, `read` finds out that the writer that left the version odd is dead.
fn in_place_read_recovers_a_dead_writer_instead_of_waiting_forever(backend: Backend) {
    let place = Place::new(backend, "poison-read");
    let shm = Shm::<Pair>::options()
        .in_place(true)
        .create(place.location(), OLD)
        .unwrap();
    let mut holder = helper!("hold-and-die", place, 100);
    holder.expect("written");
    holder.kill();
    // The version is odd and nobody will ever make it even: read() must find out the writer
    // is dead, and then the (poisoned) value is what is there.
    assert_eq!(shm.read(), Pair { a: 100, b: 2 });
    assert!(shm.is_poisoned());
    assert!(shm.lock().is_err());
}

#[test]
fn in_place_a_panic_after_writing_poisons_and_a_panic_after_reading_does_not() {
    let (name, _cleanup) = region("poison-panic");
    let shm = Shm::<Pair>::options()
        .in_place(true)
        .create(&name, OLD)
        .unwrap();

    // A guard that was only read: its panic poisons nothing.
    let joined = std::thread::scope(|s| {
        s.spawn(|| {
            let g = shm.lock().unwrap();
            assert_eq!(g.a, 1);
            panic!("deliberate panic while reading");
        })
        .join()
    });
    assert!(joined.is_err());
    assert!(!shm.is_poisoned());
    assert_eq!(*shm.lock().expect("not poisoned"), OLD);
    let caught = catch_unwind(AssertUnwindSafe(|| {
        let g = shm.lock().unwrap();
        let _ = g.b;
        panic!("deliberate panic while reading");
    }));
    assert!(caught.is_err());
    assert!(!shm.is_poisoned());

    // A guard that wrote: its panic poisons, and the write stays.
    assert!(panics_in_a_thread_after_writing(&shm));
    assert!(shm.is_poisoned());
    assert_eq!(helper!("is-poisoned", name).finish_ok(), ["true"]);
    let g = shm.lock().expect_err("poisoned").into_inner();
    assert_eq!(*g, Pair { a: 100, b: 2 });
    drop(g);
    assert_eq!(shm.read(), Pair { a: 100, b: 2 });
    shm.clear_poison();
    assert!(shm.lock().is_ok());
}

// ---- every backend (the matrix) ----

shmstore_tests::for_each_backend!(
    a_holder_killed_before_committing_is_rolled_back,
    lockers_already_blocked_when_the_holder_dies_get_the_old_value,
    in_place_a_holder_killed_mid_write_poisons_for_every_process,
    in_place_read_recovers_a_dead_writer_instead_of_waiting_forever,
    a_creator_killed_inside_init_leaves_an_incomplete_region_that_open_or_create_repairs,
);

/// A holder SIGKILLed after writing half a value, with a locker of another process and a
/// thread of this one blocked behind it: both get the old value, and so does everyone after.
fn lockers_already_blocked_when_the_holder_dies_get_the_old_value(backend: Backend) {
    let (place, shm, v0, holder) = a_holder_in_the_middle_of_a_write(backend);

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

/// A creator SIGKILLed inside `init`: while it lives, openers wait (up to their timeout) and
/// never run init; once it is dead, `open` says `Incomplete` and `open_or_create` initialises
/// the region again, once.
fn a_creator_killed_inside_init_leaves_an_incomplete_region_that_open_or_create_repairs(
    backend: Backend,
) {
    let place = Place::new(backend, "die-in-init");
    let mut creator = helper!("create-and-die-in-init", place);
    creator.expect("in-init");
    let creator_pid = creator.pid().as_raw() as u32;

    let short = Duration::from_millis(100);
    let e = Shm::<Counter>::options()
        .open_timeout(short)
        .open(place.location())
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
        .open_or_create(place.location(), || {
            panic!("init ran while the creator was alive")
        })
        .expect_err("still initialising");
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");

    creator.kill();

    for _ in 0..2 {
        let e = Shm::<Counter>::open(&place).expect_err("never finished");
        assert!(
            matches!(&e, Error::Incomplete { name } if *name == place.to_string()),
            "{e:?}"
        );
        assert_mentions(&e, &["open_or_create"]);
    }
    let e = Shm::<Counter>::open_reader(&place).expect_err("never finished");
    assert!(matches!(e, Error::Incomplete { .. }), "{e:?}");

    let mut ran = 0;
    let shm = Shm::<Counter>::open_or_create(&place, || {
        ran += 1;
        Counter::at(42)
    })
    .expect("re-initialised");
    assert_eq!(ran, 1);
    assert_eq!(shm.read(), Counter::at(42));
    assert_eq!(shm.creator_pid(), std::process::id());
    assert_ne!(shm.creator_pid(), creator_pid);
    assert_eq!(
        Shm::<Counter>::open(&place).unwrap().read(),
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
