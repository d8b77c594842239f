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
            NotLocked::HeldByThisThread => Some(Error::corrupt(
                region.name(),
                "its lock is already held by this thread (waiting would deadlock)",
            )),
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
    use super::*;

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
