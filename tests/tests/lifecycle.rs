//! Lifecycle events reach the handles (issue 16, item 4): a waiter in another process —
//! `wait_for_change` on a `Shm` and on a `ShmReader`, a blocked queue `pop` or `push` — gets
//! `Error::Removed` when its region is removed by shmstore (`shmstore::unlink`), replaced by
//! another region under its location, or removed by something that is not shmstore (`rm` of
//! the object, `ipcrm`), in every backend. Each helper waits at most 30 s and prints how its
//! wait ended, so a waiter left asleep on the orphan fails the test (`ended Timeout`) instead
//! of hanging it.
//!
//! And a reader may start first: `wait_for_creation` makes its `open` wait until the writer
//! creates the region (or time out when nobody does).

use std::process::Command;

use shmstore::{QueueMode, Shm};
use std::time::{Duration, Instant};

use shmstore_tests::{
    create_queue, for_each_backend, helper, Backend, Counter, Helper, Msg, Place,
};

/// The waiters, as `shm-helper wait-removed` names them.
const WAITERS: [&str; 4] = ["shm", "reader", "pop", "push"];

/// Makes the region a waiter of kind `how` waits on: a `Counter`, or an empty MPMC queue.
/// Dropping what it returns leaves the region in place.
fn make_region(place: &Place, how: &str) {
    if how == "pop" || how == "push" {
        drop(create_queue(place, QueueMode::Mpmc));
    } else {
        drop(Shm::<Counter>::create(place.location().clone(), Counter::at(1)).unwrap());
    }
}

/// Starts a waiter of kind `how` on `place` and returns it once it sleeps in its wait.
fn start_waiter(place: &Place, how: &str) -> Helper {
    let mut waiter = helper!("wait-removed", place, how);
    waiter.expect("waiting");
    waiter.wait_until_blocked();
    waiter
}

/// Checks that `waiter` ended its wait with `Error::Removed`, and exited.
fn assert_removed(waiter: Helper, place: &Place, how: &str, by: &str) {
    let lines = waiter.finish_ok();
    assert_eq!(
        lines,
        ["ended Removed"],
        "{place}: a `{how}` waiter whose region was {by}"
    );
}

/// Removes the place's object from another process that is not shmstore, as an operator
/// would: `rm` of the object's path (a plain `unlink(2)`), `ipcrm -m ID` of a segment.
fn remove_behind_shmstores_back(place: &Place) {
    let status = match place.key() {
        Some(key) => Command::new("ipcrm")
            .arg("-M")
            .arg(key.to_string())
            .status(),
        None => Command::new("rm").arg(place.path().unwrap()).status(),
    }
    .expect("cannot run the removing command");
    assert!(status.success(), "removing {place} failed: {status}");
}

/// `shmstore::unlink` wakes every waiter, which gets `Removed`.
fn unlink_by_shmstore_wakes_the_waiters(backend: Backend) {
    for how in WAITERS {
        let place = Place::new(backend, "unlinked");
        make_region(&place, how);
        let waiter = start_waiter(&place, how);
        shmstore::unlink(place.location().clone()).unwrap();
        assert_removed(waiter, &place, how, "unlinked by shmstore");
        assert!(!place.exists());
    }
}

/// A region replaced by another under its location ends its waiters' waits: for a name or a
/// file, a new region renamed over it (nothing removes the old one first, so nothing wakes
/// them: they notice within the documented second); for a segment, whose key cannot be
/// renamed over, removed and created again.
fn replaced_region_ends_the_waits(backend: Backend) {
    for how in WAITERS {
        let place = Place::new(backend, "replaced");
        make_region(&place, how);
        let waiter = start_waiter(&place, how);
        match place.path() {
            Some(path) => {
                // Built at a location of the same backend: /dev/shm for a name, a directory
                // beside the place's (the same file system) for a file.
                let beside = Place::new(backend, "replacement");
                make_region(&beside, how);
                std::fs::rename(beside.path().unwrap(), &path).unwrap();
            }
            None => {
                shmstore::unlink(place.location().clone()).unwrap();
                make_region(&place, how);
            }
        }
        assert_removed(waiter, &place, how, "replaced");
        // The replacement is a region of its own, which `place` removes.
        assert!(place.exists());
    }
}

/// A removal shmstore does not see (`rm`, `ipcrm`) wakes nobody; every waiter notices within
/// the bound (a second) and gets `Removed`.
fn removal_behind_shmstores_back_ends_the_waits(backend: Backend) {
    for how in WAITERS {
        let place = Place::new(backend, "rm");
        make_region(&place, how);
        let waiter = start_waiter(&place, how);
        remove_behind_shmstores_back(&place);
        assert_removed(waiter, &place, how, "removed by rm or ipcrm");
        assert!(!place.exists());
    }
}

/// `unlink_on_drop` is a removal by shmstore too.
fn unlink_on_drop_wakes_the_waiters(backend: Backend) {
    let place = Place::new(backend, "on-drop");
    let owner = Shm::<Counter>::options()
        .unlink_on_drop(true)
        .create(place.location().clone(), Counter::at(1))
        .unwrap();
    let waiters: Vec<Helper> = ["shm", "reader"]
        .into_iter()
        .map(|how| start_waiter(&place, how))
        .collect();
    drop(owner);
    for (waiter, how) in waiters.into_iter().zip(["shm", "reader"]) {
        assert_removed(waiter, &place, how, "unlinked on drop");
    }
    assert!(!place.exists());
}

/// `Store::remove_all` is a removal by shmstore too (names only).
#[test]
fn store_remove_all_wakes_the_waiters() {
    let prefix = shmstore_tests::unique_name("store-removed");
    let store = shmstore::Store::new(&prefix).unwrap();
    let place = Place::adopt_name(&format!("{prefix}.config"));
    drop(store.create::<Counter>("config", Counter::at(1)).unwrap());
    let waiter = start_waiter(&place, "shm");
    assert_eq!(store.remove_all().unwrap(), 1);
    assert_removed(waiter, &place, "shm", "removed by Store::remove_all");
    assert!(!place.exists());
}

/// Waits until `helper` sleeps in a system call that waits for a creation: `poll` on its
/// inotify watch, or the sleep between two looks at a System V key. A minute at most.
fn wait_until_sleeping(helper: &Helper) {
    use nix::libc::{SYS_clock_nanosleep, SYS_nanosleep, SYS_poll, SYS_ppoll};
    let task = format!("/proc/{}/syscall", helper.pid());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let syscall = std::fs::read_to_string(&task).unwrap_or_default();
        let number = syscall
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<i64>().ok());
        const SLEEPS: [i64; 4] = [SYS_poll, SYS_ppoll, SYS_nanosleep, SYS_clock_nanosleep];
        if matches!(number, Some(n) if SLEEPS.contains(&n)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the reader never slept: {syscall:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A reader started before its writer: `open` with `wait_for_creation` sleeps until the
/// region is created, then opens it and sees the initial value (a `Shm`, a `ShmReader`, a
/// queue's consumer).
fn a_reader_started_first_opens_once_created(backend: Backend) {
    for how in ["shm", "reader", "pop"] {
        let place = Place::new(backend, "created");
        let mut reader = helper!("open-when-created", place, how, 30_000);
        reader.expect("opening");
        wait_until_sleeping(&reader);
        if how == "pop" {
            let queue = create_queue(&place, QueueMode::Mpmc);
            queue.push(Msg::new(1, 41)).unwrap();
        } else {
            drop(Shm::<Counter>::create(place.location().clone(), Counter::at(41)).unwrap());
        }
        assert_eq!(reader.finish_ok(), ["opened 41"], "{place}: {how}");
    }
}

/// Nobody creates the region: the wait ends in `Timeout`, and leaves nothing.
fn waiting_for_a_creation_that_never_comes_times_out(backend: Backend) {
    for how in ["shm", "reader", "pop"] {
        let place = Place::new(backend, "never");
        let reader = helper!("open-when-created", place, how, 300);
        assert_eq!(
            reader.finish_ok(),
            ["opening", "error Timeout"],
            "{place}: {how}"
        );
        assert!(!place.exists());
    }
}

for_each_backend!(
    a_reader_started_first_opens_once_created,
    waiting_for_a_creation_that_never_comes_times_out,
    unlink_by_shmstore_wakes_the_waiters,
    replaced_region_ends_the_waits,
    removal_behind_shmstores_back_ends_the_waits,
    unlink_on_drop_wakes_the_waiters,
);
