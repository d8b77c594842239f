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
use std::time::Duration;

use crate::header::FLAG_NOTIFY_READERS;
use crate::region::Region;
use crate::sys::futex;
use crate::sys::mutex::{Acquired, LockFailure};
use crate::sys::process::thread_token;

/// How long to wait for the lock.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    Forever,
    No,
    For(Duration),
}

impl Region {
    /// Takes the lock and repairs whatever a previous holder left unfinished. `Ok(true)` when
    /// the region is poisoned (in-place mode only).
    #[inline]
    pub(crate) fn acquire(&self, wait: Wait) -> Result<bool, LockFailure> {
        let mutex = &self.header().mutex;
        let acquired = match wait {
            Wait::Forever => mutex.lock(),
            Wait::No => mutex.try_lock(),
            Wait::For(timeout) => mutex.lock_timeout(timeout),
        }?;
        self.holder.store(thread_token(), Relaxed);
        if acquired == Acquired::OwnerDied {
            // First, so that a death during the repair below leaves the mutex robust again
            // for the next locker (who redoes the idempotent repair).
            mutex.mark_consistent();
        }
        self.repair();
        Ok(self.in_place() && self.header().poisoned.load(Acquire) != 0)
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
                // In place: a holder died or panicked mid-write. Poison, then publish so that
                // readers stop waiting for an even version.
                h.poisoned.store(1, Release);
                self.publish(version + 1);
            }
            Some(second) if committing => {
                // The working copy was complete when the commit began: finish it.
                if version & 1 == 1 {
                    self.publish(version + 1);
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
                self.publish(version + 1);
            }
        }
    }

    /// Called before the holder's first write: makes the version odd.
    #[inline]
    pub(crate) fn begin_write(&self) {
        let h = self.header();
        let v = h.version.load(Relaxed);
        h.version.store(v + 1, Relaxed);
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
                (None, false) => self.publish(odd + 1),
                (None, true) => {
                    h.poisoned.store(1, Release);
                    self.publish(odd + 1);
                }
                (Some(second), false) => {
                    h.commit_in_progress.store(1, Relaxed);
                    self.publish(odd + 1);
                    fence(Release);
                    // SAFETY: the two copies of this region, `payload_size` bytes each
                    // (caller); the working copy is complete and no longer written.
                    unsafe { copy_payload(self.working_copy(), second, payload_size) };
                    h.commit_in_progress.store(0, Release);
                }
                (Some(second), true) => {
                    // SAFETY: as above; the second copy is untouched while the version is odd.
                    unsafe { copy_payload(second, self.working_copy(), payload_size) };
                    self.publish(odd + 1);
                }
            }
        }
        self.holder.store(0, Relaxed);
        // SAFETY: the caller holds the lock, as required.
        unsafe { self.header().mutex.unlock() };
    }

    /// Stores a new even version and wakes sleepers if any are registered.
    #[inline]
    fn publish(&self, version: u64) {
        let h = self.header();
        // A SeqCst swap rather than a store and a SeqCst fence: the same guarantee (a waiter's
        // SeqCst registration and this load of `waiters` cannot both miss each other), and a
        // locked `xchg` costs less than `mfence` on x86-64.
        h.version.swap(version, SeqCst);
        if h.waiters.load(SeqCst) != 0 || self.info().flags & FLAG_NOTIFY_READERS != 0 {
            futex::wake_low_half(&h.version);
        }
    }
}

/// Copies the payload between the two copies. Only the lock holder calls it, at a moment when
/// the protocol forbids writes to `from`; readers of `to` discard what they read because the
/// version changed (see the module docs).
///
/// # Safety
///
/// `from` and `to` are a region's two payload copies, each valid for `size` bytes, and they do
/// not overlap.
#[inline]
unsafe fn copy_payload(from: *const u8, to: *mut u8, size: usize) {
    // SAFETY: the caller's contract.
    unsafe { std::ptr::copy_nonoverlapping(from, to, size) };
}
