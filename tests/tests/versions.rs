//! Versions count commits (issue 15, item 5): a region never written is at version 0 and every
//! commit adds exactly one, through a read-write handle, a read-only one and an `Inspector`,
//! whichever process wrote; `wait_for_change(v)` with `v` from `version()` wakes on the next
//! commit and returns `v + 1`, and a waiter that follows a writer committing back to back
//! never sees a version that does not match the number of commits in the value it reads. Each
//! in the default mode and in place.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use shmstore::inspect::Inspector;
use shmstore::Shm;
use shmstore_tests::{helper, region, Counter, Helper, Pair};

/// How long a wait for a change that is sure to come may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// `tag`, marked `-inplace` for an in-place region.
fn mode_tag(tag: &str, in_place: bool) -> String {
    if in_place {
        format!("{tag}-inplace")
    } else {
        tag.to_string()
    }
}

/// The `a` field of a `Pair` read as bytes by an `Inspector`.
fn pair_a(bytes: &[u8]) -> u64 {
    u64::from_ne_bytes(bytes[..8].try_into().expect("a Pair is 16 bytes"))
}

// ---- N commits give version N ----

/// A child commits five writes of a `Pair`: every handle, in this process, reads version 5.
/// A guard that writes nothing publishes nothing; a write rolled back by a panic (poisoned in
/// place) publishes one version.
fn n_commits_give_version_n(in_place: bool) {
    let (name, _cleanup) = region(&mode_tag("versions-count", in_place));
    let shm = Shm::<Pair>::options()
        .in_place(in_place)
        .create(&name, Pair { a: 0, b: 0 })
        .unwrap();
    let reader = Shm::<Pair>::open_reader(&name).unwrap();
    let inspector = Inspector::open(name.as_str()).unwrap();
    assert_eq!(
        (shm.version(), reader.version(), inspector.version()),
        (0, 0, 0),
        "a region never written is at version 0"
    );

    let mut writer = helper!("writer-loop", name, 5);
    writer.expect("started");
    assert_eq!(writer.finish_ok(), ["done"]);
    assert_eq!(shm.read(), Pair { a: 5, b: 5 });
    assert_eq!(
        (shm.version(), reader.version(), inspector.version()),
        (5, 5, 5),
        "five commits, version 5"
    );
    let listed = shmstore::list()
        .unwrap()
        .into_iter()
        .find(|r| r.name == name)
        .expect("the region is listed");
    assert_eq!(listed.version, 5);

    // Reading through a guard, or locking without writing, publishes nothing.
    assert_eq!(shm.lock().unwrap().a, 5);
    drop(shm.lock().unwrap());
    assert_eq!(shm.version(), 5);

    // While a write is under way, it does not count.
    {
        let mut g = shm.lock().unwrap();
        g.a = 6;
        assert_eq!(reader.version(), 5, "a write under way is not a version");
        g.b = 6;
    }
    assert_eq!((shm.version(), reader.version()), (6, 6));

    // A write undone by a panic publishes one version: the old value again (rolled back), or
    // the value as the panic left it, poisoned (in place).
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        let mut g = shm.lock().unwrap();
        g.a = 99;
        panic!("mid-write");
    }));
    assert!(panicked.is_err());
    assert_eq!(
        (shm.version(), reader.version(), inspector.version()),
        (7, 7, 7)
    );
    if in_place {
        assert!(shm.is_poisoned());
    } else {
        assert_eq!(shm.read(), Pair { a: 6, b: 6 }, "rolled back");
    }
}

#[test]
fn n_commits_from_another_process_give_version_n() {
    n_commits_give_version_n(false);
}

#[test]
fn n_commits_from_another_process_give_version_n_in_place() {
    n_commits_give_version_n(true);
}

// ---- a wait from version() wakes on the next commit ----

/// Three commits here, then a child waits from its `version()` (through a read-write handle
/// or a read-only one): it starts from 3, and one more commit here wakes it with version 4.
fn waits_from_version_wake_on_the_next_commit(in_place: bool, how: &str) {
    let (name, _cleanup) = region(&mode_tag(&format!("versions-wait-{how}"), in_place));
    let shm = Shm::<Counter>::options()
        .in_place(in_place)
        .notify_readers(true)
        .create(&name, Counter::at(0))
        .unwrap();
    for n in 1..=3 {
        *shm.lock().unwrap() = Counter::at(n);
    }
    let mut waiter = helper!("wait-change", name, how);
    waiter.expect("waiting 3");
    *shm.lock().unwrap() = Counter::at(43);
    assert_eq!(waiter.finish_ok(), ["changed 4 43"]);
    assert_eq!(shm.version(), 4);
}

#[test]
fn a_wait_from_version_wakes_on_the_next_commit_with_version_plus_one() {
    for in_place in [false, true] {
        for how in ["shm", "reader"] {
            waits_from_version_wake_on_the_next_commit(in_place, how);
        }
    }
}

// ---- a waiter following a back-to-back writer misses no commit ----

/// Wake-ups the waiter must see before the writer is stopped.
const WAKE_UPS: u64 = 200;

/// Tells a `pair-writer` child to stop and returns how many writes it committed.
fn stop_writer(mut writer: Helper) -> u64 {
    writer.send("stop");
    let lines = writer.finish_ok();
    let report: Vec<&str> = lines[0].split(' ').collect();
    match report.as_slice() {
        ["done", count, "poisoned=0", _sleeps] => count.parse().unwrap(),
        _ => panic!("unexpected report {lines:?}"),
    }
}

/// A child commits `Pair`s back to back (commit k writes k into both fields); this process
/// waits from each version it was given to the next, in turn through a `Shm`, a `ShmReader` and
/// an `Inspector`, and reads around every wake-up. Each wait returns a later version, and the
/// value read between two samples of the version is the commit those versions count: a version
/// never runs ahead of (or behind) the commits, so a jump of several means exactly that many
/// commits, none lost. Once the writer stops, every handle reads its commit count.
fn waiters_miss_no_commit(in_place: bool) {
    let (name, _cleanup) = region(&mode_tag("versions-follow", in_place));
    let shm = Shm::<Pair>::options()
        .in_place(in_place)
        .create(&name, Pair { a: 0, b: 0 })
        .unwrap();
    let reader = Shm::<Pair>::open_reader(&name).unwrap();
    let inspector = Inspector::open(name.as_str()).unwrap();

    let mut writer = helper!("pair-writer", name);
    writer.expect("started");
    let mut since = 0;
    for wake_up in 0..WAKE_UPS {
        let (now, before, a, after) = match wake_up % 3 {
            0 => (
                shm.wait_for_change(since, Some(PATIENCE)).unwrap(),
                shm.version(),
                shm.read().a,
                shm.version(),
            ),
            1 => (
                reader.wait_for_change(since, Some(PATIENCE)).unwrap(),
                reader.version(),
                reader.read().a,
                reader.version(),
            ),
            _ => (
                inspector.wait_for_change(since, Some(PATIENCE)).unwrap(),
                inspector.version(),
                pair_a(&inspector.read()),
                inspector.version(),
            ),
        };
        assert!(since < now, "waited from {since}, woken at {now}");
        assert!(
            now <= before && before <= a && a <= after,
            "woken at version {now}, then read commit {a} between versions {before} and {after}"
        );
        since = now;
    }
    let commits = stop_writer(writer);
    assert!(commits >= WAKE_UPS);
    assert_eq!(
        (shm.version(), reader.version(), inspector.version()),
        (commits, commits, commits)
    );
    assert_eq!(
        shm.read(),
        Pair {
            a: commits,
            b: commits
        }
    );
}

#[test]
fn a_waiter_following_a_back_to_back_writer_misses_no_commit() {
    waiters_miss_no_commit(false);
}

#[test]
fn a_waiter_following_a_back_to_back_writer_misses_no_commit_in_place() {
    waiters_miss_no_commit(true);
}
