//! The lock protocol: acquiring a region's robust mutex, recovering after a holder that died,
//! and releasing with a commit, a rollback or a poison. Untyped: it moves payload bytes.
//!
//! # The latch (default mode)
//!
//! The payload is kept twice: the *working copy*, which the lock holder writes in place, and
//! the *second copy*. The version counter says which one readers use: the working copy when it
//! is even (published), the second copy when it is odd (a holder is writing).
//!
//! - The first write through a guard makes the version odd (readers move to the untouched
//!   second copy), then the holder writes the working copy.
//! - A commit sets `commit_in_progress`, makes the version even (readers move to the new,
//!   complete working copy), copies the working copy over the second, clears the flag.
//! - After a holder died (or its thread panicked) with the version odd and no commit under
//!   way, the next locker copies the second copy back over the working copy and publishes a
//!   new even version: the write is rolled back. With the flag set, the working copy was
//!   complete: the locker makes the version even if it was not and redoes the copy.
//!
//! The working copy is written only while the version is odd; the second copy only while it is
//! even. A reader validates its copy by the version before and after, so it never returns a
//! copy that was being written. Versions only increase.
//!
//! # In-place mode
//!
//! One copy and a seqlock: the first write makes the version odd, the release makes it even.
//! A holder that dies (or panics) with the version odd leaves a possibly half-written value:
//! the next locker sets the `poisoned` flag, publishes it as it is and reports the poison.

use std::sync::atomic::fence;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::region::Region;
use crate::snapshot::HELP_READERS_FROM;
use crate::sys::mutex::{Acquired, LockFailure, Until};
use crate::sys::process::thread_token;
use crate::wait::wake_value_waiters;

/// The longest a writer waits for a starving reader before it locks anyway.
const BACK_OFF: Duration = Duration::from_micros(10);

/// How long to wait for the lock.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    Forever,
    No,
    For(Duration),
}

impl Wait {
    /// The same bound, as the instant the raw mutex gives up at.
    #[inline]
    pub(crate) fn until(self) -> Until {
        match self {
            Wait::Forever => Until::Forever,
            Wait::No => Until::Now,
            Wait::For(timeout) => Instant::now()
                .checked_add(timeout)
                .map_or(Until::Forever, Until::Deadline),
        }
    }
}

impl Region {
    /// Takes the lock and repairs whatever a previous holder left unfinished. `Ok(true)` when
    /// the region is poisoned (in-place mode only).
    #[inline]
    pub(crate) fn acquire(&self, wait: Wait) -> Result<bool, LockFailure> {
        let mutex = &self.header().mutex;
        if !matches!(wait, Wait::No) {
            self.yield_to_starving_reader();
        }
        let acquired = mutex.lock(self.mutex_key(), wait.until())?;
        self.holder.store(thread_token(), Relaxed);
        if acquired == Acquired::OwnerDied {
            // First, so that a death during the repair below leaves the mutex robust again
            // for the next locker (who redoes the idempotent repair).
            mutex.mark_consistent();
            // SAFETY: this thread holds the lock, taken through `self` just above.
            unsafe { self.settle_dead_migration() };
        }
        self.repair();
        Ok(self.in_place() && self.header().poisoned.load(Acquire) != 0)
    }

    /// Lets a reader that keeps losing the race with back-to-back commits in: with a new,
    /// unserved read request, wait (at most [`BACK_OFF`]) before locking. One load and a compare
    /// when nobody asks.
    #[inline]
    fn yield_to_starving_reader(&self) {
        let h = self.header();
        let requests = h.read_requests.load(Relaxed);
        if requests != h.reads_served.load(Relaxed) && requests != self.backed_off_for.load(Relaxed)
        {
            self.back_off(requests);
        }
    }

    #[cold]
    fn back_off(&self, requests: u32) {
        self.backed_off_for.store(requests, Relaxed);
        let h = self.header();
        let start = Instant::now();
        let mut spins = 0u32;
        while h.reads_served.load(Acquire) != h.read_requests.load(Relaxed) {
            spins += 1;
            if spins % 32 == 0 && start.elapsed() >= BACK_OFF {
                return;
            }
            std::hint::spin_loop();
        }
    }

    /// Finishes or undoes what the previous holder left. Runs on every acquisition; with
    /// nothing to do it costs two loads.
    #[inline]
    fn repair(&self) {
        let h = self.header();
        let committing = h.commit_in_progress.load(Relaxed) != 0;
        let version = h.version.load(Relaxed);
        if committing || version & 1 == 1 {
            self.repair_slow(committing, version);
        }
    }

    #[cold]
    fn repair_slow(&self, committing: bool, version: u64) {
        let h = self.header();
        match self.second_copy() {
            None => {
                // `commit_in_progress` means nothing in place: only a peer's stray write sets
                // it. Clear it, or every lock would come back here (and, below, poison).
                if committing {
                    h.commit_in_progress.store(0, Relaxed);
                }
                if version & 1 == 1 {
                    // A holder died or panicked mid-write. Poison, then publish so that
                    // readers stop waiting for an even version.
                    h.poisoned.store(1, Release);
                    self.publish(version.wrapping_add(1));
                }
            }
            Some(second) if committing => {
                // The working copy was complete when the commit began: finish it.
                if version & 1 == 1 {
                    self.publish(version.wrapping_add(1));
                }
                fence(Release);
                // SAFETY: the region's two copies, `payload_size` bytes each.
                unsafe {
                    copy_payload(self.working_copy(), second, self.info().layout.payload_size)
                };
                h.commit_in_progress.store(0, Release);
            }
            Some(second) => {
                // Roll back: the second copy is untouched while the version is odd.
                // SAFETY: the region's two copies, `payload_size` bytes each.
                unsafe {
                    copy_payload(second, self.working_copy(), self.info().layout.payload_size)
                };
                self.publish(version.wrapping_add(1));
            }
        }
    }

    /// Called before the holder's first write: makes the version odd. A large value's writer
    /// first lets readers that asked for help copy it (snapshot.rs).
    #[inline]
    pub(crate) fn begin_write(&self) {
        if self.info().layout.payload_size >= HELP_READERS_FROM {
            self.help_starving_readers();
        }
        let h = self.header();
        let v = h.version.load(Relaxed);
        // Release: a reader that acquires the odd version also sees the previous commit's copy
        // into the second copy, which it is about to read (free on x86-64).
        h.version.store(v.wrapping_add(1), Release);
        // Orders the odd version before the payload writes that follow, for readers that
        // fence(Acquire) after copying (the seqlock protocol).
        fence(Release);
    }

    /// Commits (or, while the thread panics, rolls back or poisons) and unlocks.
    ///
    /// `payload_size` is the region's payload size, passed by the typed caller as
    /// `size_of::<T>()` so that the commit copy of a small value compiles to a few moves.
    ///
    /// # Safety
    ///
    /// The calling thread holds the lock through this region, taken with [`acquire`], and
    /// `payload_size` equals `self.info().layout.payload_size`.
    ///
    /// [`acquire`]: Region::acquire
    #[inline]
    pub(crate) unsafe fn release(&self, wrote: bool, payload_size: usize) {
        debug_assert_eq!(payload_size, self.info().layout.payload_size);
        if wrote {
            let h = self.header();
            let odd = h.version.load(Relaxed);
            let panicking = std::thread::panicking();
            match (self.second_copy(), panicking) {
                (None, false) => h.version.store(odd.wrapping_add(1), Release),
                (None, true) => {
                    h.poisoned.store(1, Release);
                    h.version.store(odd.wrapping_add(1), Release);
                }
                (Some(second), false) => {
                    h.commit_in_progress.store(1, Relaxed);
                    h.version.store(odd.wrapping_add(1), Release);
                    fence(Release);
                    // SAFETY: the two copies of this region, `payload_size` bytes each
                    // (caller); the working copy is complete and no longer written.
                    unsafe { copy_payload(self.working_copy(), second, payload_size) };
                    h.commit_in_progress.store(0, Release);
                }
                (Some(second), true) => {
                    // SAFETY: as above; the second copy is untouched while the version is odd.
                    unsafe { copy_payload(second, self.working_copy(), payload_size) };
                    h.version.store(odd.wrapping_add(1), Release);
                }
            }
        }
        self.holder.store(0, Relaxed);
        // SAFETY: the caller holds the lock, taken by `acquire` with this key, as required.
        unsafe { self.header().mutex.unlock(self.mutex_key()) };
        if wrote {
            // After the unlock: the unlock orders the version store before the load of
            // `waiters` (see `barrier_after_unlock`), and the wake's system call, when one is
            // needed, no longer delays the next locker.
            barrier_after_unlock();
            self.wake_if_waited();
        }
    }

    /// Overwrites the working copy with `value`, the region's whole value: how a writer
    /// through a compatible layout commits the value it wrote back into the region's type.
    /// Does nothing when `value` is not the payload's size.
    ///
    /// # Safety
    ///
    /// The calling thread holds the lock through this region, taken with [`acquire`], and
    /// called [`begin_write`](Region::begin_write) since.
    ///
    /// [`acquire`]: Region::acquire
    pub(crate) unsafe fn overwrite_working_copy(&self, value: &[u8]) {
        let size = self.info().layout.payload_size;
        if value.len() == size {
            // SAFETY: `value` is `size` readable bytes of this process, not shared memory, so
            // they overlap no payload copy; the working copy is `size` bytes, and only the
            // holder, this thread, writes it (readers discard what they read: the version is
            // odd).
            unsafe { std::ptr::copy_nonoverlapping(value.as_ptr(), self.working_copy(), size) };
        }
    }

    /// Stores a new even version while holding the lock, and wakes sleepers if any are
    /// registered (the repair paths; the common release publishes in `release`).
    fn publish(&self, version: u64) {
        let h = self.header();
        // A SeqCst swap rather than a store and a SeqCst fence: the same guarantee (a waiter's
        // SeqCst registration and the load of `waiters` cannot both miss each other), and a
        // locked `xchg` costs less than `mfence` on x86-64.
        h.version.swap(version, SeqCst);
        self.wake_if_waited();
    }

    /// Wakes the version's sleepers (see [`wake_value_waiters`]).
    #[inline]
    fn wake_if_waited(&self) {
        wake_value_waiters(self);
    }
}

/// A full (StoreLoad) barrier between the version store before `pthread_mutex_unlock` and the
/// load of `waiters` after it.
///
/// On x86-64, glibc's robust-mutex unlock is an atomic exchange on the lock word (a `lock`ed
/// instruction, required by the robust-futex protocol to hand the word back), and every locked
/// instruction is a full barrier there; the compiler cannot move our accesses across the
/// opaque call, whose argument points into the same mapping. That saves the `xchg` or `mfence`
/// a SeqCst publish would add to every write. Elsewhere (release-ordered exchanges on
/// AArch64, for one), an explicit SeqCst fence provides it.
#[inline(always)]
fn barrier_after_unlock() {
    #[cfg(target_arch = "x86_64")]
    std::sync::atomic::compiler_fence(SeqCst);
    #[cfg(not(target_arch = "x86_64"))]
    fence(SeqCst);
}

/// Copies the payload between the two copies. Only the lock holder calls it, at a moment when
/// the protocol forbids writes to `from`; readers of `to` discard what they read because the
/// version changed (see "The latch" in the module docs).
///
/// # Safety
///
/// `from` and `to` are a region's two payload copies, each valid for `size` bytes, and they do
/// not overlap.
#[inline]
unsafe fn copy_payload(from: *const u8, to: *mut u8, size: usize) {
    if size <= 64 && size % 8 == 0 {
        // Word moves: the holder has usually just stored into the working copy, and a wider
        // vector load of bytes still in the store buffer stalls on store forwarding.
        for i in 0..size / 8 {
            // SAFETY: `i * 8 + 8 ≤ size`: within the source copy (caller).
            let source = unsafe { from.add(i * 8) }.cast::<u64>();
            // SAFETY: as above, within the destination copy.
            let target = unsafe { to.add(i * 8) }.cast::<u64>();
            // SAFETY: readable (caller); 8-byte aligned (the copy is 64-aligned, the offset a
            // multiple of 8); the lock holder is the only writer of the payload.
            let word = unsafe { source.read() };
            // SAFETY: writable (caller), 8-byte aligned as above, and not overlapping the
            // source copy (caller); readers load it only atomically, under the version check.
            unsafe { target.write(word) };
        }
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::ptr::copy_nonoverlapping(from, to, size) };
    }
}

/// Why a lock was not taken, decided once for every caller: the typed value API, the MPMC
/// queue and the reset after a reboot.
#[derive(Debug)]
pub(crate) enum NotLocked {
    /// Another thread held the lock through the whole bounded wait (with [`Wait::No`], this
    /// thread through another handle too: `try_lock` is "not now", as std's is).
    Busy,
    /// This thread already holds it, and a blocking wait would wait for itself.
    HeldByThisThread,
    /// The lock is unusable; the error says why and what to do.
    Broken(Error),
}

impl NotLocked {
    /// The error a caller that returns errors (a queue) reports; `None` when the lock is only
    /// busy. A value's `lock` cannot return one (its result is std's), so it panics with it.
    pub(crate) fn into_error(self, region: &Region) -> Option<Error> {
        match self {
            NotLocked::Busy => None,
            // Not corruption: this thread's own lock (a queue's or channel's MPMC loan through
            // another handle, perhaps forgotten with `mem::forget`, or a value's guard).
            NotLocked::HeldByThisThread => Some(Error::Io {
                name: region.name().to_string(),
                operation: "take its lock",
                source: std::io::Error::new(
                    std::io::ErrorKind::Deadlock,
                    "this thread already holds it (through another handle: an MPMC queue's or \
                     channel's loan, or a value's guard), so waiting would deadlock; end that \
                     loan or guard first (a loan passed to mem::forget never ends), or do this \
                     on another thread",
                ),
            }),
            NotLocked::Broken(error) => Some(error),
        }
    }
}

impl Region {
    /// What a failed [`acquire`](Region::acquire) with `wait` means (see [`NotLocked`]): the
    /// one mapping of the raw mutex's failures to the crate's errors.
    #[cold]
    pub(crate) fn not_locked(&self, failure: LockFailure, wait: Wait) -> NotLocked {
        let bounded = !matches!(wait, Wait::Forever);
        match failure {
            LockFailure::WouldBlock | LockFailure::TimedOut if bounded => NotLocked::Busy,
            LockFailure::Deadlock if matches!(wait, Wait::No) => NotLocked::Busy,
            LockFailure::Deadlock => NotLocked::HeldByThisThread,
            // Only a bounded wait can time out; without a deadline it is a broken mutex.
            LockFailure::WouldBlock | LockFailure::TimedOut => NotLocked::Broken(Error::corrupt(
                self.name(),
                format!(
                    "its lock failed without a deadline ({failure:?}): another process \
                     overwrote it; remove the region and create it again"
                ),
            )),
            LockFailure::NotRecoverable => NotLocked::Broken(Error::corrupt(
                self.name(),
                "its lock is unrecoverable (a process unlocked it after its owner died without \
                 marking it consistent); remove the region and create it again",
            )),
            LockFailure::Other(code) => NotLocked::Broken(Error::io(
                self.name(),
                "pthread_mutex_lock",
                std::io::Error::from_raw_os_error(code),
            )),
        }
    }

    /// Takes the lock for one step of a protocol that leaves the shared state consistent after
    /// every store (an MPMC queue: each counter changes in one store, after the copy), through
    /// [`acquire`](Region::acquire) like a value's lock: after a holder that died, the next
    /// locker only marks the mutex consistent, with nothing to roll back (such a region has no
    /// second copy and its version never moves). With [`Wait::No`], it tries `attempts` times
    /// before it reports the lock busy: a holder keeps it for one step, so a few attempts ride
    /// out ordinary contention, while a holder that was preempted or stopped in the middle of
    /// its step does not make the caller wait.
    pub(crate) fn lock_step(
        &self,
        wait: Wait,
        attempts: u32,
    ) -> std::result::Result<StepLock<'_>, NotLocked> {
        let mut tried = 1;
        loop {
            match self.acquire(wait) {
                Ok(_) => return Ok(StepLock { region: self }),
                Err(LockFailure::WouldBlock) if matches!(wait, Wait::No) && tried < attempts => {
                    tried += 1;
                    std::hint::spin_loop();
                }
                Err(failure) => return Err(self.not_locked(failure, wait)),
            }
        }
    }
}

/// The lock of one step ([`Region::lock_step`]), released on drop with nothing written
/// through the latch.
pub(crate) struct StepLock<'a> {
    region: &'a Region,
}

impl Drop for StepLock<'_> {
    fn drop(&mut self) {
        let region = self.region;
        // SAFETY: a `StepLock` exists only while this thread holds the lock, taken through
        // `acquire` on this region (`lock_step`); nothing was written through the latch, and the
        // size is the region's own payload size.
        unsafe { region.release(false, region.info().layout.payload_size) }
    }
}

#[cfg(test)]
mod tests {
    //! Every branch of acquiring, repairing and releasing, each with its test. A dead holder is
    //! a thread that locks and exits without unlocking (the robust mutex then answers
    //! `EOWNERDEAD` to the next locker, as after a killed process), leaving the header and the
    //! two copies as the step of the protocol it died in leaves them.
    //!
    //! - acquire: nothing to repair (even, no commit flag) → `a_clean_lock_repairs_nothing`
    //! - acquire: owner died, the mutex marked consistent →
    //!   `a_dead_holders_mutex_is_marked_consistent`
    //! - acquire: owner died migrating the region, the lifecycle settled →
    //!   `region::migrate`'s `a_migrator_killed_at_any_step_leaves_one_complete_region`
    //! - acquire: relock by the holding thread, either handle →
    //!   `a_relock_by_the_holding_thread_is_held_by_this_thread`
    //! - acquire: another live holder, try_lock / bounded wait →
    //!   `another_holder_makes_a_bounded_wait_busy`
    //! - acquire: unrecoverable mutex (`ENOTRECOVERABLE`) →
    //!   `an_unrecoverable_mutex_is_a_corrupt_error`
    //! - acquire: unserved read request (not for try_lock) →
    //!   `a_writer_backs_off_for_an_unserved_read_request`
    //! - repair, two copies: died mid-write (odd, no flag) →
    //!   `died_mid_write_the_write_is_rolled_back`
    //! - repair, two copies: died in the latch's first write →
    //!   `died_mid_write_the_write_is_rolled_back`
    //! - repair, two copies: died rolling back (odd, no flag) →
    //!   `died_mid_write_the_write_is_rolled_back`
    //! - repair, two copies: died after the flag (odd, flag) →
    //!   `died_after_setting_the_commit_flag_the_commit_is_finished`
    //! - repair, two copies: died in the copy (even, flag) →
    //!   `died_in_the_commit_copy_the_copy_is_redone`
    //! - repair, two copies: died after the copy (even, flag) →
    //!   `died_in_the_commit_copy_the_copy_is_redone`
    //! - repair, two copies: died after clearing the flag → `a_clean_lock_repairs_nothing`
    //! - repair, in place: died mid-write (odd) → `in_place_died_mid_write_the_value_is_poisoned`
    //! - repair, in place: a stray commit flag →
    //!   `regression_a_stray_commit_flag_in_place_poisoned_every_lock`
    //! - repair: an odd version of `u64::MAX` wraps to 0 →
    //!   `regression_a_version_of_u64_max_overflowed_in_the_repair`
    //! - release: nothing written → `a_release_without_a_write_publishes_nothing`
    //! - release: commit, two copies → `a_commit_publishes_the_working_copy_and_copies_it`
    //! - release: commit in place → `an_in_place_commit_publishes_without_poison`
    //! - release unwinding, two copies: rolled back, unlocked →
    //!   `a_guard_dropped_while_unwinding_rolls_back_and_unlocks`
    //! - release unwinding, in place: poisoned, unlocked →
    //!   `an_in_place_guard_dropped_while_unwinding_poisons_and_unlocks`
    //! - lock_step after a dead holder: nothing to repair →
    //!   `a_dead_holders_mutex_is_marked_consistent`
    //! - one mapping of the mutex's failures (`not_locked`) → `lock_failures_map_once`
    //! - the `repair_claim` word: none, live, dead claimant →
    //!   `region::fd`'s `claim_repair_*` tests
    //! - an unrecoverable mutex, every later locker (this thread, another thread; try,
    //!   bounded, blocking) →
    //!   `regression_an_unrecoverable_mutex_answered_only_its_first_locker`

    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::atomic::AtomicU32;
    use std::sync::mpsc;

    use super::*;
    use crate::layout::ShmType;
    use crate::region::{scratch_handles, scratch_value};
    use crate::sys::object::Access;

    /// The value before a write (`scratch_value`'s fill) and the one a write stores.
    const OLD: u8 = 0xaa;
    const NEW: u8 = 0xbb;
    /// The payload size of the scratch regions (`[u64; 32]`).
    const SIZE: usize = 256;

    /// A value's lock as the typed guard holds it: acquired, the latch opened by the first
    /// write, released on drop (committing, or rolling back or poisoning while unwinding).
    struct Held<'a> {
        region: &'a Region,
        wrote: bool,
        poisoned: bool,
    }

    impl<'a> Held<'a> {
        fn take(region: &'a Region) -> Held<'a> {
            let poisoned = region.acquire(Wait::Forever).expect("lock");
            Held {
                region,
                wrote: false,
                poisoned,
            }
        }

        /// Writes `byte` over the first `len` bytes of the working copy.
        fn write(&mut self, byte: u8, len: usize) {
            if !self.wrote {
                self.region.begin_write();
                self.wrote = true;
            }
            // SAFETY: this thread holds the lock and opened the latch, so it is the only
            // writer of the working copy (readers load it only atomically).
            unsafe { scribble(self.region, self.region.working_copy(), byte, len) };
        }
    }

    impl Drop for Held<'_> {
        fn drop(&mut self) {
            // SAFETY: taken by `acquire` on this thread through this region (`take`); SIZE is
            // the payload size of every region these tests lock.
            unsafe { self.region.release(self.wrote, SIZE) }
        }
    }

    fn version(region: &Region) -> u64 {
        region.header().version.load(SeqCst)
    }

    fn committing(region: &Region) -> u32 {
        region.header().commit_in_progress.load(SeqCst)
    }

    fn working(region: &Region) -> Vec<u8> {
        region.payload().unwrap().load_bytes()
    }

    fn second(region: &Region) -> Vec<u8> {
        let offset = region.info().layout.second_copy_offset.unwrap();
        region.bytes().range(offset, SIZE).unwrap().load_bytes()
    }

    /// Overwrites the first `len` bytes of `copy`, as a holder does (or a holder that died
    /// left them).
    ///
    /// # Safety
    ///
    /// `copy` is one of `region`'s payload copies, and nothing else writes it meanwhile (the
    /// calling thread holds the lock).
    unsafe fn scribble(region: &Region, copy: *mut u8, byte: u8, len: usize) {
        assert!(len <= region.info().layout.payload_size);
        // SAFETY: the copy has `payload_size ≥ len` bytes inside the mapping, which `region`
        // keeps alive; nothing else writes it (caller).
        unsafe { std::ptr::write_bytes(copy, byte, len) };
    }

    /// Takes the lock on a thread that runs `left` (what the holder did before it died) and
    /// exits without unlocking: the next locker gets `EOWNERDEAD`, as after a killed process.
    fn die_holding(region: &Region, left: impl FnOnce(&Region) + Send) {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    region.acquire(Wait::Forever).expect("lock");
                    left(region);
                })
                .join()
                .unwrap();
        });
    }

    /// Whether another thread can take the lock at once (it gives it back).
    fn free_for_another_thread(region: &Region) -> bool {
        std::thread::scope(|scope| {
            scope
                .spawn(|| match region.acquire(Wait::No) {
                    Ok(_) => {
                        // SAFETY: acquired just above on this thread; nothing written.
                        unsafe { region.release(false, SIZE) };
                        true
                    }
                    Err(_) => false,
                })
                .join()
                .unwrap()
        })
    }

    /// An in-place `[u64; 32]`, zeros.
    fn in_place_value(test: &str) -> Region {
        scratch_handles(test, &<[u64; 32]>::LAYOUT, true, Access::ReadWrite).0
    }

    #[test]
    fn a_clean_lock_repairs_nothing() {
        let region = scratch_value("clean-lock", OLD);
        let start = version(&region);
        drop(Held::take(&region));
        assert_eq!(version(&region), start, "a lock and unlock publish nothing");
        // A holder that died after its commit's last step (flag cleared): nothing to repair.
        die_holding(&region, |region| {
            let h = region.header();
            h.version.store(start + 2, SeqCst);
            // SAFETY: this thread holds the lock.
            unsafe { scribble(region, region.working_copy(), NEW, SIZE) };
            // SAFETY: as above.
            unsafe { scribble(region, region.second_copy().unwrap(), NEW, SIZE) };
        });
        let held = Held::take(&region);
        assert!(!held.poisoned);
        assert_eq!(version(&region), start + 2, "the commit's version, no more");
        assert_eq!(
            (working(&region), second(&region)),
            (vec![NEW; SIZE], vec![NEW; SIZE])
        );
    }

    /// The first locker after a death marks the mutex consistent, so it stays usable after the
    /// unlock (otherwise glibc makes it unrecoverable); a queue's step lock likewise, with
    /// nothing to roll back.
    #[test]
    fn a_dead_holders_mutex_is_marked_consistent() {
        let region = scratch_value("owner-died", OLD);
        die_holding(&region, |_| {});
        drop(Held::take(&region));
        assert!(
            free_for_another_thread(&region),
            "the mutex was left unrecoverable"
        );
        let start = version(&region);
        std::thread::scope(|scope| {
            scope
                .spawn(|| std::mem::forget(region.lock_step(Wait::Forever, 1).unwrap()))
                .join()
                .unwrap();
        });
        drop(
            region
                .lock_step(Wait::Forever, 1)
                .expect("step lock after a death"),
        );
        assert!(free_for_another_thread(&region));
        assert_eq!(version(&region), start);
        assert_eq!(working(&region), vec![OLD; SIZE]);
    }

    /// `EDEADLK` for a blocking wait is `HeldByThisThread`, through the holding handle or
    /// another handle of the same region; `try_lock` is "busy", as std's is.
    #[test]
    fn a_relock_by_the_holding_thread_is_held_by_this_thread() {
        let (one, two) = scratch_handles("relock", &<[u64; 32]>::LAYOUT, false, Access::ReadWrite);
        let held = Held::take(&one);
        for region in [&one, &two] {
            let failure = region.acquire(Wait::Forever).unwrap_err();
            assert_eq!(failure, LockFailure::Deadlock);
            assert!(matches!(
                region.not_locked(failure, Wait::Forever),
                NotLocked::HeldByThisThread
            ));
            assert!(matches!(
                region.lock_step(Wait::Forever, 1),
                Err(NotLocked::HeldByThisThread)
            ));
            assert!(matches!(
                region.lock_step(Wait::No, 3),
                Err(NotLocked::Busy)
            ));
        }
        drop(held);
        assert!(free_for_another_thread(&two));
    }

    /// A live holder on another thread: `try_lock` and a bounded wait are "busy".
    #[test]
    fn another_holder_makes_a_bounded_wait_busy() {
        let region = &scratch_value("busy", OLD);
        let (locked, release) = (mpsc::channel(), mpsc::channel::<()>());
        std::thread::scope(|scope| {
            // Dropped also if an assertion below fails, which ends the holder's wait.
            let (tell, wait, release) = (locked.0, release.1, release.0);
            scope.spawn(move || {
                let _held = Held::take(region);
                tell.send(()).unwrap();
                let _ = wait.recv();
            });
            locked.1.recv().unwrap();
            for wait in [Wait::No, Wait::For(Duration::from_millis(20))] {
                let failure = region.acquire(wait).unwrap_err();
                assert!(
                    matches!(region.not_locked(failure, wait), NotLocked::Busy),
                    "{wait:?}: {failure:?}"
                );
            }
            assert!(matches!(
                region.lock_step(Wait::No, 3),
                Err(NotLocked::Busy)
            ));
            release.send(()).unwrap();
        });
        assert!(free_for_another_thread(region));
    }

    /// A region whose mutex a locker unlocked after `EOWNERDEAD` without marking it
    /// consistent: glibc makes it unrecoverable.
    fn unrecoverable(test: &str) -> Region {
        let region = scratch_value(test, OLD);
        die_holding(&region, |_| {});
        let (mutex, key) = (&region.header().mutex, region.mutex_key());
        assert_eq!(mutex.lock(key, Until::Now), Ok(Acquired::OwnerDied));
        // SAFETY: this thread holds it (just above), with this key.
        unsafe { mutex.unlock(key) };
        region
    }

    fn is_unrecoverable_error(error: Option<&Error>) -> bool {
        matches!(error, Some(Error::Corrupt { .. }))
            && error.is_some_and(|e| e.to_string().contains("unrecoverable"))
    }

    /// An unrecoverable mutex is the typed error that says to recreate the region.
    #[test]
    fn an_unrecoverable_mutex_is_a_corrupt_error() {
        let region = unrecoverable("not-recoverable");
        let failure = region.acquire(Wait::Forever).unwrap_err();
        assert_eq!(failure, LockFailure::NotRecoverable);
        let error = region
            .not_locked(failure, Wait::Forever)
            .into_error(&region);
        assert!(is_unrecoverable_error(error.as_ref()), "{error:?}");
    }

    /// Runs `locker` under a watchdog and says whether the watchdog fired: if `locker` has not
    /// returned after 10 s (it waits for ever on the lock word of an unrecoverable mutex), the
    /// watchdog frees that word every 100 ms, so that the wait ends and the test fails instead
    /// of hanging.
    fn with_watchdog<R>(region: &Region, locker: impl FnOnce() -> R) -> (R, bool) {
        let (done, finished) = mpsc::channel::<()>();
        // SAFETY: a `RobustMutex` is glibc's `pthread_mutex_t`, whose first field is the 4-byte
        // futex word (`__lock`), 8-aligned in the header; glibc and the kernel access it only
        // atomically; the borrow of `region` keeps the mapping alive.
        let word = unsafe { &*std::ptr::from_ref(&region.header().mutex).cast::<AtomicU32>() };
        std::thread::scope(|scope| {
            let watchdog = scope.spawn(move || {
                let mut fired = false;
                let mut patience = Duration::from_secs(10);
                // Ends when `done` is dropped: `locker` returned or panicked.
                while finished.recv_timeout(patience) == Err(mpsc::RecvTimeoutError::Timeout) {
                    fired = true;
                    patience = Duration::from_millis(100);
                    word.store(0, SeqCst);
                }
                fired
            });
            let result = locker();
            drop(done);
            (result, watchdog.join().unwrap())
        })
    }

    /// Bug (fixed in `sys/mutex.rs`, "An unrecoverable mutex"; found writing these tests):
    /// glibc's trylock answers the first locker of an unrecoverable mutex `ENOTRECOVERABLE` but
    /// leaves that thread's id in the lock word, so every later locker saw a held lock: "busy"
    /// for a bounded wait, a wait for ever without one (and `EDEADLK`, taken for a holder in
    /// another PID namespace, on the first locker's thread). Now every locker gets the typed
    /// error: the first, the same thread again, other threads; try, bounded wait, blocking.
    #[test]
    fn regression_an_unrecoverable_mutex_answered_only_its_first_locker() {
        let region = &unrecoverable("not-recoverable-twice");
        assert_eq!(
            region.acquire(Wait::No),
            Err(LockFailure::NotRecoverable),
            "the first locker"
        );
        let answer = |wait| {
            region
                .lock_step(wait, 1)
                .err()
                .map(|n| n.into_error(region))
        };
        for round in 0..2 {
            for wait in [
                Wait::No,
                Wait::For(Duration::from_millis(20)),
                Wait::Forever,
            ] {
                let (here, hung) = with_watchdog(region, || answer(wait));
                assert!(
                    !hung && is_unrecoverable_error(here.as_ref().and_then(Option::as_ref)),
                    "round {round}, this thread, {wait:?}: {here:?} (hung: {hung})"
                );
                let (there, hung) = with_watchdog(region, || {
                    std::thread::scope(|scope| scope.spawn(|| answer(wait)).join().unwrap())
                });
                assert!(
                    !hung && is_unrecoverable_error(there.as_ref().and_then(Option::as_ref)),
                    "round {round}, another thread, {wait:?}: {there:?} (hung: {hung})"
                );
            }
        }
    }

    /// A writer that finds an unserved read request backs off for it (and notes which, so a
    /// reader that died mid-request costs it one back-off); `try_lock` never waits.
    #[test]
    fn a_writer_backs_off_for_an_unserved_read_request() {
        let region = scratch_value("back-off", OLD);
        let h = region.header();
        h.read_requests.store(5, SeqCst);
        h.reads_served.store(4, SeqCst);
        drop(region.lock_step(Wait::No, 1).unwrap());
        assert_eq!(region.backed_off_for.load(SeqCst), 0, "try_lock backed off");
        drop(Held::take(&region));
        assert_eq!(region.backed_off_for.load(SeqCst), 5);
        // Served: nothing to back off for.
        h.reads_served.store(5, SeqCst);
        region.backed_off_for.store(0, SeqCst);
        drop(Held::take(&region));
        assert_eq!(
            region.backed_off_for.load(SeqCst),
            0,
            "backed off for a served request"
        );
    }

    /// A holder died with the version odd and no commit begun, in any of the steps that leave
    /// that state: right after opening the latch, in the middle of its write, or in the middle
    /// of a rollback (its thread unwinding). The next locker copies the second copy back.
    #[test]
    fn died_mid_write_the_write_is_rolled_back() {
        for (step, written, rolled_back) in [
            ("latch opened", 0, 0),
            ("mid-write", SIZE / 2, 0),
            ("mid-rollback", SIZE, SIZE / 2),
        ] {
            let region = scratch_value("rolled-back", OLD);
            let start = version(&region);
            die_holding(&region, |region| {
                region.begin_write();
                // SAFETY: this thread holds the lock and opened the latch.
                unsafe { scribble(region, region.working_copy(), NEW, written) };
                // SAFETY: as above.
                unsafe { scribble(region, region.working_copy(), OLD, rolled_back) };
            });
            let held = Held::take(&region);
            assert!(!held.poisoned, "{step}");
            assert_eq!(version(&region), start + 2, "{step}: a new even version");
            assert_eq!(working(&region), vec![OLD; SIZE], "{step}: not rolled back");
            assert_eq!(second(&region), vec![OLD; SIZE], "{step}");
        }
    }

    /// Died between setting `commit_in_progress` and publishing: the working copy was
    /// complete, so the next locker publishes it and copies it into the second copy.
    #[test]
    fn died_after_setting_the_commit_flag_the_commit_is_finished() {
        let region = scratch_value("commit-flagged", OLD);
        let start = version(&region);
        die_holding(&region, |region| {
            region.begin_write();
            // SAFETY: this thread holds the lock and opened the latch.
            unsafe { scribble(region, region.working_copy(), NEW, SIZE) };
            region.header().commit_in_progress.store(1, SeqCst);
        });
        let held = Held::take(&region);
        assert!(!held.poisoned);
        assert_eq!(version(&region), start + 2, "the commit was not published");
        assert_eq!(committing(&region), 0);
        assert_eq!(
            (working(&region), second(&region)),
            (vec![NEW; SIZE], vec![NEW; SIZE])
        );
    }

    /// Died after publishing the commit, before, during or after the copy into the second
    /// copy (flag still set): the next locker redoes the copy, publishes nothing new and
    /// clears the flag.
    #[test]
    fn died_in_the_commit_copy_the_copy_is_redone() {
        for copied in [0, SIZE / 2, SIZE] {
            let region = scratch_value("commit-copy", OLD);
            let start = version(&region);
            die_holding(&region, |region| {
                region.begin_write();
                // SAFETY: this thread holds the lock and opened the latch.
                unsafe { scribble(region, region.working_copy(), NEW, SIZE) };
                region.header().commit_in_progress.store(1, SeqCst);
                region.header().version.store(start + 2, SeqCst);
                // SAFETY: this thread holds the lock and the version is even: the second
                // copy is the one the holder writes now.
                unsafe { scribble(region, region.second_copy().unwrap(), NEW, copied) };
            });
            let held = Held::take(&region);
            assert!(!held.poisoned);
            assert_eq!(version(&region), start + 2, "copied {copied}: republished");
            assert_eq!(committing(&region), 0, "copied {copied}: flag left set");
            assert_eq!(
                second(&region),
                vec![NEW; SIZE],
                "copied {copied}: copy not redone"
            );
            assert_eq!(working(&region), vec![NEW; SIZE], "copied {copied}");
        }
    }

    /// In place there is no copy to roll back to: a holder that died mid-write poisons the
    /// value, which is published as it is (readers stop waiting for an even version).
    #[test]
    fn in_place_died_mid_write_the_value_is_poisoned() {
        let region = in_place_value("in-place-died");
        let start = version(&region);
        die_holding(&region, |region| {
            region.begin_write();
            // SAFETY: this thread holds the lock and opened the latch.
            unsafe { scribble(region, region.working_copy(), NEW, SIZE / 2) };
        });
        let held = Held::take(&region);
        assert!(held.poisoned && region.poisoned());
        assert_eq!(version(&region), start + 2);
        let mut half_written = vec![NEW; SIZE / 2];
        half_written.resize(SIZE, 0);
        assert_eq!(working(&region), half_written, "published as it is");
        drop(held);
        assert!(Held::take(&region).poisoned, "the poison stays");
    }

    /// Bug: a non-zero `commit_in_progress` in an in-place region (only a peer's stray write
    /// sets it) made every lock poison the region and publish an odd version, so read-only
    /// readers waited for ever (commit b508eec; found by the open fuzz target).
    #[test]
    fn regression_a_stray_commit_flag_in_place_poisoned_every_lock() {
        let region = in_place_value("stray-commit-flag");
        let start = version(&region);
        region.header().commit_in_progress.store(1, SeqCst);
        let held = Held::take(&region);
        assert!(!held.poisoned, "an even version poisoned");
        assert_eq!(committing(&region), 0, "the stray flag stays");
        assert_eq!(version(&region), start, "published an odd version");
        drop(held);
        // With an odd version too, the flag goes and the poison is the odd version's.
        die_holding(&region, |region| {
            region.begin_write();
            region.header().commit_in_progress.store(1, SeqCst);
        });
        assert!(Held::take(&region).poisoned);
        assert_eq!((committing(&region), version(&region)), (0, start + 2));
    }

    /// Bug: a corrupt version word of `u64::MAX` (odd) made the repair's `version + 1`
    /// overflow, a panic inside `Shm::lock` with overflow checks (commit b508eec). Versions
    /// wrap: `u64::MAX` is odd and 0 even, so the parity protocol holds.
    #[test]
    fn regression_a_version_of_u64_max_overflowed_in_the_repair() {
        for in_place in [false, true] {
            let region = if in_place {
                in_place_value("version-max-in-place")
            } else {
                scratch_value("version-max", OLD)
            };
            region.header().version.store(u64::MAX, SeqCst);
            let held = Held::take(&region);
            assert_eq!(version(&region), 0, "in place: {in_place}");
            assert_eq!(held.poisoned, in_place);
        }
    }

    #[test]
    fn a_release_without_a_write_publishes_nothing() {
        let region = scratch_value("no-write", OLD);
        let start = version(&region);
        drop(Held::take(&region));
        assert_eq!((version(&region), committing(&region)), (start, 0));
        assert!(free_for_another_thread(&region));
    }

    /// A commit publishes the working copy (one more even version) and copies it into the
    /// second copy, so a later rollback returns to it.
    #[test]
    fn a_commit_publishes_the_working_copy_and_copies_it() {
        let region = scratch_value("commit", OLD);
        let start = version(&region);
        let mut held = Held::take(&region);
        held.write(NEW, SIZE);
        assert_eq!(version(&region), start + 1, "the latch is open");
        assert_eq!(
            second(&region),
            vec![OLD; SIZE],
            "the second copy stays while odd"
        );
        drop(held);
        assert_eq!((version(&region), committing(&region)), (start + 2, 0));
        assert_eq!(
            (working(&region), second(&region)),
            (vec![NEW; SIZE], vec![NEW; SIZE])
        );
        assert!(free_for_another_thread(&region));
    }

    #[test]
    fn an_in_place_commit_publishes_without_poison() {
        let region = in_place_value("in-place-commit");
        let start = version(&region);
        let mut held = Held::take(&region);
        held.write(NEW, SIZE);
        drop(held);
        assert_eq!(version(&region), start + 2);
        assert!(!region.poisoned());
        assert_eq!(working(&region), vec![NEW; SIZE]);
        assert!(free_for_another_thread(&region));
    }

    /// Release under panic, two copies: the guard dropped while its thread unwinds rolls the
    /// half-written value back, publishes an even version and unlocks.
    #[test]
    fn a_guard_dropped_while_unwinding_rolls_back_and_unlocks() {
        let region = scratch_value("unwind-rollback", OLD);
        let start = version(&region);
        let unwound = catch_unwind(AssertUnwindSafe(|| {
            let mut held = Held::take(&region);
            held.write(NEW, SIZE / 2);
            panic!("a panic while holding the lock, mid-write (expected by this test)");
        }));
        assert!(unwound.is_err());
        assert_eq!((version(&region), committing(&region)), (start + 2, 0));
        assert_eq!(
            (working(&region), second(&region)),
            (vec![OLD; SIZE], vec![OLD; SIZE])
        );
        assert!(
            free_for_another_thread(&region),
            "still locked after the unwind"
        );
        assert!(!Held::take(&region).poisoned);
    }

    /// Release under panic, in place: the value is poisoned, published as it is, unlocked.
    #[test]
    fn an_in_place_guard_dropped_while_unwinding_poisons_and_unlocks() {
        let region = in_place_value("unwind-poison");
        let start = version(&region);
        let unwound = catch_unwind(AssertUnwindSafe(|| {
            let mut held = Held::take(&region);
            held.write(NEW, SIZE / 2);
            panic!("a panic while holding the lock, mid-write (expected by this test)");
        }));
        assert!(unwound.is_err());
        assert_eq!(version(&region), start + 2);
        assert!(region.poisoned());
        assert!(
            free_for_another_thread(&region),
            "still locked after the unwind"
        );
        assert!(Held::take(&region).poisoned);
    }

    /// One mapping of the raw mutex's failures, for values, queues and the reset after a
    /// reboot: "not now" only for a bounded wait, and a corrupt lock always an error.
    #[test]
    fn lock_failures_map_once() {
        let region = &crate::region::scratch_value("not-locked", 0);
        let busy = |failure, wait| matches!(region.not_locked(failure, wait), NotLocked::Busy);
        assert!(busy(LockFailure::WouldBlock, Wait::No));
        assert!(busy(LockFailure::TimedOut, Wait::For(Duration::ZERO)));
        assert!(busy(LockFailure::Deadlock, Wait::No));
        assert!(matches!(
            region.not_locked(LockFailure::Deadlock, Wait::Forever),
            NotLocked::HeldByThisThread
        ));
        for (failure, wait) in [
            (LockFailure::TimedOut, Wait::Forever),
            (LockFailure::NotRecoverable, Wait::No),
        ] {
            let error = region.not_locked(failure, wait).into_error(region);
            assert!(matches!(error, Some(Error::Corrupt { .. })), "{error:?}");
        }
        let error = region
            .not_locked(LockFailure::Other(22), Wait::No)
            .into_error(region);
        assert!(matches!(error, Some(Error::Io { .. })), "{error:?}");
    }
}
