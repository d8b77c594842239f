//! Issue 16, items 2 and 3: writing through a compatible layout, and migrating a region to a
//! type that holds every live version, with every handle following.

use shmstore::value::FixedStr;
use shmstore::{Error, Shm};
use shmstore_tests::config_versions::{ConfigV1, LevelV1};
use shmstore_tests::config_versions_plus::ConfigV1Plus;
use shmstore_tests::{Backend, Place};

fn v1(workers: u32) -> ConfigV1 {
    ConfigV1 {
        workers,
        timeout_ms: 500,
        service: FixedStr::new("gateway").expect("fits"),
        level: LevelV1::Warn.into(),
        _pad: [0; 3],
    }
}

#[test]
fn a_writer_with_a_new_field_migrates_and_an_old_handle_follows() {
    let place = Place::new(Backend::Posix, "migrate-smoke");
    let old = Shm::<ConfigV1>::create(place.location().clone(), v1(4)).expect("create");
    let old_reader = Shm::<ConfigV1>::open_reader(place.location().clone()).expect("reader");
    let new = Shm::<ConfigV1Plus>::open(place.location().clone()).expect("the new writer migrates");
    assert_eq!(new.read().workers, 4);
    assert_eq!(new.read().retries, 0);
    new.lock().expect("lock").retries = 3;
    // The old handle follows on its next operation and keeps the new field's value.
    old.lock().expect("lock").workers = 8;
    let now = new.read();
    assert_eq!((now.workers, now.retries), (8, 3));
    assert_eq!(old_reader.read().workers, 8);
    assert_eq!(old.read().workers, 8);
}

#[test]
fn a_wider_writer_migrates_to_the_union_and_narrows_with_checks() {
    use shmstore_tests::config_versions::{ConfigV2, LevelV2};
    let place = Place::new(Backend::Posix, "migrate-union");
    let old = Shm::<ConfigV1>::create(place.location().clone(), v1(4)).expect("create");
    let new = Shm::<ConfigV2>::open(place.location().clone()).expect("the new writer migrates");
    assert!(
        new.is_projected(),
        "V2 widens fields, so the region keeps V1's and V2 projects"
    );
    {
        let mut g = new.lock().expect("lock");
        g.retries = 5;
        g.timeout_ms = 1_000;
        g.level = LevelV2::Info.into();
    }
    let seen = old.read();
    assert_eq!((seen.workers, seen.timeout_ms), (4, 1_000));
    assert!(
        old.is_projected(),
        "the old handle followed to the union, which it projects"
    );
    // A value the old type cannot hold is refused whole, naming the field.
    let mut g = new.lock().expect("lock");
    g.timeout_ms = u64::from(u32::MAX) + 1;
    g.retries = 6;
    match g.commit() {
        Err(Error::InvalidField { field, .. }) => assert_eq!(field, "timeout_ms"),
        other => panic!("expected InvalidField, got {other:?}"),
    }
    let now = new.read();
    assert_eq!(
        (now.timeout_ms, now.retries),
        (1_000, 5),
        "nothing was committed"
    );
    // The old writer keeps the new field's value.
    old.lock().expect("lock").workers = 9;
    let now = new.read();
    assert_eq!((now.workers, now.retries), (9, 5));
}

/// Regression: a waiter asleep in `wait_for_change` when the region migrates is woken by the
/// migrator (which wakes every sleeper) before its slice ran out, looked at the location,
/// found it referring to another object and ended with `Removed` instead of following it
/// (`Region::wait_for_change` asked `region_removed` before `has_moved`). Both kinds of
/// handle: a writable one (registered waiter) and a reader.
#[test]
fn regression_a_waiter_asleep_during_the_migration_follows_instead_of_ending_removed() {
    use std::sync::mpsc;
    use std::time::Duration;
    let place = Place::new(Backend::Posix, "migrate-waiter");
    let old = Shm::<ConfigV1>::create(place.location().clone(), v1(4)).expect("create");
    let old_reader = Shm::<ConfigV1>::open_reader(place.location().clone()).expect("reader");
    let since = old.version();
    let (tids, asleep) = mpsc::channel();
    std::thread::scope(|s| {
        let waiting_writer = s.spawn(|| {
            tids.send(nix::unistd::gettid()).unwrap();
            old.wait_for_change(since, Some(Duration::from_secs(30)))
        });
        let waiting_reader = s.spawn(|| {
            tids.send(nix::unistd::gettid()).unwrap();
            old_reader.wait_for_change(since, Some(Duration::from_secs(30)))
        });
        for _ in 0..2 {
            let tid = asleep.recv().unwrap();
            shmstore_tests::wait_until_blocked(
                &std::path::Path::new("/proc/self/task").join(tid.to_string()),
            );
        }
        let new = Shm::<ConfigV1Plus>::open(place.location().clone()).expect("migrates");
        new.lock().expect("lock").retries = 3;
        for (who, waited) in [("writer", waiting_writer), ("reader", waiting_reader)] {
            let waited = waited.join().expect("no panic");
            assert!(
                waited.is_ok(),
                "the {who} asleep during the migration must follow it, got {waited:?}"
            );
        }
    });
    assert_eq!(old_reader.read().workers, 4);
    assert!(old_reader.is_projected() && old.is_projected());
}

/// Regression: a handle that had not followed the migration yet when the region that
/// replaced its own was unlinked asked its successor and passed on the error of opening the
/// location: `is_removed()` was `Err(NotFound)` instead of `Ok(true)`, and `wait_for_change`
/// `Err(NotFound)` ("does not exist; create it first") instead of `Err(Removed)`, which a
/// handle that followed gets.
#[test]
fn regression_a_handle_that_did_not_follow_sees_the_successor_removed() {
    use std::time::Duration;
    let place = Place::new(Backend::Posix, "migrate-unlinked");
    let old = Shm::<ConfigV1>::create(place.location().clone(), v1(4)).expect("create");
    let old_reader = Shm::<ConfigV1>::open_reader(place.location().clone()).expect("reader");
    drop(Shm::<ConfigV1Plus>::open(place.location().clone()).expect("migrates"));
    shmstore::unlink(place.location().clone()).expect("unlink");
    assert!(
        matches!(old.is_removed(), Ok(true)),
        "{:?}",
        old.is_removed()
    );
    assert!(
        matches!(old_reader.is_removed(), Ok(true)),
        "{:?}",
        old_reader.is_removed()
    );
    let bound = Some(Duration::from_secs(30));
    let waited = old.wait_for_change(old.version(), bound);
    assert!(matches!(waited, Err(Error::Removed { .. })), "{waited:?}");
    let waited = old_reader.wait_for_change(old_reader.version(), bound);
    assert!(matches!(waited, Err(Error::Removed { .. })), "{waited:?}");
    // Reads still give the last value committed before the migration.
    assert_eq!((old.read().workers, old_reader.read().workers), (4, 4));
}

/// KNOWN BUG (ignored until fixed; see the helper's report): a writable handle that had not
/// followed a migration yet when the region that replaced its own was unlinked panics in
/// `lock()` (and `try_lock`, `lock_timeout`): `Shm::unlock_and_follow` (shmstore/src/shm.rs)
/// panics when the successor cannot be opened ("region … was migrated to a wider type and the
/// region that replaced it cannot be opened: … does not exist"), an undocumented panic caused
/// by another process's `unlink`. A handle of an unlinked region that never migrated keeps
/// locking and writing its orphaned object (`is_removed` tells); this one should behave the
/// same, or the panic should at least be documented under `lock`'s "Panics".
#[test]
#[ignore = "known bug: Shm::lock panics when the region that replaced its own was unlinked"]
fn known_bug_lock_of_a_handle_whose_successor_was_unlinked_does_not_panic() {
    let place = Place::new(Backend::Posix, "migrate-unlinked-lock");
    let old = Shm::<ConfigV1>::create(place.location().clone(), v1(4)).expect("create");
    drop(Shm::<ConfigV1Plus>::open(place.location().clone()).expect("migrates"));
    shmstore::unlink(place.location().clone()).expect("unlink");
    let locked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        old.lock().map(|mut guard| guard.workers = 5).is_ok()
    }));
    assert!(
        locked.is_ok(),
        "lock() panicked after another process unlinked the migrated region"
    );
}

/// Each operation of an old handle, as the first one after a migration, finds the region
/// moved and follows it: it sees what the new release wrote there, and its writes land there.
#[test]
fn every_operation_of_an_old_handle_follows_a_migration_as_its_first_call() {
    use std::time::Duration;
    type Op = fn(&Shm<ConfigV1>, &shmstore::ShmReader<ConfigV1>) -> u32;
    let ops: [(&str, Op); 8] = [
        ("read", |shm, _| shm.read().workers),
        ("read_into", |shm, _| {
            let mut out = v1(0);
            shm.read_into(&mut out);
            out.workers
        }),
        ("read_timeout", |shm, _| {
            shm.read_timeout(Duration::from_secs(5)).unwrap().workers
        }),
        ("lock", |shm, _| shm.lock().unwrap().workers),
        ("try_lock", |shm, _| shm.try_lock().unwrap().workers),
        ("lock_timeout", |shm, _| {
            shm.lock_timeout(Duration::from_secs(5)).unwrap().workers
        }),
        ("reader read", |_, reader| reader.read().workers),
        ("reader read_timeout", |_, reader| {
            reader.read_timeout(Duration::from_secs(5)).unwrap().workers
        }),
    ];
    for (what, op) in ops {
        let place = Place::new(Backend::Posix, "migrate-first-op");
        let old = Shm::<ConfigV1>::create(place.location().clone(), v1(4)).expect("create");
        let old_reader = Shm::<ConfigV1>::open_reader(place.location().clone()).expect("reader");
        let new = Shm::<ConfigV1Plus>::open(place.location().clone()).expect("migrates");
        new.lock().unwrap().workers = 40;
        assert_eq!(op(&old, &old_reader), 40, "{what}");
        old.lock().unwrap().workers = 41;
        assert_eq!(
            new.read().workers,
            41,
            "{what}: the old handle's write landed"
        );
        assert_eq!(old_reader.read().workers, 41, "{what}");
        assert!(!old.is_removed().unwrap() && !old_reader.is_removed().unwrap());
        let version = new.version();
        assert_eq!((old.version(), old_reader.version()), (version, version));
    }
}

/// KNOWN BUG (ignored until fixed; see the helper's report): a handle that had not followed a
/// migration yet, when the region that replaced its own was unlinked and ANOTHER region was
/// then created under the name, follows to that unrelated region: `is_removed()` is
/// `Ok(false)`, `read()` returns the new region's value and `lock()` writes into it. A handle
/// whose region was unlinked without a migration never adopts a region created anew under its
/// name (tests/removed.rs). The old header says only `LIFECYCLE_MOVED`, not which object
/// replaced it, so following opens whatever the location holds (`attach.rs`/`shm.rs`
/// `follow`). With a region of an incompatible type there, `is_removed()` and
/// `wait_for_change` return that open's `LayoutMismatch` instead of `Ok(true)` / `Removed`.
#[test]
#[ignore = "known bug: a handle follows a migration to a region created anew after the successor was unlinked"]
fn known_bug_a_handle_does_not_follow_to_a_region_created_anew_after_the_successor_was_unlinked() {
    use std::time::Duration;
    let place = Place::new(Backend::Posix, "migrate-recreated");
    let old = Shm::<ConfigV1>::create(place.location().clone(), v1(4)).expect("create");
    drop(Shm::<ConfigV1Plus>::open(place.location().clone()).expect("migrates"));
    shmstore::unlink(place.location().clone()).expect("unlink");
    let unrelated = Shm::<ConfigV1>::create(place.location().clone(), v1(100)).expect("create");
    assert!(
        matches!(old.is_removed(), Ok(true)),
        "{:?}",
        old.is_removed()
    );
    assert_eq!(old.read().workers, 4, "the old handle read another region");
    old.lock().unwrap().workers = 7;
    assert_eq!(
        unrelated.read().workers,
        100,
        "the old handle wrote into another region"
    );
    drop(unrelated);
    shmstore::unlink(place.location().clone()).expect("unlink");

    let place = Place::new(Backend::Posix, "migrate-recreated-other");
    let old = Shm::<ConfigV1>::create(place.location().clone(), v1(4)).expect("create");
    drop(Shm::<ConfigV1Plus>::open(place.location().clone()).expect("migrates"));
    shmstore::unlink(place.location().clone()).expect("unlink");
    let _other_type = Shm::<u64>::create(place.location().clone(), 1).expect("create");
    assert!(
        matches!(old.is_removed(), Ok(true)),
        "{:?}",
        old.is_removed()
    );
    let waited = old.wait_for_change(old.version(), Some(Duration::from_secs(30)));
    assert!(matches!(waited, Err(Error::Removed { .. })), "{waited:?}");
}
