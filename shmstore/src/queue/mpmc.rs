//! The MPMC side of [`ShmQueue`]: every push and pop runs under the region's robust mutex,
//! taken through the lock protocol that values use (`lock`). A holder killed at any point
//! leaves the counters consistent (each changes in one store, after the copy), so the next
//! locker only marks the mutex consistent: nothing to roll back, nothing poisoned.

use std::mem::MaybeUninit;
use std::sync::atomic::Ordering::{Acquire, Relaxed, SeqCst};
use std::time::Instant;

use crate::error::Result;
use crate::format::CLOSED;
use crate::layout::ShmType;
use crate::lock::{StepLock, Wait};
use crate::wait::notify;

use super::{Popped, Pushed, ShmQueue};

/// How many times `try_push` and `try_pop` try the lock of an MPMC queue before they give up:
/// a holder keeps it for one element copy, so a few attempts (well under a microsecond each)
/// ride out ordinary contention, while a holder that was preempted or stopped in the middle of
/// its copy does not make them wait (nor does a loan, which holds the lock for as long as its
/// owner writes or reads the slot: `loan.rs`).
const TRY_LOCK_ATTEMPTS: u32 = 64;

impl<T: ShmType, const N: usize> ShmQueue<T, N> {
    pub(super) fn mpmc_push(&self, value: &T, wait: Wait) -> Result<Pushed> {
        let c = self.control();
        // Full or closed needs no lock: report it at once. Tail first: if the head read after
        // it is a capacity behind, the queue was full at that moment.
        let tail = c.tail.word.load(Acquire);
        if tail & CLOSED != 0 {
            return Ok(Pushed::Closed);
        }
        if tail.wrapping_sub(c.head.word.load(Relaxed)) == N as u64 {
            return Ok(Pushed::Full);
        }
        let Some(locked) = self.lock(wait)? else {
            return Ok(Pushed::LockHeld);
        };
        // Under the lock only `close` changes `tail` (its closed bit) and nobody else `head`.
        let tail = c.tail.word.load(Relaxed);
        let head = c.head.word.load(Relaxed);
        if tail & CLOSED != 0 {
            return Ok(Pushed::Closed);
        }
        self.check_counters(tail, head)?;
        if tail - head == N as u64 {
            return Ok(Pushed::Full);
        }
        // SAFETY: `tail - head < N`, so slot `tail % N` holds no published element; the lock
        // keeps every other producer and consumer away from it until `tail` advances.
        unsafe { self.write_slot(tail, value) };
        let published = c
            .tail
            .word
            .compare_exchange(tail, tail + 1, SeqCst, Relaxed)
            .is_ok();
        drop(locked);
        if !published {
            // Closed after our look: the element was never visible.
            return Ok(Pushed::Closed);
        }
        notify(&c.not_empty, self.spsc);
        Ok(Pushed::Done)
    }

    /// Pops the front element into `out` (`Popped::Value` says it holds it), copying it once.
    pub(super) fn mpmc_pop(&self, wait: Wait, out: &mut MaybeUninit<T>) -> Result<Popped<()>> {
        let c = self.control();
        // Head first: if the tail read after it equals it, the queue was empty at that moment
        // (acquire keeps the two loads in that order on weakly ordered processors).
        let head = c.head.word.load(Acquire);
        let tail = c.tail.word.load(Acquire);
        if tail & !CLOSED == head {
            return Ok(if tail & CLOSED != 0 {
                Popped::Closed
            } else {
                Popped::Empty
            });
        }
        let Some(locked) = self.lock(wait)? else {
            return Ok(Popped::LockHeld);
        };
        let tail = c.tail.word.load(Acquire) & !CLOSED;
        let head = c.head.word.load(Relaxed);
        self.check_counters(tail, head)?;
        if tail == head {
            // Another consumer took it; whether closed is for the caller's next look.
            return Ok(Popped::Empty);
        }
        // SAFETY: `head < tail`: slot `head % N` holds a complete, published element, and the
        // lock keeps other consumers (and the producer that would reuse the slot) away.
        unsafe { self.read_slot(head, out) };
        c.head.word.store(head + 1, SeqCst);
        drop(locked);
        notify(&c.not_full, self.spsc);
        Ok(Popped::Value(()))
    }

    /// Takes the region's mutex for one MPMC operation, through the same lock code as a value
    /// ([`Region::lock_step`](crate::region::Region::lock_step)); `None` if another handle held it
    /// for longer than `wait` allows
    /// (with [`Wait::No`], through [`TRY_LOCK_ATTEMPTS`] attempts).
    pub(super) fn lock(&self, wait: Wait) -> Result<Option<StepLock<'_>>> {
        match self.region.lock_step(wait, TRY_LOCK_ATTEMPTS) {
            Ok(locked) => Ok(Some(locked)),
            Err(not_locked) => match not_locked.into_error(&self.region) {
                None => Ok(None),
                Some(error) => Err(error),
            },
        }
    }
}

/// How long one attempt may wait for an MPMC lock: until `deadline`, forever without one.
pub(super) fn wait_until(deadline: Option<Instant>) -> Wait {
    deadline.map_or(Wait::Forever, |deadline| {
        Wait::For(deadline.saturating_duration_since(Instant::now()))
    })
}
