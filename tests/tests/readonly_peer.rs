//! A process with read permission only cannot deny service (issue 13, point 9).
//!
//! The hostile peer is `shm-helper readonly-lock`: dropped to uid 65534, it opens the object
//! read-only and takes everything the kernel lets a reader take there: an open-file-description
//! read lock over every byte (from 0 to the end of any file) and `flock(LOCK_SH)` or
//! `flock(LOCK_EX)`. Beside it, root (the owner, with write access) must still claim SPSC
//! roles, reset a file region after a reboot and repair (or report) an abandoned region; where
//! the kernel lets the reader's lock stand in the way (taking over the role of a holder that
//! died), the error names the cause at once.

use std::path::Path;
use std::time::Duration;

use shmstore::{Error, QueueMode, Shm};
use shmstore_tests::{
    assert_mentions, flip_boot_id, helper, is_root, lock_as_reader, release_reader, Backend,
    Counter, Helper, Msg, MsgQueue, Place, BOOT_ID,
};

/// The reader's two `flock` kinds.
const FLOCKS: [&str; 2] = ["sh", "ex"];

/// Long enough for any claim, reset or repair on a loaded machine; the old code waited this
/// long and then gave up.
const OPEN_TIMEOUT: Duration = Duration::from_secs(3);

/// An SPSC queue that uid 65534 may read (mode 0644).
fn readable_spsc(place: &Place) -> shmstore::ShmQueue<Msg, { shmstore_tests::QUEUE_CAPACITY }> {
    MsgQueue::options()
        .queue_mode(QueueMode::Spsc)
        .mode(0o644)
        .create(place.location())
        .unwrap()
}

fn open_queue(place: &Place) -> shmstore::ShmQueue<Msg, { shmstore_tests::QUEUE_CAPACITY }> {
    MsgQueue::open(place.location()).unwrap()
}

/// Read locks on the role bytes (and `flock`) do not keep a writer from a free role; the roles
/// still exclude a second live producer or consumer.
fn a_read_only_lock_cannot_keep_writers_from_free_spsc_roles(backend: Backend) {
    if !is_root() {
        eprintln!("skipped: setuid needs root");
        return;
    }
    for flock in FLOCKS {
        let place = Place::new(backend, "ro-roles");
        let _queue = readable_spsc(&place);
        let reader = lock_as_reader!(&place, flock);

        let producer = open_queue(&place);
        producer
            .push(Msg::new(1, 0))
            .unwrap_or_else(|e| panic!("{backend:?} flock {flock}: producer: {e}"));
        let consumer = open_queue(&place);
        assert_eq!(
            consumer
                .try_pop()
                .unwrap_or_else(|e| panic!("{backend:?} flock {flock}: consumer: {e}")),
            Some(Msg::new(1, 0))
        );
        let second = open_queue(&place);
        assert!(
            matches!(second.push(Msg::new(2, 0)), Err(Error::RoleTaken { .. })),
            "{backend:?}: a second live producer"
        );
        assert!(matches!(second.try_pop(), Err(Error::RoleTaken { .. })));
        assert_eq!(producer.has_other_producer().unwrap(), Some(false));
        assert_eq!(second.has_other_producer().unwrap(), Some(true));

        // Handed back on drop: free again, reader or not.
        drop(producer);
        second.push(Msg::new(2, 1)).unwrap();
        release_reader(reader);
    }
}

/// After a role holder is killed, a reader's read lock on the role's byte keeps the role from
/// being taken over (the kernel does not say whose read lock it is): the claim says so at
/// once, naming the byte, and succeeds as soon as the reader lets go.
fn a_dead_holders_role_held_up_by_a_read_only_lock_is_reported_by_cause(backend: Backend) {
    if !is_root() {
        eprintln!("skipped: setuid needs root");
        return;
    }
    for (role, byte) in [("producer", "byte 0"), ("consumer", "byte 1")] {
        let place = Place::new(backend, "ro-dead-role");
        let _queue = readable_spsc(&place);
        let reader = lock_as_reader!(&place, "sh");
        let mut holder = helper!("queue-hold-role", place, role);
        holder.expect("holding");
        holder.kill();

        let taker = open_queue(&place);
        let claimed = if role == "producer" {
            taker.push(Msg::new(2, 0)).map(drop)
        } else {
            taker.try_pop().map(drop)
        };
        let e = claimed.expect_err("the role was taken over beside the reader's lock");
        assert!(
            matches!(e, Error::LockedByReader { .. }),
            "{backend:?} {role}: {e:?}"
        );
        assert_mentions(&e, &[byte, "read access", "/proc/locks", role]);

        release_reader(reader);
        let claimed = if role == "producer" {
            taker.push(Msg::new(2, 1)).map(drop)
        } else {
            taker.try_pop().map(drop)
        };
        claimed.unwrap_or_else(|e| panic!("{backend:?} {role} after the reader left: {e}"));
    }
}

/// Bug: any lock on a role byte, a reader's too, counted as a live holder.
///
/// `has_other_consumer` agrees with taking the role: a consumer that was killed is not a live
/// other, even while a reader's read lock sits on its byte (the old code counted any lock on
/// the byte as a live holder).
fn regression_a_read_lock_on_a_role_byte_made_a_dead_consumer_look_alive(backend: Backend) {
    if !is_root() {
        eprintln!("skipped: setuid needs root");
        return;
    }
    let place = Place::new(backend, "ro-has-other");
    let _queue = readable_spsc(&place);
    let mut holder = helper!("queue-hold-role", place, "consumer");
    holder.expect("holding");
    holder.kill();
    let reader = lock_as_reader!(&place, "sh");

    let producer = open_queue(&place);
    producer.push(Msg::new(1, 0)).unwrap();
    assert_eq!(
        producer.has_other_consumer().unwrap(),
        Some(false),
        "{backend:?}: a killed consumer counted as live beside a reader's lock"
    );
    release_reader(reader);
}

/// Makes the file region at `path` look as if it came from another boot (as
/// `tests/persistence.rs` does): its boot id's bits flipped.
fn from_another_boot(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    flip_boot_id(&mut bytes);
    std::fs::write(path, &bytes).unwrap();
}

/// A file region of `Counter::at(5)`, mode 0644 (uid 65534 may read it), with no handle left
/// on it, from another boot: its place and path.
fn readable_region_from_another_boot(tag: &str) -> (Place, std::path::PathBuf) {
    let place = Place::new(Backend::File, tag);
    let path = place.path().unwrap();
    drop(
        Shm::<Counter>::options()
            .mode(0o644)
            .create(place.location(), Counter::at(5))
            .unwrap(),
    );
    from_another_boot(&path);
    (place, path)
}

/// Bug: the reset after a reboot waited for an exclusive `flock` a reader kept from it.
///
/// The first read-write opener after a reboot resets the file region beside the reader's
/// locks (the old code waited for an exclusive `flock` the reader kept from it).
#[test]
fn regression_a_readers_flock_blocked_the_reset_after_a_reboot() {
    if !is_root() {
        eprintln!("skipped: setuid needs root");
        return;
    }
    for flock in FLOCKS {
        let (place, path) = readable_region_from_another_boot("ro-reboot");
        let old_boot = std::fs::read(&path).unwrap()[BOOT_ID].to_vec();
        let reader = lock_as_reader!(&place, flock);

        let shm = Shm::<Counter>::options()
            .open_timeout(OPEN_TIMEOUT)
            .open(place.location())
            .unwrap_or_else(|e| panic!("flock {flock}: {e}"));
        assert_eq!(*shm.lock().unwrap(), Counter::at(5));
        let now_boot = std::fs::read(&path).unwrap()[BOOT_ID].to_vec();
        assert_ne!(now_boot, old_boot, "the boot id was not reset");
        release_reader(reader);
    }
}

/// Makes an empty object at `place` with mode 0644 (owned by uid `owner`), as a creator that
/// died before sizing it leaves one: abandoned.
fn abandoned(place: &Place, owner: u32) {
    use std::os::unix::fs::PermissionsExt;
    let path = place.path().unwrap();
    let file = std::fs::File::create(&path).unwrap();
    file.set_permissions(std::fs::Permissions::from_mode(0o644))
        .unwrap();
    std::os::unix::fs::fchown(&file, Some(owner), Some(owner)).unwrap();
}

/// A fresh place of `backend` with an [`abandoned`] object owned by `owner`, and the hostile
/// reader holding its locks (`flock` kind `flock`) on it.
fn abandoned_beside_a_reader(
    backend: Backend,
    tag: &str,
    owner: u32,
    flock: &str,
) -> (Place, Helper) {
    let place = Place::new(backend, tag);
    abandoned(&place, owner);
    let reader = lock_as_reader!(&place, flock);
    (place, reader)
}

/// Bug: a reader's `flock` faked a live creator that `open` waited for.
///
/// A reader's locks neither fake a live creator (`open` reports `Incomplete` at once, where
/// the old code waited for the creator a reader's `flock` faked) nor keep `open_or_create`
/// from repairing the region: its read lock keeps the repairer from the old object's
/// initialiser lock, so the repairer renames a new region over it.
fn regression_a_readers_flock_faked_a_live_creator(backend: Backend) {
    if !is_root() {
        eprintln!("skipped: setuid needs root");
        return;
    }
    for flock in FLOCKS {
        let (place, reader) = abandoned_beside_a_reader(backend, "ro-abandoned", 0, flock);

        let opened = Shm::<Counter>::options()
            .open_timeout(OPEN_TIMEOUT)
            .open(place.location())
            .map(drop);
        assert!(
            matches!(opened, Err(Error::Incomplete { .. })),
            "{backend:?} flock {flock}: {opened:?}"
        );

        let shm = Shm::<Counter>::options()
            .mode(0o644)
            .open_timeout(OPEN_TIMEOUT)
            .open_or_create(place.location(), || Counter::at(9))
            .unwrap_or_else(|e| panic!("{backend:?} flock {flock}: {e}"));
        assert_eq!(shm.read(), Counter::at(9));
        // The repaired region is the one under the name, for every opener.
        let again = Shm::<Counter>::open(place.location()).unwrap();
        *again.lock().unwrap() = Counter::at(10);
        assert_eq!(shm.read(), Counter::at(10));
        // Nothing is left behind in the directory but the region.
        let dir = place.path().unwrap().parent().unwrap().to_path_buf();
        let stem = format!(
            ".{}.shmstore-",
            place.path().unwrap().file_name().unwrap().to_string_lossy()
        );
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(&stem))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        release_reader(reader);
    }
}

/// Where a replacement is impossible — another user's abandoned object, opened with
/// `allow_other_owner` (replacing it would take it from its owner) — the reader's read lock
/// keeps the repair from the initialiser lock, and `open_or_create` says so after
/// `open_timeout`, instead of waiting for a creator that does not exist.
fn a_repair_a_read_only_lock_holds_up_names_the_cause(backend: Backend) {
    if !is_root() {
        eprintln!("skipped: setuid needs root");
        return;
    }
    let (place, reader) = abandoned_beside_a_reader(backend, "ro-others", 65534, "sh");
    let e = Shm::<Counter>::options()
        .allow_other_owner(true)
        .open_timeout(OPEN_TIMEOUT)
        .open_or_create(place.location(), || Counter::at(9))
        .map(drop)
        .expect_err("repaired in place beside a read lock");
    assert!(
        matches!(e, Error::LockedByReader { .. }),
        "{backend:?}: {e:?}"
    );
    assert_mentions(&e, &["repair", "byte 2", "read access", "/proc/locks"]);
    release_reader(reader);
}

/// Racing repairers beside a reader's locks: one claims the repair and renames a new region
/// in, the others wait for it, so exactly one `init` runs and every process opens the same
/// region.
fn racing_repairers_beside_a_read_only_lock_agree_on_one_region(backend: Backend) {
    if !is_root() {
        eprintln!("skipped: setuid needs root");
        return;
    }
    for _round in 0..5 {
        let (place, reader) = abandoned_beside_a_reader(backend, "ro-race", 0, "sh");
        let mut creators: Vec<Helper> = (0..6).map(|_| helper!("tally-create", place)).collect();
        for creator in &mut creators {
            creator.expect("ready");
        }
        for creator in &mut creators {
            creator.send("go");
        }
        let mut tokens = Vec::new();
        let mut ran = 0;
        for creator in creators {
            let lines = creator.finish_ok();
            let last = lines.last().expect("a result line");
            let mut words = last.split_whitespace();
            assert_eq!(words.next(), Some("ok"), "{backend:?}: {lines:?}");
            tokens.push(words.next().unwrap().to_string());
            if last.ends_with("ran=yes") {
                ran += 1;
            }
        }
        assert_eq!(ran, 1, "{backend:?}: init ran {ran} times: {tokens:?}");
        assert!(
            tokens.windows(2).all(|w| w[0] == w[1]),
            "{backend:?}: {tokens:?}"
        );
        release_reader(reader);
    }
}

/// FORMAT.md: `creator_pid` at header offset 80; bit 31 marks a reset in progress.
const CREATOR_PID: std::ops::Range<usize> = 80..84;

/// A resetter that died in the middle of a reset leaves its claim; a reader's read lock then
/// keeps the others from taking it over (the kernel does not say whose read lock it is), which
/// `open` reports after `open_timeout` naming the cause. Without the reader, the next opener
/// takes the claim over and resets.
#[test]
fn a_dead_resetters_claim_held_up_by_a_read_only_lock_is_reported_by_cause() {
    if !is_root() {
        eprintln!("skipped: setuid needs root");
        return;
    }
    let (place, path) = readable_region_from_another_boot("ro-dead-reset");
    // A pid that no process has: one that just exited.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[CREATOR_PID].copy_from_slice(&(gone_pid | 1 << 31).to_ne_bytes());
    std::fs::write(&path, &bytes).unwrap();

    let reader = lock_as_reader!(&place, "sh");
    let e = Shm::<Counter>::options()
        .open_timeout(Duration::from_millis(300))
        .open(place.location())
        .map(drop)
        .expect_err("took over the claim beside a read lock");
    assert!(matches!(e, Error::LockedByReader { .. }), "{e:?}");
    assert_mentions(
        &e,
        &["reset", &format!("pid {gone_pid}"), "byte 2", "read access"],
    );
    release_reader(reader);

    let shm = Shm::<Counter>::options()
        .open_timeout(OPEN_TIMEOUT)
        .open(place.location())
        .unwrap();
    assert_eq!(*shm.lock().unwrap(), Counter::at(5));
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        bytes[CREATOR_PID],
        gone_pid.to_ne_bytes(),
        "the claim was given back"
    );
}

// ---- every backend behind a descriptor (the matrix) ----

/// Why the System V backend cannot run these scenarios.
const NO_DESCRIPTOR: &str = "a System V segment has no descriptor for a reader to lock";

shmstore_tests::for_each_backend!(
    a_read_only_lock_cannot_keep_writers_from_free_spsc_roles [sysv: NO_DESCRIPTOR],
    a_dead_holders_role_held_up_by_a_read_only_lock_is_reported_by_cause [sysv: NO_DESCRIPTOR],
    regression_a_read_lock_on_a_role_byte_made_a_dead_consumer_look_alive [sysv: NO_DESCRIPTOR],
    regression_a_readers_flock_faked_a_live_creator [sysv: NO_DESCRIPTOR],
    a_repair_a_read_only_lock_holds_up_names_the_cause [sysv: NO_DESCRIPTOR],
    racing_repairers_beside_a_read_only_lock_agree_on_one_region [sysv: NO_DESCRIPTOR],
);
