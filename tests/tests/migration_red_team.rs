//! Issue 16, red team: what a hostile peer with write access, an unlucky operator and racing
//! writers can do to a region that changes type (README, "Changing a region's type";
//! FORMAT.md, "Migration").

use std::os::unix::fs::FileExt;
use std::sync::mpsc;
use std::time::Duration;

use shmstore::value::FixedStr;
use shmstore::{Error, Shm};
use shmstore_tests::config_versions::{ConfigV1, ConfigV2, LevelV1};
use shmstore_tests::config_versions_plus::ConfigV1Plus;
use shmstore_tests::{region, Backend, Place};

/// Where the header's `lifecycle` word is (FORMAT.md, "Header").
const LIFECYCLE_OFFSET: u64 = 156;

fn v1(workers: u32) -> ConfigV1 {
    ConfigV1 {
        workers,
        timeout_ms: 500,
        service: FixedStr::new("gateway").expect("fits"),
        level: LevelV1::Warn.into(),
        _pad: [0; 3],
    }
}

/// Writes `word` into the `lifecycle` word of the object `/dev/shm/<name>` refers to, as a peer
/// with write access can.
fn forge_lifecycle(name: &str, word: u32) {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(shmstore_tests::shm_path(name))
        .expect("open the object");
    file.write_all_at(&word.to_ne_bytes(), LIFECYCLE_OFFSET)
        .expect("forge lifecycle");
}

/// How many descriptors this process has open.
fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("fd dir").count()
}

/// Runs `work` on another thread and fails the test if it has not returned within a minute (a
/// hang would otherwise hang the test run).
fn finishes<R: Send + 'static>(what: &str, work: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)));
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(value)) => value,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("{what} did not return"),
    }
}

/// A peer stores `LIFECYCLE_MOVED` (2) in a region whose name still refers to it: no
/// migration happened, so the handles must go on with it. Before the fix every operation
/// "followed" the name to the same object again and again, mapping it once more each time
/// (a descriptor and a mapping per turn) until `open` failed for want of descriptors: `lock`
/// panicked and the process was left without descriptors.
#[test]
fn a_forged_moved_word_on_a_region_its_name_still_refers_to_is_not_followed() {
    let (name, _cleanup) = region("red-forged-moved");
    let writer = Shm::<u64>::create(&name, 1).expect("create");
    let reader = Shm::<u64>::open_reader(&name).expect("reader");
    let before = open_descriptors();
    forge_lifecycle(&name, 2);
    let (writer, reader) = finishes("operations on a forged MOVED region", move || {
        assert_eq!(reader.read(), 1);
        assert_eq!(writer.read(), 1);
        *writer.lock().expect("lock") = 2;
        assert_eq!(reader.read(), 2);
        assert!(!reader.is_removed().expect("look"));
        let version = reader.version();
        assert_eq!(
            reader
                .wait_for_change(version, Some(Duration::from_millis(10)))
                .map_err(|e| shmstore_tests::variant(&e)),
            Err("Timeout"),
            "nothing changed: the wait times out, it is not a move"
        );
        (writer, reader)
    });
    assert!(
        open_descriptors() <= before + 64,
        "the region was not mapped again and again (other tests run alongside): \
         {before} descriptors before, {} after",
        open_descriptors()
    );
    assert_eq!(Shm::<u64>::open_reader(&name).expect("open").read(), 2);
    drop((writer, reader));
}

/// Garbage in `lifecycle` (no state of the protocol) and `MIGRATING` with no migrator: the
/// name decides, and it still refers to the region, so every operation works on it.
#[test]
fn a_garbage_or_stale_migrating_word_leaves_the_region_current() {
    for word in [1u32, 7, u32::MAX] {
        let (name, _cleanup) = region("red-forged-garbage");
        let writer = Shm::<u64>::create(&name, 1).expect("create");
        let reader = Shm::<u64>::open_reader(&name).expect("reader");
        forge_lifecycle(&name, word);
        let (writer, reader) = finishes("operations on a forged lifecycle", move || {
            *writer.lock().expect("lock") = 2;
            assert_eq!(reader.read(), 2);
            assert!(!writer.is_removed().expect("look"));
            (writer, reader)
        });
        drop((writer, reader));
    }
}

/// Two writers of two different new releases open a release-1 region at once: both open (one
/// migrates, the other migrates its result again or writes through it), and each one's
/// commit, and the old writer's after, is kept: the region ends up holding every field.
#[test]
fn two_new_releases_opening_at_once_both_write_and_nothing_is_lost() {
    let place = Place::new(Backend::Posix, "red-two-releases");
    let location = place.location().clone();
    let old = Shm::<ConfigV1>::create(location.clone(), v1(4)).expect("create");
    let start = std::sync::Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| {
            start.wait();
            let plus = Shm::<ConfigV1Plus>::open(location.clone()).expect("V1Plus opens");
            plus.lock().expect("lock").retries = 3;
        });
        s.spawn(|| {
            start.wait();
            let v2 = Shm::<ConfigV2>::open(location.clone()).expect("V2 opens");
            v2.lock().expect("lock").timeout_ms = 700;
        });
    });
    old.lock().expect("the old writer follows").workers = 9;
    let seen = Shm::<ConfigV2>::open_reader(location.clone())
        .expect("reader")
        .read();
    assert_eq!(
        (seen.workers, seen.retries, seen.timeout_ms),
        (9, 3, 700),
        "every writer's field kept"
    );
    assert_eq!(old.read().timeout_ms, 700);
}

/// A migration needs the old region's lock: while another thread of the same process holds
/// a guard, the migrating open waits for it, and the guard's commit lands in the old region
/// before the copy, so the migrated region holds it.
#[test]
fn a_migration_waits_for_a_guard_held_in_another_thread_and_carries_its_commit() {
    let place = Place::new(Backend::Posix, "red-held-guard");
    let location = place.location().clone();
    let old = Shm::<ConfigV1>::create(location.clone(), v1(4)).expect("create");
    let mut guard = old.lock().expect("lock");
    guard.workers = 7;
    let migrated = std::thread::scope(|s| {
        let migrator = s.spawn(|| {
            let new = Shm::<ConfigV1Plus>::open(location.clone()).expect("migrates");
            new.read().workers
        });
        std::thread::sleep(Duration::from_millis(50)); // usually lets the migrator block first
        drop(guard);
        migrator.join().expect("migrator")
    });
    assert_eq!(migrated, 7, "the held guard's commit was carried over");
    assert_eq!(old.read().workers, 7);
}

/// A guard of a projected handle that is never written publishes nothing: the version stays.
#[test]
fn a_projected_guard_never_written_publishes_nothing() {
    let place = Place::new(Backend::Posix, "red-unwritten");
    let old = Shm::<ConfigV1>::create(place.location().clone(), v1(4)).expect("create");
    let v2 = Shm::<ConfigV2>::open(place.location().clone()).expect("migrates");
    assert!(v2.is_projected());
    let before = v2.version();
    {
        let guard = v2.lock().expect("lock");
        assert_eq!(guard.workers, 4);
    }
    v2.lock()
        .expect("lock")
        .commit()
        .expect("commit of nothing");
    assert_eq!(v2.version(), before, "nothing was published");
    assert_eq!(old.version(), before);
}

/// A projected guard dropped while its thread panics commits nothing, does not poison, and
/// releases the lock.
#[test]
fn a_projected_guard_dropped_while_panicking_commits_nothing() {
    let place = Place::new(Backend::Posix, "red-panicking");
    let _old = Shm::<ConfigV1>::create(place.location().clone(), v1(4)).expect("create");
    let v2 = Shm::<ConfigV2>::open(place.location().clone()).expect("migrates");
    let before = v2.version();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut guard = v2.lock().expect("lock");
        guard.workers = 99;
        guard.retries = 99;
        panic!("the writer fails mid-write");
    }));
    assert!(panicked.is_err());
    assert_eq!(v2.version(), before);
    assert_eq!((v2.read().workers, v2.read().retries), (4, 0));
    assert!(!v2.is_poisoned());
    drop(v2.try_lock().expect("the lock was released"));
}

/// `ShmGuard::commit` on the direct path publishes like a drop does.
#[test]
fn commit_on_the_direct_path_publishes() {
    let (name, _cleanup) = region("red-direct-commit");
    let shm = Shm::<u64>::create(&name, 1).expect("create");
    let before = shm.version();
    let mut guard = shm.lock().expect("lock");
    *guard = 5;
    guard.commit().expect("commit");
    assert_eq!(shm.read(), 5);
    assert!(shm.version() > before);
}

/// `read_timeout` through a projection reads the projected value, also after following.
#[test]
fn read_timeout_through_a_projection_follows_and_projects() {
    let place = Place::new(Backend::Posix, "red-read-timeout");
    let old = Shm::<ConfigV1>::create(place.location().clone(), v1(4)).expect("create");
    let reader = Shm::<ConfigV2>::open_reader(place.location().clone()).expect("reader");
    let v2 = Shm::<ConfigV2>::open(place.location().clone()).expect("migrates");
    v2.lock().expect("lock").retries = 2;
    let seen = reader
        .read_timeout(Duration::from_secs(5))
        .expect("read_timeout");
    assert_eq!((seen.workers, seen.retries, seen.timeout_ms), (4, 2, 500));
    let seen = old.read_timeout(Duration::from_secs(5)).expect("old");
    assert_eq!(seen.workers, 4);
}

/// A handle made with `unlink_on_drop` whose region is migrated removes the migrated region
/// when it drops, whether or not it followed it first: the name was its to remove.
#[test]
fn an_unlink_on_drop_handle_removes_the_migrated_region_when_it_drops() {
    for follows in [true, false] {
        let place = Place::new(Backend::Posix, "red-unlink-on-drop");
        let old = Shm::<ConfigV1>::options()
            .unlink_on_drop(true)
            .create(place.location().clone(), v1(4))
            .expect("create");
        let new = Shm::<ConfigV1Plus>::open(place.location().clone()).expect("migrates");
        if follows {
            old.lock().expect("lock").workers = 5;
        }
        drop(old);
        assert!(
            !place.exists(),
            "the unlink_on_drop handle removed the migrated region (followed: {follows})"
        );
        assert_eq!(new.read().retries, 0, "the other handle keeps working");
    }
}

/// System V segments: a compatible type writes through without a migration; a type with
/// fields the segment lacks gets `NotMigratable`, and the segment stays usable.
#[test]
fn a_system_v_segment_is_written_through_but_never_migrated() {
    let place = Place::new(Backend::SysV, "red-sysv");
    let plus = Shm::<ConfigV1Plus>::create(
        place.location().clone(),
        ConfigV1Plus {
            workers: 1,
            retries: 2,
            timeout_ms: 3,
            service: FixedStr::new("s").expect("fits"),
            level: LevelV1::Warn.into(),
            _pad: [0; 3],
        },
    )
    .expect("create");
    let old = Shm::<ConfigV1>::open(place.location().clone()).expect("writes through");
    assert!(old.is_projected());
    old.lock().expect("lock").workers = 8;
    assert_eq!((plus.read().workers, plus.read().retries), (8, 2));
    drop((old, plus));

    let place = Place::new(Backend::SysV, "red-sysv-v1");
    let old = Shm::<ConfigV1>::create(place.location().clone(), v1(4)).expect("create");
    let refused = Shm::<ConfigV1Plus>::open(place.location().clone())
        .map(|_| ())
        .expect_err("a segment is not migrated");
    assert!(
        matches!(refused, Error::NotMigratable { .. }),
        "{refused:?}"
    );
    old.lock().expect("still usable").workers = 5;
    assert_eq!(old.read().workers, 5);
}

/// A queue is never opened as a value of another type, migrated or not.
#[test]
fn a_queue_is_refused_to_a_value_of_another_type() {
    let (name, _cleanup) = region("red-queue");
    let _queue = shmstore::ShmQueue::<u64, 4>::create(&name).expect("queue");
    let refused = Shm::<ConfigV1Plus>::open(&name)
        .map(|_| ())
        .expect_err("a queue");
    assert!(
        matches!(
            refused,
            Error::WrongKind { .. } | Error::LayoutMismatch { .. }
        ),
        "{refused:?}"
    );
    let refused = Shm::<ConfigV1Plus>::open_reader(&name)
        .map(|_| ())
        .expect_err("a queue");
    assert!(
        matches!(
            refused,
            Error::WrongKind { .. } | Error::LayoutMismatch { .. }
        ),
        "{refused:?}"
    );
}

/// A peer renames a region of an unrelated type over the name and marks the old one moved:
/// the old handle's reads keep the last value, its waits end with the error that says why,
/// and nothing is written into the unrelated region.
#[test]
fn an_unrelated_region_renamed_over_the_name_is_never_written_through() {
    let (name, _cleanup) = region("red-renamed-over");
    let (other, _other_cleanup) = region("red-renamed-other");
    let old = Shm::<ConfigV1>::create(&name, v1(4)).expect("create");
    let unrelated = Shm::<u64>::create(&other, 42).expect("other");
    std::fs::rename(
        shmstore_tests::shm_path(&other),
        shmstore_tests::shm_path(&name),
    )
    .expect("rename over");
    // The old object, no longer under the name: forge its word through the old handle's
    // object (open it by /proc, as the name refers to the other one now).
    let old = finishes("operations after an unrelated rename", move || {
        assert_eq!(old.read().workers, 4, "the last value of the old region");
        assert!(old.is_removed().expect("look"), "the name refers elsewhere");
        let waited = old.wait_for_change(old.version(), Some(Duration::from_millis(10)));
        assert!(waited.is_err(), "{waited:?}");
        old
    });
    assert_eq!(unrelated.read(), 42, "nothing written into it");
    assert_eq!(Shm::<u64>::open_reader(&name).expect("u64").read(), 42);
    drop(old);
}

/// A peer forges the stored field table (a row's offset past the value, or one whose end
/// overflows): a writer of another release that would migrate the region or write through it
/// gets `Corrupt` (no panic, no access out of bounds, no huge allocation), and the region is
/// left as it was.
#[test]
fn a_forged_field_table_refuses_migration_and_write_through_as_corrupt() {
    for forged_offset in [1000u64, u64::MAX - 1] {
        let (name, _cleanup) = region("red-forged-row");
        let old = Shm::<ConfigV1>::create(&name, v1(4)).expect("create");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(shmstore_tests::shm_path(&name))
            .expect("open");
        let mut descriptor = vec![0u8; 256];
        file.read_exact_at(&mut descriptor, 256).expect("read");
        let mut path = 7u32.to_ne_bytes().to_vec();
        path.extend_from_slice(b"workers");
        let row = descriptor
            .windows(path.len())
            .position(|w| w == path)
            .expect("the row of workers");
        // Past the path: the primitive (u32), then the offset (u64).
        file.write_all_at(
            &forged_offset.to_ne_bytes(),
            256 + (row + path.len() + 4) as u64,
        )
        .expect("forge");
        for attempt in [
            Shm::<ConfigV1Plus>::open(&name).map(|_| ()),
            Shm::<ConfigV2>::open(&name).map(|_| ()),
            Shm::<ConfigV2>::open_reader(&name).map(|_| ()),
        ] {
            let e = attempt.expect_err("a forged table");
            assert!(
                matches!(e, Error::Corrupt { .. } | Error::LayoutMismatch { .. }),
                "{e:?}"
            );
        }
        assert!(!old.is_removed().expect("look"), "not migrated");
        old.lock().expect("still usable").workers = 5;
        assert_eq!(old.read().workers, 5);
    }
}

/// Waiters in `wait_for_change` on the old region when it is migrated: none returns
/// `Removed`, and each sees the commit made right after the migration (versions continue).
#[test]
fn waiters_across_a_migration_see_the_next_commit_and_never_removed() {
    let place = Place::new(Backend::Posix, "red-waiters");
    let location = place.location().clone();
    let old = Shm::<ConfigV1>::create(location.clone(), v1(4)).expect("create");
    let since = old.version();
    let ready = std::sync::Barrier::new(4);
    let reader = Shm::<ConfigV1>::open_reader(location.clone()).expect("reader");
    let projected = Shm::<ConfigV2>::open_reader(location.clone()).expect("v2 reader");
    std::thread::scope(|s| {
        let waiters = [
            s.spawn(|| {
                ready.wait();
                let v = reader
                    .wait_for_change(since, Some(Duration::from_secs(30)))
                    .expect("the old reader's wait");
                (v, reader.read().workers)
            }),
            s.spawn(|| {
                ready.wait();
                let v = projected
                    .wait_for_change(since, Some(Duration::from_secs(30)))
                    .expect("the projected reader's wait");
                (v, projected.read().workers)
            }),
            s.spawn(|| {
                ready.wait();
                let v = old
                    .wait_for_change(since, Some(Duration::from_secs(30)))
                    .expect("the old writer's wait");
                (v, old.read().workers)
            }),
        ];
        ready.wait();
        std::thread::sleep(Duration::from_millis(20)); // usually lets them sleep first
        let new = Shm::<ConfigV1Plus>::open(location.clone()).expect("migrates");
        new.lock().expect("lock").workers = 6;
        for waiter in waiters {
            let (version, workers) = waiter.join().expect("waiter");
            assert!(version > since);
            assert_eq!(workers, 6);
        }
    });
}

/// A planted `.NAME.shmstore-migrating-INO` (a symbolic link to a file elsewhere): the
/// migrator removes the link, not what it points to, and migrates.
#[test]
fn a_planted_temporary_name_is_removed_not_followed() {
    use std::os::unix::fs::MetadataExt;
    let (name, _cleanup) = region("red-planted");
    let old = Shm::<ConfigV1>::create(&name, v1(4)).expect("create");
    let ino = shmstore_tests::shm_path(&name)
        .metadata()
        .expect("stat")
        .ino();
    let dir = shmstore_tests::TempDir::new("red-planted");
    let victim = dir.join("victim");
    std::fs::write(&victim, b"precious").expect("victim");
    let planted = shmstore_tests::shm_path(&format!(".{name}.shmstore-migrating-{ino}"));
    std::os::unix::fs::symlink(&victim, &planted).expect("plant");
    let new = Shm::<ConfigV1Plus>::open(&name);
    let _ = std::fs::remove_file(&planted);
    let new = new.expect("migrates");
    assert_eq!(std::fs::read(&victim).expect("victim"), b"precious");
    assert!(
        planted.symlink_metadata().is_err(),
        "the temporary name is gone"
    );
    new.lock().expect("lock").retries = 1;
    assert_eq!(old.read().workers, 4);
    assert!(old.is_projected(), "the old handle followed");
}

/// A forged `MOVED` word does not stop a new release from migrating the region (before the
/// fix, every look said "another writer migrated it first" and the open gave up with
/// `Timeout`), and the old handles follow the migration for real.
#[test]
fn a_forged_moved_word_does_not_stop_a_migration() {
    let (name, _cleanup) = region("red-forged-migrate");
    let old = Shm::<ConfigV1>::create(&name, v1(4)).expect("create");
    forge_lifecycle(&name, 2);
    let new = Shm::<ConfigV1Plus>::open(&name).expect("migrates");
    new.lock().expect("lock").retries = 2;
    old.lock().expect("the old handle follows").workers = 6;
    let seen = new.read();
    assert_eq!((seen.workers, seen.retries), (6, 2));
}

/// The done-when property with real processes: writers of release 1 count in a loop while
/// writers of two newer releases open the region (migrating it, once or twice) and count too;
/// every increment of every process is in the final value, and the test's own old handle
/// followed.
#[test]
fn no_commit_is_lost_across_migrations_by_writers_in_several_processes() {
    const EACH: u32 = 300;
    let (name, _cleanup) = region("red-count");
    let old = Shm::<ConfigV1>::create(
        &name,
        ConfigV1 {
            workers: 0,
            ..v1(0)
        },
    )
    .expect("create");
    let releases = ["v1", "v1", "v1-plus", "v2"];
    let mut writers: Vec<_> = releases
        .iter()
        .map(|release| shmstore_tests::helper!("config-count", name, release, EACH))
        .collect();
    for writer in &mut writers {
        writer.expect("ready");
    }
    for writer in &mut writers {
        writer.send("go");
    }
    for writer in &mut writers {
        writer.expect("done");
    }
    assert_eq!(old.read().workers, EACH * releases.len() as u32);
    assert!(old.is_projected(), "the old handle followed the migration");
    old.lock().expect("lock").workers += 1;
    assert_eq!(
        Shm::<ConfigV2>::open_reader(&name)
            .expect("reader")
            .read()
            .workers,
        EACH * releases.len() as u32 + 1
    );
}

/// As above, but the peer also marks the old region moved (as a migrator would): the old
/// handle's follow finds a region of an unrelated type, so there is nothing to follow. Reads
/// keep the last value, waits end with `Removed` (the region is no longer at its location),
/// `lock` keeps working on the old region as for a removed one, `is_removed` says the name
/// refers elsewhere, and nothing is written into the unrelated region.
#[test]
fn a_forged_move_to_an_unrelated_region_is_refused_never_written_through() {
    let (name, _cleanup) = region("red-forged-unrelated");
    let (other, _other_cleanup) = region("red-forged-unrelated-other");
    let old = Shm::<ConfigV1>::create(&name, v1(4)).expect("create");
    let unrelated = Shm::<u64>::create(&other, 42).expect("other");
    forge_lifecycle(&name, 2);
    std::fs::rename(
        shmstore_tests::shm_path(&other),
        shmstore_tests::shm_path(&name),
    )
    .expect("rename over");
    let old = finishes("operations after a forged move", move || {
        assert_eq!(old.read().workers, 4, "the last value of the old region");
        let waited = old.wait_for_change(old.version(), Some(Duration::from_millis(10)));
        assert!(matches!(waited, Err(Error::Removed { .. })), "{waited:?}");
        old.lock().expect("the old region's lock").workers = 5;
        assert_eq!(old.read().workers, 5, "written into the old region");
        assert!(
            old.is_removed().expect("is_removed answers"),
            "the name refers elsewhere"
        );
        old
    });
    assert_eq!(unrelated.read(), 42, "nothing written into it");
    drop(old);
}

/// `Store` handles: a release-2 `Store::open` migrates a region a release-1 `Store` made, the
/// old handles follow, `list` shows one region, and `remove_all` removes the migrated one
/// (leaving nothing under the prefix).
#[test]
fn store_handles_follow_a_migration_and_remove_all_removes_the_migrated_region() {
    let prefix = shmstore_tests::unique_name("red-store");
    let store = shmstore::Store::new(&prefix).expect("store");
    let name = store.name_of("config").expect("name");
    let _cleanup = Place::adopt_name(&name);
    let old = store.create("config", v1(4)).expect("create");
    let reader = store.open_reader::<ConfigV1>("config").expect("reader");
    let new = store.open::<ConfigV1Plus>("config").expect("migrates");
    new.lock().expect("lock").retries = 4;
    old.lock().expect("follows").workers = 5;
    assert_eq!(reader.read().workers, 5);
    assert_eq!(new.read().retries, 4);
    assert_eq!(store.list().expect("list").len(), 1);
    assert_eq!(store.remove_all().expect("remove_all"), 1);
    assert!(!shmstore_tests::exists(&name));
}

/// A reader of another uid (65534) follows a migration made by the owner (root): the new
/// object keeps the old one's mode and owner, so the reader may open it, and it does.
#[test]
fn a_reader_of_another_uid_follows_a_migration() {
    use std::os::unix::fs::MetadataExt;
    if !shmstore_tests::is_root() {
        eprintln!("skipped: needs root to run a reader as another uid");
        return;
    }
    let (name, _cleanup) = region("red-other-uid");
    let old = Shm::<ConfigV1>::options()
        .mode(0o644)
        .create(&name, v1(4))
        .expect("create");
    let before = shmstore_tests::shm_path(&name).metadata().expect("stat");
    let mut reader = shmstore_tests::helper!("setuid-config-follower", name);
    reader.expect("ready");
    reader.send("read");
    reader.expect("workers 4 projected false");
    let new = Shm::<ConfigV1Plus>::open(&name).expect("migrates");
    new.lock().expect("lock").workers = 9;
    let after = shmstore_tests::shm_path(&name).metadata().expect("stat");
    assert_ne!(before.ino(), after.ino(), "migrated");
    assert_eq!(
        (after.mode() & 0o7777, after.uid(), after.gid()),
        (0o644, before.uid(), before.gid())
    );
    reader.send("read");
    reader.expect("workers 9 projected true");
    drop(old);
}

/// Anyone may create entries in `/dev/shm`, and the temporary name a migrator uses is
/// predictable (`.NAME.shmstore-migrating-INO`): a directory planted there, which the
/// migrator cannot unlink (nor can it, in the sticky `/dev/shm`, remove another user's file),
/// must not stop the migration for good.
#[test]
fn a_directory_planted_at_the_temporary_name_does_not_block_the_migration() {
    use std::os::unix::fs::MetadataExt;
    let (name, _cleanup) = region("red-planted-dir");
    let old = Shm::<ConfigV1>::create(&name, v1(4)).expect("create");
    let ino = shmstore_tests::shm_path(&name)
        .metadata()
        .expect("stat")
        .ino();
    let planted = shmstore_tests::shm_path(&format!(".{name}.shmstore-migrating-{ino}"));
    std::fs::create_dir(&planted).expect("plant");
    let new = Shm::<ConfigV1Plus>::open(&name);
    let _ = std::fs::remove_dir(&planted);
    let new = new.expect("migrates all the same");
    new.lock().expect("lock").retries = 1;
    old.lock().expect("follows").workers = 3;
    assert_eq!((new.read().workers, new.read().retries), (3, 1));
}

/// An unlucky operator: the region is migrated, then removed (`shmstore rm`) before an old
/// waiter followed it. The waiter's wait ends with `Removed`, as for any removal, not with
/// the error of opening a name that no longer exists.
#[test]
fn a_wait_on_a_region_migrated_then_removed_ends_with_removed() {
    let place = Place::new(Backend::Posix, "red-migrated-removed");
    let old = Shm::<ConfigV1>::create(place.location().clone(), v1(4)).expect("create");
    let reader = Shm::<ConfigV1>::open_reader(place.location().clone()).expect("reader");
    let since = reader.version();
    let new = Shm::<ConfigV1Plus>::open(place.location().clone()).expect("migrates");
    shmstore::unlink(place.location().clone()).expect("rm");
    for waited in [
        reader.wait_for_change(since, Some(Duration::from_secs(5))),
        old.wait_for_change(since, Some(Duration::from_secs(5))),
    ] {
        assert!(matches!(waited, Err(Error::Removed { .. })), "{waited:?}");
    }
    assert!(reader.is_removed().expect("look"));
    assert_eq!(reader.read().workers, 4, "the last value");
    drop(new);
}
