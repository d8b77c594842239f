//! The reset of a file region after a reboot.
//!
//! A file outlives the processes and the boot that used it: its lock word and sleeper counts
//! mean nothing any more. The header records the boot id; the first read-write opener that finds
//! another one claims the reset in the header (a compare-and-swap, which a process with only
//! read access cannot do nor block; see [`reset_if_rebooted`]), initialises the mutex again,
//! clears the sleeper state (the value's waiters, a queue's sleepers and SPSC roles), repairs an
//! interrupted write as the next locker would (roll back, or poison in place) and stores the
//! current boot id. The payload stays.
//!
//! `region/` maps and validates the file and knows nothing of locks or queues; this protocol
//! runs right after a read-write open ([`open`], [`open_or_create`]), before the handle is used.

use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::format::{Control, SharedBytes, INITIALISER_BYTE};
use crate::location::Location;
use crate::lock::Wait;
use crate::region::{Init, Region, RegionSpec};
use crate::sys::object::{Access, ByteLock};
use crate::sys::process;

/// [`Region::open`], then, for a read-write handle, the reset after a reboot.
pub(crate) fn open(location: &Location, spec: &RegionSpec, access: Access) -> Result<Region> {
    let mut region = Region::open(location, spec, access)?;
    if access == Access::ReadWrite {
        reset_if_rebooted(&mut region, spec)?;
    }
    Ok(region)
}

/// [`Region::open_untyped_writable`], then, for a single value, the reset after a reboot (a
/// queue is refused before anything is changed).
pub(crate) fn open_untyped_writable(location: &Location, spec: &RegionSpec) -> Result<Region> {
    let mut region = Region::open_untyped_writable(location, spec)?;
    if region.info().queue.is_some() {
        return Err(Error::WrongKind {
            name: region.name().to_string(),
            expected: "a single value",
            found: "a queue",
        });
    }
    reset_if_rebooted(&mut region, spec)?;
    Ok(region)
}

/// [`Region::open_or_create`], then the reset after a reboot (a region this call created is
/// already of this boot: nothing to do).
pub(crate) fn open_or_create(
    location: &Location,
    spec: &RegionSpec,
    init: Init<'_>,
) -> Result<Region> {
    let mut region = Region::open_or_create(location, spec, init)?;
    reset_if_rebooted(&mut region, spec)?;
    Ok(region)
}

/// Bit 31 of the header's `creator_pid` while a process resets the region after a reboot (the
/// rest of the word is its pid; pids stay below 2^22).
const RESETTING: u32 = 1 << 31;

/// After a reboot, makes the lock and sleeper state of a ready region valid again (see the
/// module docs): once, in the first read-write opener. Nothing to do for a POSIX object or a
/// System V segment (they live in memory), or when the stored boot id is the current one, or
/// either cannot be known.
///
/// The reset is claimed in shared memory, where only writers can write: a compare-and-swap sets
/// [`RESETTING`] and the resetter's pid in `creator_pid`. The resetter proves it is alive with a
/// *read* lock on [`INITIALISER_BYTE`], taken before the swap and kept until it is done, so a
/// process with only read access (which can take read locks too, but no write lock) cannot keep
/// it from resetting. Other writers wait until the boot id is current. One that gets the
/// *write* lock on the byte while the claim is set knows the resetter died (nobody holds a lock
/// there) and takes the claim over. A reader's read lock can refuse that write lock; the wait
/// then ends after `open_timeout` with [`Error::LockedByReader`]: only a resetter that died in
/// the middle of a reset lets a reader get in the way.
fn reset_if_rebooted(region: &mut Region, spec: &RegionSpec) -> Result<()> {
    // Only a file outlives a boot. A boot id that could not be read (zeros, stored or current)
    // proves nothing: resetting a lock that is in use would be far worse than not resetting a
    // stale one.
    let stored = region.info().boot_id;
    if !matches!(region.location(), Location::File(_)) || stored == [0; 16] {
        return Ok(());
    }
    let current = process::boot_id();
    if current == [0; 16] || stored == current || region.is_segment() {
        return Ok(());
    }
    let name = region.name().to_string();
    // A file region: its byte locks answer `Some`.
    let try_lock = |kind| {
        region
            .try_claim_byte(INITIALISER_BYTE, kind)
            .map(|got| got == Some(true))
    };
    let deadline = Instant::now().checked_add(spec.open_timeout);
    let me = process::current_pid();
    loop {
        let header = region.header();
        if header.boot_id() == current {
            // Another opener reset it.
            break;
        }
        let claim = header.creator_pid.load(SeqCst);
        if claim & RESETTING == 0 {
            // Nobody resets it: claim it, alive (read lock) before the claim shows.
            if try_lock(ByteLock::Read)? {
                if header.boot_id() != current
                    && header
                        .creator_pid
                        .compare_exchange(claim, me | RESETTING, SeqCst, SeqCst)
                        .is_ok()
                {
                    reset_claimed(region, current, claim)?;
                    break;
                }
                region.release_byte(INITIALISER_BYTE);
                continue;
            }
            // Refused only while another writer checks a resetter that looked dead: wait.
        } else if try_lock(ByteLock::Write)? {
            // Claimed, and nobody holds a lock on the byte: the resetter died. Take over.
            if header
                .creator_pid
                .compare_exchange(claim, me | RESETTING, SeqCst, SeqCst)
                .is_ok()
            {
                // Converting our own lock conflicts with nothing: it cannot be refused.
                try_lock(ByteLock::Read)?;
                reset_claimed(region, current, claim & !RESETTING)?;
                break;
            }
            region.release_byte(INITIALISER_BYTE);
            continue;
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            let resetter = claim & !RESETTING;
            let writer = region.byte_write_claimed_elsewhere(INITIALISER_BYTE)? == Some(true);
            // Only read locks in the way of a resetter that looks gone (its pid is a hint
            // only: it may be another PID namespace's).
            if claim & RESETTING != 0 && !writer && !process::is_alive(resetter) {
                return Err(Error::LockedByReader {
                    name,
                    blocked: format!(
                        "reset its lock after a reboot: the process that began the reset \
                         (pid {resetter}) is gone, unless it runs in another PID namespace, and \
                         the lock that would let another take over is refused"
                    ),
                    byte: INITIALISER_BYTE,
                    after: Some(spec.open_timeout),
                });
            }
            return Err(Error::Timeout {
                name,
                waiting_for: "another process to reset its lock after a reboot",
                after: spec.open_timeout,
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    region.note_boot_id(current);
    Ok(())
}

/// Resets the region under this process's claim (see [`reset_if_rebooted`]), then gives the
/// claim back: `creator_pid` gets `displaced` again, and the read lock goes.
fn reset_claimed(region: &Region, current: [u8; 16], displaced: u32) -> Result<()> {
    let result = reset_locked(region, current);
    region.header().creator_pid.store(displaced, SeqCst);
    region.release_byte(INITIALISER_BYTE);
    result
}

fn reset_locked(region: &Region, current: [u8; 16]) -> Result<()> {
    let header = region.header();
    if header.boot_id() == current {
        // Another opener reset it before we claimed it.
        return Ok(());
    }
    // SAFETY: no process uses the lock. Every process that used it before the reboot is gone,
    // and every read-write opener since the reboot either found the current boot id (stored
    // below, only after the reset) or waits while our claim is set (see `reset_if_rebooted`:
    // one claim at a time, taken over only from a dead claimant); read-only handles
    // never touch the lock.
    unsafe { header.reset_after_reboot() }
        .map_err(|e| Error::io(region.name(), "pthread_mutex_init", e))?;
    reset_queue(region);
    // Finish or undo a write the reboot interrupted, as the next locker would.
    match region.acquire(Wait::No) {
        Ok(_) => {
            // And a migration the reboot interrupted (a file region's migrator), as the next
            // locker after a dead migrator would: the reset lock answered no `EOWNERDEAD`.
            // SAFETY: `acquire` succeeded: this thread holds the lock through `region`.
            unsafe { region.settle_dead_migration() };
            // SAFETY: as above; nothing written; the payload size is the region's own.
            unsafe { region.release(false, region.info().layout.payload_size) }
        }
        Err(failure) => {
            // Nobody else may use the lock yet: even "busy" means it is broken.
            let not_locked = region.not_locked(failure, Wait::No);
            return Err(not_locked.into_error(region).unwrap_or_else(|| {
                Error::corrupt(region.name(), "its lock was held right after being reset")
            }));
        }
    }
    region.header().set_boot_id(current);
    Ok(())
}

/// After a reboot: nobody sleeps on the queue's events and nobody holds a role. Does nothing
/// to a region that is not a queue (its payload has no control block).
fn reset_queue(region: &Region) {
    if region.info().queue.is_none() {
        return;
    }
    let Some(c) = region.payload().and_then(SharedBytes::view::<Control>) else {
        return;
    };
    for line in [&c.tail, &c.head] {
        line.owner.store(0, Relaxed);
    }
    for event in [&c.not_empty, &c.not_full] {
        event.sleepers.store(0, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reset after a reboot checks that the region is a queue before it writes a control
    /// block: a value's payload is not one, and stays as it was.
    #[test]
    fn reset_queue_leaves_a_value_alone() {
        let region = crate::region::scratch_value("reset-value", 0xff);
        reset_queue(&region);
        assert_eq!(region.payload().unwrap().load_bytes(), vec![0xff; 256]);
    }

    /// The reset repairs a write the reboot interrupted, as the next locker would: the lock of
    /// a thread that no longer exists (here one that exited holding it) is made new, the
    /// half-written value rolled back and the boot id recorded.
    #[test]
    fn the_reset_rolls_back_a_write_the_reboot_interrupted() {
        let region = crate::region::scratch_value("reset-rollback", 0xaa);
        let start = region.header().version.load(SeqCst);
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    region.acquire(Wait::Forever).expect("lock");
                    region.begin_write();
                    // SAFETY: this thread holds the lock and opened the latch: the only
                    // writer of the working copy, 256 bytes inside the mapping.
                    unsafe { std::ptr::write_bytes(region.working_copy(), 0xbb, 100) };
                })
                .join()
                .unwrap();
        });
        let other_boot = [7; 16];
        reset_locked(&region, other_boot).unwrap();
        assert_eq!(region.header().boot_id(), other_boot);
        assert_eq!(region.header().version.load(SeqCst), start + 2);
        assert_eq!(region.payload().unwrap().load_bytes(), vec![0xaa; 256]);
        assert!(region.acquire(Wait::No).is_ok_and(|poisoned| !poisoned));
        // SAFETY: acquired just above; nothing written; the region's own payload size.
        unsafe { region.release(false, region.info().layout.payload_size) };
    }

    /// A migration the reboot interrupted before its rename (a file region's migrator died
    /// with the machine) leaves the region current after the reset, as after a migrator
    /// that died: the reset lock answers no `EOWNERDEAD`, so the reset settles it itself.
    #[test]
    fn the_reset_settles_a_migration_the_reboot_interrupted() {
        use crate::format::{LIFECYCLE_CURRENT, LIFECYCLE_MIGRATING};
        use crate::layout::ShmType;
        let (location, spec) =
            crate::region::scratch_spec("reset-migrating", &<[u64; 32]>::LAYOUT, false);
        let region = Region::create(&location, &spec, &mut |value| value.fill(0)).unwrap();
        region.header().lifecycle.store(LIFECYCLE_MIGRATING, SeqCst);
        let reset = reset_locked(&region, [7; 16]);
        let lifecycle = region.header().lifecycle.load(SeqCst);
        crate::region::unlink(&location).unwrap();
        reset.unwrap();
        assert_eq!(
            lifecycle, LIFECYCLE_CURRENT,
            "the name is still the region's"
        );
    }
}
