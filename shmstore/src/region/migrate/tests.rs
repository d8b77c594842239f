//! The migration, step by step, with real processes where a death is the point: a forked
//! child migrates and ends its process (`_exit`, as a killed process would) at each step of
//! [`Step`]; the parent then checks what the name holds, what the old handle learns, what its
//! waiters see, and that nothing is left in the directory.
//!
//! - a migration, POSIX and file: `a_migration_moves_the_region_and_keeps_every_write`
//! - a death at each step: `a_migrator_killed_at_any_step_leaves_one_complete_region`
//! - queues and System V refused: `queues_and_system_v_segments_are_not_migrated`
//! - a full tmpfs: `a_full_tmpfs_fails_the_migration_and_leaves_the_region_current`
//! - another user: `only_the_owner_migrates_a_region`
//! - a stray lifecycle word: `a_stray_lifecycle_word_is_checked_never_trusted`,
//!   `a_stray_moved_word_with_the_name_still_the_regions_is_no_move`
//! - the `Editor` after a migration: `an_editor_of_a_moved_region_writes_nothing`
//! - in place, poisoned: `an_in_place_region_migrates_in_place_with_its_poison`
//! - a removed name; the public wait:
//!   `a_removed_region_is_not_migrated_and_a_moved_one_ends_public_waits`
//! - a temporary name after a handle recorded the move:
//!   `a_temporary_name_is_removed_after_a_handle_recorded_the_move`
//! - the reset after a reboot: `reboot`'s `the_reset_settles_a_migration_the_reboot_interrupted`

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::format::{Descriptor, StoredType, LIFECYCLE_MIGRATING};
use crate::layout::{ShmType, TypeLayout};
use crate::lock::Wait;
use crate::region::{scratch_spec, unlink, QueueSpec};
use crate::sys::child::{fork_child, wait_child, Ended};
use crate::sys::object::Access;
use crate::wait::Unchanged;

/// The region's type before the migration, and the wider one after.
type Old = [u64; 32];
type Wide = [u64; 64];
/// Every byte of the value committed before the migration.
const COMMITTED: u8 = 0x5a;
/// What `carry` puts in the bytes the old type lacks (a fresh region is zeros).
const EXTRA: u8 = 0xcc;
/// Generous: only a broken path gets near it.
const HANG: Duration = Duration::from_secs(20);

/// Copies the old value to the start of the new one and marks the rest.
fn carry(old: &[u8], new: &mut [u8]) {
    new[..old.len()].copy_from_slice(old);
    new[old.len()..].fill(EXTRA);
}

/// The spec of a migration to `stored`'s type: `layout` is `u8`'s, so that a region of the
/// wider type proves that `stored` shaped it.
fn target(stored: &'static TypeLayout) -> RegionSpec {
    let (_, mut spec) = scratch_spec("unused", &<u8 as ShmType>::LAYOUT, false);
    spec.stored = Some(Arc::new(StoredType {
        descriptor: Descriptor::of(stored),
        size: stored.size(),
        align: stored.align(),
        fingerprint: stored.fingerprint(),
    }));
    spec
}

/// A test's location, removed on drop with any temporary name beside it (also when the test
/// fails), and its directory if the test made one.
struct Place {
    location: Location,
    dir: PathBuf,
    file_name: String,
    made_dir: bool,
}

impl Place {
    fn posix(test: &str) -> Place {
        let (location, _) = scratch_spec(&format!("migrate-{test}"), &Old::LAYOUT, false);
        let file_name = location.to_string();
        Place {
            location,
            dir: PathBuf::from("/dev/shm"),
            file_name,
            made_dir: false,
        }
    }

    fn file(test: &str) -> Place {
        let dir = std::env::temp_dir().join(format!(
            "shmstore-unit-migrate-{test}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Place {
            location: Location::File(dir.join("region.shm")),
            dir,
            file_name: "region.shm".into(),
            made_dir: true,
        }
    }

    /// The spec of the old region, mode `mode`.
    fn spec(&self, layout: &'static TypeLayout, mode: u32) -> RegionSpec {
        let (_, mut spec) = scratch_spec("unused", layout, false);
        spec.mode = mode;
        spec
    }

    /// The entries beside the region that a migrator of it may make (`.NAME.…`).
    fn leftovers(&self) -> Vec<String> {
        list_hidden(&self.dir, &self.file_name)
    }
}

fn list_hidden(dir: &Path, file_name: &str) -> Vec<String> {
    let prefix = format!(".{file_name}.");
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&prefix))
        .collect()
}

impl Drop for Place {
    fn drop(&mut self) {
        let _ = unlink(&self.location);
        for name in self.leftovers() {
            let _ = std::fs::remove_file(self.dir.join(name));
        }
        if self.made_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Commits `byte` over the whole value, as a writer's guard does.
fn commit(region: &Region, byte: u8) {
    let size = region.info().layout.payload_size;
    region.acquire(Wait::Forever).expect("lock");
    region.begin_write();
    // SAFETY: this thread holds the lock and opened the latch: the only writer of the
    // working copy, `size` bytes inside the mapping.
    unsafe { std::ptr::write_bytes(region.working_copy(), byte, size) };
    // SAFETY: acquired above by this thread; the region's own payload size.
    unsafe { region.release(true, size) };
}

/// Both copies of the value (one in place).
fn copies(region: &Region) -> Vec<Vec<u8>> {
    let layout = &region.info().layout;
    let mut copies = vec![region.payload().unwrap().load_bytes()];
    if let Some(offset) = layout.second_copy_offset {
        let second = region.bytes().range(offset, layout.payload_size).unwrap();
        copies.push(second.load_bytes());
    }
    copies
}

/// The wide value a migration of a committed old value carries.
fn carried() -> Vec<u8> {
    let mut value = vec![COMMITTED; Old::LAYOUT.size()];
    value.resize(Wide::LAYOUT.size(), EXTRA);
    value
}

/// Locks, migrates, releases without a write.
fn migrate_now(region: &Region, target: &RegionSpec) -> Result<()> {
    region.acquire(Wait::Forever).expect("lock");
    // SAFETY: locked just above through `region`; nothing written.
    let migrated = unsafe { region.migrate(target, &carry) };
    // SAFETY: as above.
    unsafe { region.release(false, region.info().layout.payload_size) };
    migrated
}

/// A fresh old region at `place` (mode `mode`), `COMMITTED` in it by one commit.
fn old_region(place: &Place, mode: u32) -> Region {
    let spec = place.spec(&Old::LAYOUT, mode);
    let region = Region::create(&place.location, &spec, &mut |value| value.fill(0)).unwrap();
    commit(&region, COMMITTED);
    region
}

/// A migration replaces the region under its name (POSIX and file): the new region holds the
/// committed value carried into the wider type in both copies, continues the version, has
/// the old mode and owner; the old handle and a read-only one of it see `has_moved`, and a
/// waiter on it ends with `Moved`; nothing is left beside the name.
#[test]
fn a_migration_moves_the_region_and_keeps_every_write() {
    for place in [Place::posix("moves"), Place::file("moves")] {
        let old = old_region(&place, 0o640);
        let reader = Region::open(
            &place.location,
            &place.spec(&Old::LAYOUT, 0),
            Access::ReadOnly,
        )
        .unwrap();
        let since = old.published_version();
        assert!(!old.has_moved() && !reader.has_moved());
        std::thread::scope(|scope| {
            let waiting = scope.spawn(|| old.wait_for_change(since, Some(HANG)));
            migrate_now(&old, &target(&Wide::LAYOUT)).expect("migrate");
            assert_eq!(waiting.join().unwrap(), Err(Unchanged::Moved), "{place:?}");
        });
        assert!(old.has_moved() && reader.has_moved(), "{place:?}");
        assert_eq!(old.lifecycle(), LIFECYCLE_MOVED);
        let new = Region::open(
            &place.location,
            &place.spec(&Wide::LAYOUT, 0),
            Access::ReadWrite,
        )
        .expect("the name opens as the wider type");
        assert_eq!(copies(&new), vec![carried(), carried()], "{place:?}");
        assert_eq!(new.published_version(), since, "versions continue");
        assert!(!new.has_moved());
        assert_eq!(new.info().flags, old.info().flags);
        let (was, now) = (old.object, new.object);
        assert_eq!((now.mode, now.uid), (0o640, was.uid), "{place:?}");
        assert!(place.leftovers().is_empty(), "{:?}", place.leftovers());
        commit(&new, 1);
        assert_eq!(new.published_version(), since + 1);
    }
}

impl std::fmt::Debug for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.location)
    }
}

/// Every step a migrator can die after, in order.
const STEPS: [Step; 7] = [
    Step::BeforeBuild,
    Step::AfterBuild,
    Step::AfterMigrating,
    Step::AfterTemporaryName,
    Step::AfterRename,
    Step::AfterMoved,
    Step::BeforeUnlock,
];

/// A forked child opens the region, locks it and migrates it, ending its process at `step`
/// (holding the lock, as a killed migrator does). Its exit status: 0 when it ended there.
fn die_migrating_at(place: &Place, step: Step) {
    let spec = place.spec(&Old::LAYOUT, 0);
    let target = target(&Wide::LAYOUT);
    // Initialised here, not in the child: another thread of this process may be initialising
    // it at the moment of the fork.
    let _ = process::boot_id();
    let migrator = || {
        CRASH_AT.store(step as u32, SeqCst);
        let Ok(region) = Region::open(&place.location, &spec, Access::ReadWrite) else {
            return 2;
        };
        if region.acquire(Wait::Forever).is_err() {
            return 3;
        }
        // SAFETY: locked just above through `region`; nothing written.
        match unsafe { region.migrate(&target, &carry) } {
            Ok(()) => 4,
            Err(_) => 5,
        }
    };
    // SAFETY: the child allocates, makes system calls and leaves with `_exit`: it takes no
    // lock that another thread of this process may hold (no printing, no `OnceLock` left to
    // initialise).
    let child = unsafe { fork_child(60, migrator) }.expect("fork");
    assert_eq!(
        wait_child(child).unwrap(),
        Ended::Exited(0),
        "{step:?}: the child did not stop there (2 open, 3 lock, 4 no stop, 5 error)"
    );
}

/// Kills the migrator after each step in turn. Whatever the step, the name opens and holds
/// the committed value: in the old type before the rename, carried into the new one after
/// (with the version continued). A later locker of the old handle (the lock answers
/// `EOWNERDEAD`) sees `has_moved()` exactly when the rename happened, and leaves nothing
/// beside the name (a temporary name the migrator left is removed). A waiter on the old
/// handle sees `Moved` after the rename, and before it is woken by the next commit there.
#[test]
fn a_migrator_killed_at_any_step_leaves_one_complete_region() {
    for step in STEPS {
        let place = Place::posix(&format!("crash-{}", step as u32));
        let old = old_region(&place, 0o600);
        let since = old.published_version();
        let renamed = step >= Step::AfterRename;
        std::thread::scope(|scope| {
            let waiting = scope.spawn(|| old.wait_for_change(since, Some(HANG)));
            die_migrating_at(&place, step);

            // What the dead migrator left, before anyone locks.
            let expected_lifecycle: &[u32] = match step {
                Step::BeforeBuild | Step::AfterBuild => &[LIFECYCLE_CURRENT],
                Step::AfterMigrating | Step::AfterTemporaryName => &[LIFECYCLE_MIGRATING],
                // The waiter, a writable handle, records the move if it looked already.
                Step::AfterRename => &[LIFECYCLE_MIGRATING, LIFECYCLE_MOVED],
                Step::AfterMoved | Step::BeforeUnlock => &[LIFECYCLE_MOVED],
            };
            assert!(
                expected_lifecycle.contains(&old.lifecycle()),
                "{step:?}: {}",
                old.lifecycle()
            );
            assert_eq!(
                place.leftovers().len(),
                usize::from(step == Step::AfterTemporaryName),
                "{step:?}: {:?}",
                place.leftovers()
            );
            if renamed {
                let new = Region::open(
                    &place.location,
                    &place.spec(&Wide::LAYOUT, 0),
                    Access::ReadOnly,
                )
                .unwrap_or_else(|e| panic!("{step:?}: the new region does not open: {e}"));
                assert_eq!(copies(&new), vec![carried(), carried()], "{step:?}");
                assert_eq!(new.published_version(), since, "{step:?}");
            } else {
                let kept = Region::open(
                    &place.location,
                    &place.spec(&Old::LAYOUT, 0),
                    Access::ReadOnly,
                )
                .unwrap_or_else(|e| panic!("{step:?}: the old region does not open: {e}"));
                assert!(kept.object.same_object(&old.object), "{step:?}");
                let committed = vec![COMMITTED; Old::LAYOUT.size()];
                assert_eq!(
                    copies(&kept),
                    vec![committed.clone(), committed],
                    "{step:?}"
                );
            }
            // A handle that looks, before anyone locks, learns where the value is.
            assert_eq!(old.has_moved(), renamed, "{step:?}");

            // The next locker of the old region settles the lifecycle and cleans up.
            old.acquire(Wait::Forever)
                .expect("lock after the migrator died");
            assert_eq!(old.has_moved(), renamed, "{step:?}");
            let settled = if renamed {
                LIFECYCLE_MOVED
            } else {
                LIFECYCLE_CURRENT
            };
            assert_eq!(old.lifecycle(), settled, "{step:?}");
            // SAFETY: locked just above; nothing written.
            unsafe { old.release(false, old.info().layout.payload_size) };
            assert!(place.leftovers().is_empty(), "{step:?}");

            if renamed {
                assert_eq!(waiting.join().unwrap(), Err(Unchanged::Moved), "{step:?}");
            } else {
                commit(&old, 0x77);
                assert_eq!(waiting.join().unwrap(), Ok(since + 1), "{step:?}");
            }
        });
    }
}

/// A migrator died after linking its temporary name, and the name was then removed (by
/// `unlink`, which takes no lock): a writable handle that looks records the move
/// (`LIFECYCLE_MOVED`, since the name no longer refers to the region), and the next locker
/// still removes the temporary name.
#[test]
fn a_temporary_name_is_removed_after_a_handle_recorded_the_move() {
    let place = Place::posix("recorded");
    let old = old_region(&place, 0o600);
    die_migrating_at(&place, Step::AfterTemporaryName);
    unlink(&place.location).unwrap();
    assert!(old.has_moved());
    assert_eq!(old.lifecycle(), LIFECYCLE_MOVED);
    assert_eq!(place.leftovers().len(), 1);
    old.acquire(Wait::Forever)
        .expect("lock after the migrator died");
    // SAFETY: locked just above; nothing written.
    unsafe { old.release(false, old.info().layout.payload_size) };
    assert!(place.leftovers().is_empty(), "{:?}", place.leftovers());
}

/// A queue (its element type cannot change) and a System V segment (its key cannot move to
/// another segment in one step) are refused with `NotMigratable`, whose message says why and
/// what to do, and stay current.
#[test]
fn queues_and_system_v_segments_are_not_migrated() {
    let place = Place::posix("queue");
    let mut spec = place.spec(&<u64 as ShmType>::LAYOUT, 0o600);
    spec.queue = Some(QueueSpec {
        mode: crate::format::QUEUE_MPMC,
        capacity: 4,
    });
    let queue = Region::create(&place.location, &spec, &mut |bytes| bytes.fill(0)).unwrap();
    let refused = migrate_now(&queue, &target(&Wide::LAYOUT)).unwrap_err();
    assert!(
        matches!(refused, Error::NotMigratable { .. })
            && refused.to_string().contains("element type cannot change")
            && refused.to_string().contains("create it again"),
        "{refused}"
    );
    assert_eq!(queue.lifecycle(), LIFECYCLE_CURRENT);

    let key = 0x6d00_0000 | ((std::process::id() as i32 & 0xfffff) << 4) | 1;
    let segment = Location::SysV(key);
    let spec = place.spec(&Old::LAYOUT, 0o600);
    let region = Region::create(&segment, &spec, &mut |bytes| bytes.fill(0))
        .unwrap_or_else(|e| panic!("{segment}: {e}"));
    let refused = migrate_now(&region, &target(&Wide::LAYOUT));
    let _ = unlink(&segment);
    let refused = refused.unwrap_err();
    assert!(
        matches!(refused, Error::NotMigratable { .. })
            && refused.to_string().contains("System V")
            && refused.to_string().contains("stop every process"),
        "{refused}"
    );
    assert_eq!(region.lifecycle(), LIFECYCLE_CURRENT);
}

/// An in-place region migrates in place, its poison (a writer died mid-write) carried over:
/// the value is no more trustworthy in the new region than in the old one.
#[test]
fn an_in_place_region_migrates_in_place_with_its_poison() {
    let place = Place::posix("in-place");
    let (_, mut spec) = scratch_spec("unused", &Old::LAYOUT, true);
    spec.notify_readers = true;
    let old = Region::create(&place.location, &spec, &mut |value| value.fill(COMMITTED)).unwrap();
    old.header().poisoned.store(1, SeqCst);
    migrate_now(&old, &target(&Wide::LAYOUT)).unwrap();
    let new = Region::open(
        &place.location,
        &place.spec(&Wide::LAYOUT, 0),
        Access::ReadOnly,
    )
    .unwrap();
    assert!(new.in_place() && new.poisoned());
    assert_eq!(new.info().flags, old.info().flags, "notify_readers kept");
    assert_eq!(copies(&new), vec![carried()]);
}

/// A region whose name was removed (or given to another region) is not migrated: `Removed`,
/// nothing renamed over the name, nothing left beside it, the region current. A waiter that
/// does not follow migrations (the public `wait_for_change`) gets `Removed` for a moved
/// region too.
#[test]
fn a_removed_region_is_not_migrated_and_a_moved_one_ends_public_waits() {
    let place = Place::posix("removed");
    let old = old_region(&place, 0o600);
    unlink(&place.location).unwrap();
    let refused = migrate_now(&old, &target(&Wide::LAYOUT)).unwrap_err();
    assert!(matches!(refused, Error::Removed { .. }), "{refused}");
    assert_eq!(old.lifecycle(), LIFECYCLE_CURRENT);
    assert!(place.leftovers().is_empty());
    assert!(Region::open(
        &place.location,
        &place.spec(&Old::LAYOUT, 0),
        Access::ReadOnly
    )
    .is_err());

    let place = Place::posix("public-wait");
    let old = old_region(&place, 0o600);
    migrate_now(&old, &target(&Wide::LAYOUT)).unwrap();
    let since = old.published_version();
    let ended = crate::wait::wait_for_change(&old, since, Some(HANG)).unwrap_err();
    assert!(matches!(ended, Error::Removed { .. }), "{ended}");
}

/// The `Editor` (`shmstore set`) of a region that a migration replaced since it opened it
/// refuses with `Removed` and writes nothing, in the old region or the new one: its byte
/// writes were parsed by the old descriptor.
#[test]
fn an_editor_of_a_moved_region_writes_nothing() {
    let place = Place::posix("editor");
    let old = old_region(&place, 0o600);
    let editor = crate::inspect::Editor::open(place.location.clone()).unwrap();
    migrate_now(&old, &target(&Wide::LAYOUT)).unwrap();
    let writes = [crate::values::ByteWrite {
        offset: 0,
        bytes: vec![1; 8],
    }];
    let refused = editor.commit(&writes).unwrap_err();
    assert!(matches!(refused, Error::Removed { .. }), "{refused}");
    let committed = vec![COMMITTED; Old::LAYOUT.size()];
    assert_eq!(copies(&old), vec![committed.clone(), committed]);
    let new = Region::open(
        &place.location,
        &place.spec(&Wide::LAYOUT, 0),
        Access::ReadOnly,
    )
    .unwrap();
    assert_eq!(copies(&new), vec![carried(), carried()]);
}

/// A hostile peer's lifecycle word (no state of the protocol) is never trusted: the location
/// decides, nothing panics, and `MIGRATING` with the name still the region's is not a move.
#[test]
fn a_stray_lifecycle_word_is_checked_never_trusted() {
    let place = Place::posix("stray");
    let region = old_region(&place, 0o600);
    for word in [LIFECYCLE_MIGRATING, 7, u32::MAX] {
        region.header().lifecycle.store(word, SeqCst);
        assert!(!region.has_moved(), "{word}");
    }
    unlink(&place.location).unwrap();
    assert!(region.has_moved(), "a stray word and a removed name");
    region.header().lifecycle.store(LIFECYCLE_MIGRATING, SeqCst);
    assert!(region.has_moved());
    assert_eq!(
        region.lifecycle(),
        LIFECYCLE_MOVED,
        "a writable handle records it"
    );
}

/// A stray `MOVED` on a region its name still refers to is no move either: a handle that
/// believed it would reopen the name, find this region again, and follow it without end.
#[test]
fn a_stray_moved_word_with_the_name_still_the_regions_is_no_move() {
    let place = Place::posix("stray-moved");
    let region = old_region(&place, 0o600);
    region.header().lifecycle.store(LIFECYCLE_MOVED, SeqCst);
    assert!(!region.has_moved());
    unlink(&place.location).unwrap();
    assert!(region.has_moved(), "moved, and the name removed");
}

// ---- in another process: a full tmpfs, another user ----

/// The environment variable that makes [`child_role`] act: a role and its arguments.
const ROLE: &str = "SHMSTORE_UNIT_MIGRATE_ROLE";

/// Runs this test binary again as `prefix` (a program and its arguments) or as `uid`, with
/// [`child_role`] performing `role`; returns the lines it printed after `child-result: `.
fn child(prefix: &[&str], uid: Option<u32>, role: &str) -> Vec<String> {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut command = match prefix.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(&exe);
            command
        }
        None => Command::new(&exe),
    };
    if let Some(uid) = uid {
        use std::os::unix::process::CommandExt;
        command.uid(uid).gid(uid);
    }
    let output = command
        .args([
            "--exact",
            "region::migrate::tests::child_role",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, role)
        .output()
        .expect("start the child");
    assert!(
        output.status.success(),
        "the child failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_once("child-result: "))
        .map(|(_, result)| result.to_string())
        .collect()
}

/// Not a test of its own: the body of the children [`child`] starts. Does nothing unless
/// [`ROLE`] is set.
#[test]
fn child_role() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let words: Vec<&str> = role.split(' ').collect();
    match words.as_slice() {
        ["full"] => full_tmpfs(),
        ["other-user", name] => {
            let location = Location::Named((*name).to_string());
            let mut spec = scratch_spec("unused", &Old::LAYOUT, false).1;
            spec.allow_other_owner = true;
            let region = Region::open(&location, &spec, Access::ReadWrite).unwrap();
            match migrate_now(&region, &target(&Wide::LAYOUT)) {
                Ok(()) => println!("child-result: migrated"),
                Err(e) => println!("child-result: {}", describe(&e)),
            }
        }
        other => panic!("unknown role {other:?}"),
    }
}

/// An error as `Variant: message`.
fn describe(e: &Error) -> String {
    let variant = format!("{e:?}");
    let variant = variant.split(' ').next().unwrap_or_default().to_string();
    format!("{variant}: {e}")
}

/// A big old value (two copies fill half of a 1 MiB tmpfs) and a wider one that does not fit
/// beside it.
type BigOld = [u64; 1 << 15];
type BigWide = [u64; 1 << 16];

/// In a private mount namespace: a 1 MiB tmpfs on `/dev/shm`, a region that fits, and a
/// migration to a type that does not: prints the error, the old region's lifecycle, whether
/// its value is intact, and what `/dev/shm` holds.
fn full_tmpfs() {
    let mounted = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=1m",
            "shmstore-unit-test",
            "/dev/shm",
        ])
        .status()
        .expect("mount");
    assert!(mounted.success(), "mount: {mounted}");
    let (location, spec) = scratch_spec("full", &BigOld::LAYOUT, false);
    let region = Region::create(&location, &spec, &mut |value| value.fill(0)).unwrap();
    commit(&region, COMMITTED);
    let version = region.published_version();
    match migrate_now(&region, &target(&BigWide::LAYOUT)) {
        Ok(()) => println!("child-result: migrated"),
        Err(e) => println!("child-result: {}", describe(&e)),
    }
    let intact = copies(&region)
        .iter()
        .all(|copy| copy.iter().all(|&b| b == COMMITTED));
    println!(
        "child-result: lifecycle {} moved {} intact {intact} version {}",
        region.lifecycle(),
        region.has_moved(),
        region.published_version() == version
    );
    let mut left: Vec<String> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    println!("child-result: left {}", left.join(" "));
}

/// A full tmpfs fails the migration with `Error::Io` (`fallocate`, `ENOSPC`) and changes
/// nothing: the old region stays current with its value, and no new object is left.
#[test]
fn a_full_tmpfs_fails_the_migration_and_leaves_the_region_current() {
    let lines = child(
        &["unshare", "--mount", "--propagation", "private"],
        None,
        "full",
    );
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].starts_with("Io: fallocate") && lines[0].contains("No space left on device"),
        "{lines:?}"
    );
    assert_eq!(
        lines[1], "lifecycle 0 moved false intact true version true",
        "{lines:?}"
    );
    // The child's own region (named after the child's pid), and nothing else.
    assert!(
        lines[2].starts_with("left unit-full-") && lines[2].split(' ').count() == 2,
        "{lines:?}"
    );
}

/// Only the owner (or root) migrates a region: another user with write access to it gets
/// `PermissionDenied` saying so, and the region stays current.
#[test]
fn only_the_owner_migrates_a_region() {
    if process::effective_uid() != 0 {
        eprintln!("skipped: running as another user needs root");
        return;
    }
    let place = Place::posix("other-user");
    let old = old_region(&place, 0o666);
    let lines = child(&[], Some(65534), &format!("other-user {}", place.file_name));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("PermissionDenied:")
            && lines[0].contains("only the region's owner may migrate it"),
        "{lines:?}"
    );
    assert_eq!(old.lifecycle(), LIFECYCLE_CURRENT);
    assert!(!old.has_moved());
    assert!(place.leftovers().is_empty());
}
