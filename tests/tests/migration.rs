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

/// Bug: a writable handle that had not followed a migration yet when the region that replaced
/// its own was unlinked panicked in `lock()` (and `try_lock`, `lock_timeout`): following
/// failed ("does not exist") and `lock` had no room for the error. It now keeps working on its
/// own region, as a handle of an unlinked region that never migrated does, and `is_removed`
/// says so.
#[test]
fn regression_lock_of_a_handle_whose_successor_was_unlinked_panicked() {
    let place = Place::new(Backend::Posix, "migrate-unlinked-lock");
    let old = Shm::<ConfigV1>::create(place.location().clone(), v1(4)).expect("create");
    drop(Shm::<ConfigV1Plus>::open(place.location().clone()).expect("migrates"));
    shmstore::unlink(place.location().clone()).expect("unlink");
    let locked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        old.lock().map(|mut guard| guard.workers = 5).is_ok()
    }));
    assert!(matches!(locked, Ok(true)), "lock() panicked or failed");
    assert!(old.try_lock().is_ok());
    assert!(old.lock_timeout(std::time::Duration::from_secs(5)).is_ok());
    assert!(old.is_removed().expect("look"));
    assert_eq!(old.read().workers, 5, "its own region took the write");
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

/// Following a migration opens what the location holds when the handle next looks (README,
/// "Changing a region's type"): a handle that had not followed yet when the region that
/// replaced its own was unlinked and another created under the name follows that one if its
/// type is compatible, as opening the name again would; with a region of another type there,
/// it has nothing to follow and stays on its own region, which `is_removed` reports, and a
/// waiter ends with `Removed`.
#[test]
fn a_handle_follows_what_the_location_holds_when_it_next_looks() {
    use std::time::Duration;
    let place = Place::new(Backend::Posix, "migrate-recreated");
    let old = Shm::<ConfigV1>::create(place.location().clone(), v1(4)).expect("create");
    drop(Shm::<ConfigV1Plus>::open(place.location().clone()).expect("migrates"));
    shmstore::unlink(place.location().clone()).expect("unlink");
    let anew = Shm::<ConfigV1>::create(place.location().clone(), v1(100)).expect("create");
    assert_eq!(old.read().workers, 100, "followed to what the name holds");
    old.lock().unwrap().workers = 7;
    assert_eq!(anew.read().workers, 7);
    assert!(!old.is_removed().expect("look"));
    drop(anew);
    shmstore::unlink(place.location().clone()).expect("unlink");

    let place = Place::new(Backend::Posix, "migrate-recreated-other");
    let old = Shm::<ConfigV1>::create(place.location().clone(), v1(4)).expect("create");
    drop(Shm::<ConfigV1Plus>::open(place.location().clone()).expect("migrates"));
    shmstore::unlink(place.location().clone()).expect("unlink");
    let other_type = Shm::<u64>::create(place.location().clone(), 1).expect("create");
    assert!(old.is_removed().expect("look"));
    let waited = old.wait_for_change(old.version(), Some(Duration::from_secs(30)));
    assert!(matches!(waited, Err(Error::Removed { .. })), "{waited:?}");
    old.lock().unwrap().workers = 9;
    assert_eq!(old.read().workers, 9, "its own region");
    assert_eq!(other_type.read(), 1, "the other region is untouched");
}

/// Bug: a region holding a plain value opened with a struct type got a `LayoutMismatch` whose
/// every line read "`` in the region and `_pad` here": the empty path of the whole value.
#[test]
fn regression_a_plain_region_opened_as_a_struct_named_an_empty_path() {
    let place = Place::new(Backend::Posix, "plain-as-struct");
    let _plain = Shm::<u64>::create(place.location().clone(), 1).expect("create");
    let e = Shm::<ConfigV1>::open(place.location().clone())
        .map(drop)
        .expect_err("another type");
    let text = e.to_string();
    assert!(!text.contains("``"), "{text}");
    assert!(
        text.contains("the whole value is a plain value in the region but a struct here"),
        "{text}"
    );
}
