//! Loans, batches and iteration of [`ShmQueue`]: writing and reading elements in place, and
//! moving many elements with one publish.
//!
//! Everything here runs on two steps of the queue protocol (see "Protocol" in the module docs):
//!
//! - [`reserve_room`](ShmQueue::reserve_room) finds free slots after `tail` (SPSC: as the
//!   producer; MPMC: under the queue's lock, which the returned [`Claim`] keeps), and
//!   [`publish`](ShmQueue::publish) advances `tail` past the ones written, in one
//!   compare-and-swap that fails if the queue was closed meanwhile;
//! - [`reserve_ready`](ShmQueue::reserve_ready) finds published elements from `head`, and
//!   [`release`](ShmQueue::release) advances `head` past the ones read, in one store.
//!
//! Between the two steps the slots are the caller's: nothing else writes them (the SPSC role or
//! the MPMC lock), nobody else reads them (they are outside `head..tail` for a consumer, or
//! inside it for a producer). A process killed between the two steps moved no counter, so it
//! left the queue as it found it: a half-written slot that no consumer can see (the next
//! producer writes it again), or elements that the next consumer reads again.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr;
use std::sync::atomic::Ordering::{Acquire, Relaxed, SeqCst};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::format::CLOSED;
use crate::layout::ShmType;
use crate::lock::{StepLock, Wait};
use crate::wait::{notify, region_removed, sleep_until};

use super::mpmc::wait_until;
use super::spsc::Role;
use super::{keep_spinning, ShmQueue, LOCK_HELD};

/// Slots claimed by one producer or consumer between its look at the counters and its publish
/// (or release): `count` slots from element number `first`. In MPMC mode the queue's lock is
/// held for as long as the claim lives, and dropping the claim releases it having moved nothing.
pub(super) struct Claim<'q> {
    pub(super) first: u64,
    pub(super) count: u64,
    _locked: Option<StepLock<'q>>,
}

/// What one attempt to claim slots found.
pub(super) enum Attempt<R> {
    Ready(R),
    /// Full (for a producer) or empty (for a consumer).
    NotYet,
    /// Closed; for a consumer, also empty.
    Closed,
    /// MPMC: another handle kept the lock (see `Pushed::LockHeld`).
    LockHeld,
}

/// Which side of the queue a wait is on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Producer,
    Consumer,
}

impl<T: ShmType, const N: usize> ShmQueue<T, N> {
    /// Claims up to `max` (at least 1) free slots after `tail`, as the producer.
    pub(super) fn reserve_room(&self, max: u64, wait: Wait) -> Result<Attempt<Claim<'_>>> {
        debug_assert!(max > 0);
        let c = self.control();
        if self.spsc {
            self.claim(Role::Producer)?;
            // A closed queue lends nothing (the publish would fail anyway, after the caller's
            // writing). `tail` is this producer's own line: the look costs no transfer.
            if c.tail.word.load(Relaxed) & CLOSED != 0 {
                return Ok(Attempt::Closed);
            }
            let tail = self.next_tail.get();
            let mut free = N as u64 - (tail - self.seen_head.get());
            if free < max {
                let head = c.head.word.load(Acquire);
                self.check_counters(tail, head)?;
                self.seen_head.set(head);
                free = N as u64 - (tail - head);
            }
            if free == 0 {
                return Ok(Attempt::NotYet);
            }
            return Ok(Attempt::Ready(Claim {
                first: tail,
                count: free.min(max),
                _locked: None,
            }));
        }
        // MPMC, as `mpmc_push`: full or closed is reported without the lock.
        let tail = c.tail.word.load(Acquire);
        if tail & CLOSED != 0 {
            return Ok(Attempt::Closed);
        }
        if tail.wrapping_sub(c.head.word.load(Relaxed)) == N as u64 {
            return Ok(Attempt::NotYet);
        }
        let Some(locked) = self.lock(wait)? else {
            return Ok(Attempt::LockHeld);
        };
        // Under the lock only `close` changes `tail` (its closed bit) and nobody else `head`.
        let tail = c.tail.word.load(Relaxed);
        let head = c.head.word.load(Relaxed);
        if tail & CLOSED != 0 {
            return Ok(Attempt::Closed);
        }
        self.check_counters(tail, head)?;
        let free = N as u64 - (tail - head);
        if free == 0 {
            return Ok(Attempt::NotYet);
        }
        Ok(Attempt::Ready(Claim {
            first: tail,
            count: free.min(max),
            _locked: Some(locked),
        }))
    }

    /// Publishes the first `written` slots of `claim` (all written since it was made) with one
    /// advance of `tail`, then wakes sleeping consumers. `Ok(false)`: the queue was closed
    /// meanwhile, and nothing became visible.
    pub(super) fn publish(&self, claim: Claim<'_>, written: u64) -> Result<bool> {
        debug_assert!(written <= claim.count);
        if written == 0 {
            return Ok(true);
        }
        let c = self.control();
        let tail = claim.first;
        let swapped = c
            .tail
            .word
            .compare_exchange(tail, tail + written, SeqCst, Relaxed);
        // The lock (MPMC) is released only after the publish.
        drop(claim);
        match swapped {
            Ok(_) => {}
            // Under the SPSC role or the MPMC lock only `close` moves `tail`.
            Err(now) if now == tail | CLOSED => return Ok(false),
            Err(now) => {
                return Err(self.corrupt(format!(
                    "its tail moved from {tail} to {now} under the producer that held its slots"
                )))
            }
        }
        if self.spsc {
            self.next_tail.set(tail + written);
        }
        notify(&c.not_empty, self.spsc);
        Ok(true)
    }

    /// Claims up to `max` (at least 1) published elements from `head`, as a consumer.
    pub(super) fn reserve_ready(&self, max: u64, wait: Wait) -> Result<Attempt<Claim<'_>>> {
        debug_assert!(max > 0);
        let c = self.control();
        if self.spsc {
            self.claim(Role::Consumer)?;
            let head = self.next_head.get();
            let mut ready = self.seen_tail.get() - head;
            if ready < max {
                let tail = c.tail.word.load(Acquire);
                self.check_counters(tail & !CLOSED, head)?;
                self.seen_tail.set(tail & !CLOSED);
                ready = (tail & !CLOSED) - head;
                self.last_batch.set(ready);
                if ready == 0 {
                    return Ok(if tail & CLOSED != 0 {
                        Attempt::Closed
                    } else {
                        Attempt::NotYet
                    });
                }
            }
            return Ok(Attempt::Ready(Claim {
                first: head,
                count: ready.min(max),
                _locked: None,
            }));
        }
        // MPMC, as `mpmc_pop`: empty is reported without the lock.
        let head = c.head.word.load(Acquire);
        let tail = c.tail.word.load(Acquire);
        if tail & !CLOSED == head {
            return Ok(if tail & CLOSED != 0 {
                Attempt::Closed
            } else {
                Attempt::NotYet
            });
        }
        let Some(locked) = self.lock(wait)? else {
            return Ok(Attempt::LockHeld);
        };
        let tail = c.tail.word.load(Acquire) & !CLOSED;
        let head = c.head.word.load(Relaxed);
        self.check_counters(tail, head)?;
        if tail == head {
            // Another consumer took them; whether closed is for the caller's next look.
            return Ok(Attempt::NotYet);
        }
        Ok(Attempt::Ready(Claim {
            first: head,
            count: (tail - head).min(max),
            _locked: Some(locked),
        }))
    }

    /// Frees the first `read` slots of `claim` with one store of `head`, then wakes sleeping
    /// producers.
    pub(super) fn release(&self, claim: Claim<'_>, read: u64) {
        debug_assert!(read <= claim.count);
        if read == 0 {
            return;
        }
        let c = self.control();
        let head = claim.first + read;
        c.head.word.store(head, SeqCst);
        drop(claim);
        if self.spsc {
            self.next_head.set(head);
        }
        notify(&c.not_full, self.spsc);
    }

    /// Waits, as `push_until` and `pop_until` do (spinning, then sleeping on the side's event,
    /// looking for a removal after a quiet sleep), until `attempt` claims slots. `Ok(None)`:
    /// the queue is closed (for a consumer: and empty).
    pub(super) fn wait_for<R>(
        &self,
        side: Side,
        deadline: Option<Instant>,
        timeout: Duration,
        mut attempt: impl FnMut(Wait) -> Result<Attempt<R>>,
    ) -> Result<Option<R>> {
        let mut start = None;
        let mut polls = 0u32;
        let mut quiet = false;
        loop {
            match attempt(wait_until(deadline))? {
                Attempt::Ready(ready) => return Ok(Some(ready)),
                Attempt::Closed => return Ok(None),
                Attempt::LockHeld => return Err(self.timeout(LOCK_HELD, timeout)),
                Attempt::NotYet => {}
            }
            if std::mem::take(&mut quiet) && region_removed(&self.region) {
                return Err(self.removed());
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(self.timeout(
                    match side {
                        Side::Producer => "free space (the queue stayed full)",
                        Side::Consumer => "an element (the queue stayed empty)",
                    },
                    timeout,
                ));
            }
            if keep_spinning(&mut polls, &mut start) {
                continue;
            }
            let c = self.control();
            quiet = match side {
                Side::Producer => sleep_until(&c.not_full, self.spsc, deadline, || {
                    let head = c.head.word.load(SeqCst);
                    let tail = c.tail.word.load(SeqCst);
                    tail & CLOSED != 0 || (tail.wrapping_sub(head)) < N as u64
                }),
                Side::Consumer => sleep_until(&c.not_empty, self.spsc, deadline, || {
                    c.tail.word.load(SeqCst) != c.head.word.load(SeqCst)
                }),
            };
        }
    }

    /// Copies `values` into the slots of elements `first..first + values.len()`, in at most
    /// two runs (the ring wraps once at most, since `values.len() <= N`).
    ///
    /// # Safety
    ///
    /// The caller holds a [`Claim`] of those slots from [`reserve_room`](Self::reserve_room).
    unsafe fn copy_in(&self, first: u64, values: &[T]) {
        let start = (first % N as u64) as usize;
        let run = values.len().min(N - start);
        // SAFETY: slots `start..start + run` lie inside the ring (`run <= N - start`); the
        // claim makes them this caller's alone (the caller's obligation), and a local slice
        // never overlaps shared memory.
        unsafe { ptr::copy_nonoverlapping(values.as_ptr(), self.slot(first), run) };
        // SAFETY: as above, for slots `0..values.len() - run` (`values.len() <= N`), the run
        // after the ring wraps (empty when it does not).
        unsafe {
            ptr::copy_nonoverlapping(values[run..].as_ptr(), self.slot(0), values.len() - run)
        };
    }

    /// Copies the elements `first..first + out.len()` into `out`, in at most two runs.
    ///
    /// # Safety
    ///
    /// The caller holds a [`Claim`] of those slots from [`reserve_ready`](Self::reserve_ready).
    unsafe fn copy_out(&self, first: u64, out: &mut [T]) {
        let start = (first % N as u64) as usize;
        let run = out.len().min(N - start);
        let wrapped = out.len() - run;
        // SAFETY: as in `copy_in`: inside the ring, published, and no producer writes them
        // until this caller releases them.
        unsafe { ptr::copy_nonoverlapping(self.slot(first), out.as_mut_ptr(), run) };
        // SAFETY: the same, for the run after the ring wraps.
        unsafe { ptr::copy_nonoverlapping(self.slot(0), out[run..].as_mut_ptr(), wrapped) };
    }

    /// Pushes as many of `values` as fit now with one publish; how many.
    pub(super) fn push_slice_once(&self, values: &[T], wait: Wait) -> Result<Attempt<usize>> {
        let max = values.len().min(N) as u64;
        Ok(match self.reserve_room(max, wait)? {
            Attempt::Ready(claim) => {
                let count = claim.count;
                // SAFETY: the claim holds slots `first..first + count`, `count <= max`.
                unsafe { self.copy_in(claim.first, &values[..count as usize]) };
                if self.publish(claim, count)? {
                    Attempt::Ready(count as usize)
                } else {
                    Attempt::Closed
                }
            }
            Attempt::NotYet => Attempt::NotYet,
            Attempt::Closed => Attempt::Closed,
            Attempt::LockHeld => Attempt::LockHeld,
        })
    }

    /// Pops as many elements as `out` holds and are queued now, with one release; how many.
    pub(super) fn pop_into_once(&self, out: &mut [T], wait: Wait) -> Result<Attempt<usize>> {
        let max = out.len().min(N) as u64;
        Ok(match self.reserve_ready(max, wait)? {
            Attempt::Ready(claim) => {
                let count = claim.count;
                // SAFETY: the claim holds published elements `first..first + count`.
                unsafe { self.copy_out(claim.first, &mut out[..count as usize]) };
                self.release(claim, count);
                Attempt::Ready(count as usize)
            }
            Attempt::NotYet => Attempt::NotYet,
            Attempt::Closed => Attempt::Closed,
            Attempt::LockHeld => Attempt::LockHeld,
        })
    }

    /// `push_slice` and `push_slice_timeout`: as many publishes as it takes room to appear.
    pub(super) fn push_slice_until(
        &self,
        mut values: &[T],
        deadline: Option<Instant>,
        timeout: Duration,
    ) -> Result<()> {
        while !values.is_empty() {
            let pushed = self.wait_for(Side::Producer, deadline, timeout, |wait| {
                self.push_slice_once(values, wait)
            })?;
            let Some(pushed) = pushed else {
                return Err(self.closed());
            };
            values = &values[pushed..];
        }
        Ok(())
    }

    /// `pop_into` and `pop_into_timeout`: 0 once closed and empty.
    pub(super) fn pop_into_until(
        &self,
        out: &mut [T],
        deadline: Option<Instant>,
        timeout: Duration,
    ) -> Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let popped = self.wait_for(Side::Consumer, deadline, timeout, |wait| {
            self.pop_into_once(out, wait)
        })?;
        Ok(popped.unwrap_or(0))
    }

    /// A loan of the next free slot, zeroed; `Wait::No` with no deadline is `try_loan`.
    pub(super) fn loan_until(
        &self,
        wait: Option<(Option<Instant>, Duration)>,
    ) -> Result<PushLoan<'_, T, N>> {
        let claim = match wait {
            None => match self.reserve_room(1, Wait::No)? {
                Attempt::Ready(claim) => claim,
                Attempt::NotYet | Attempt::LockHeld => {
                    return Err(Error::QueueFull {
                        name: self.name().to_string(),
                        capacity: N,
                        message: None,
                    })
                }
                Attempt::Closed => return Err(self.closed()),
            },
            Some((deadline, timeout)) => self
                .wait_for(Side::Producer, deadline, timeout, |wait| {
                    self.reserve_room(1, wait)
                })?
                .ok_or_else(|| self.closed())?,
        };
        // SAFETY: the claim holds this slot: nobody else writes or reads it until it is
        // published, and zero bytes are a valid `T` (`ShmType` implies `Pod`).
        unsafe { ptr::write_bytes(self.slot(claim.first), 0, 1) };
        Ok(PushLoan {
            queue: self,
            claim: Some(claim),
            _not_send: PhantomData,
        })
    }

    /// A loan of the front element; `None` for `try_pop_loan` means nothing to take now.
    pub(super) fn pop_loan_until(
        &self,
        wait: Option<(Option<Instant>, Duration)>,
    ) -> Result<Option<PopLoan<'_, T, N>>> {
        let claim = match wait {
            None => match self.reserve_ready(1, Wait::No)? {
                Attempt::Ready(claim) => Some(claim),
                Attempt::NotYet | Attempt::LockHeld | Attempt::Closed => None,
            },
            Some((deadline, timeout)) => {
                self.wait_for(Side::Consumer, deadline, timeout, |wait| {
                    self.reserve_ready(1, wait)
                })?
            }
        };
        Ok(claim.map(|claim| PopLoan {
            queue: self,
            claim: Some(claim),
            _not_send: PhantomData,
        }))
    }
}

/// The next free slot of a [`ShmQueue`], lent to a producer to write in place: from
/// [`ShmQueue::loan`], [`try_loan`](ShmQueue::try_loan) or
/// [`loan_timeout`](ShmQueue::loan_timeout).
///
/// It dereferences (mutably) to the slot's `T`, which starts zeroed. [`commit`](Self::commit)
/// publishes it; dropping the loan without committing (also while unwinding from a panic)
/// publishes nothing, and the slot is the next push's or loan's.
///
/// While it lives it holds the handle (the loan borrows it mutably) and, in
/// [`QueueMode::Mpmc`](crate::QueueMode::Mpmc), the queue's lock: every other producer and
/// consumer of an MPMC queue waits until the loan is committed or dropped. In SPSC mode nobody
/// waits: the slot is the producer's own.
///
/// A process killed holding a loan leaves the queue as it found it: the slot was never
/// published, so no consumer sees its half-written bytes, and the next producer (SPSC: the
/// one that takes the role over; MPMC: whoever takes the lock next) writes it again at once.
#[must_use = "a loan publishes nothing until committed"]
pub struct PushLoan<'q, T: ShmType, const N: usize> {
    queue: &'q ShmQueue<T, N>,
    /// `None` once committed.
    claim: Option<Claim<'q>>,
    /// The MPMC lock belongs to the thread that took it.
    _not_send: PhantomData<*const ()>,
}

impl<T: ShmType, const N: usize> PushLoan<'_, T, N> {
    /// Publishes the element: consumers can pop it from now on, and a sleeping one is woken.
    ///
    /// # Errors
    ///
    /// [`Error::QueueClosed`] if the queue was closed while the loan was held (the element was
    /// never visible), [`Error::Corrupt`] if a peer broke the counters.
    pub fn commit(mut self) -> Result<()> {
        let Some(claim) = self.claim.take() else {
            unreachable!("a loan is committed only once");
        };
        if self.queue.publish(claim, 1)? {
            Ok(())
        } else {
            Err(self.queue.closed())
        }
    }

    fn slot(&self) -> *mut T {
        match &self.claim {
            Some(claim) => self.queue.slot(claim.first),
            None => unreachable!("a committed loan is gone"),
        }
    }
}

impl<T: ShmType, const N: usize> Deref for PushLoan<'_, T, N> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the slot is inside the mapping, which `queue` keeps; the claim keeps every
        // other handle of shmstore from writing or reading it (the SPSC producer role, or the
        // MPMC lock), and the loan holds the handle mutably borrowed, so this handle does not
        // touch it either; its bytes are a valid `T` (zeroed, then written as `T`).
        unsafe { &*self.slot() }
    }
}

impl<T: ShmType, const N: usize> DerefMut for PushLoan<'_, T, N> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference to the slot.
        unsafe { &mut *self.slot() }
    }
}

impl<T: ShmType, const N: usize> std::fmt::Debug for PushLoan<'_, T, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushLoan")
            .field("queue", &self.queue.name())
            .field("element", &self.claim.as_ref().map(|claim| claim.first))
            .finish()
    }
}

/// The front element of a [`ShmQueue`], lent to a consumer to read in place: from
/// [`ShmQueue::pop_loan`], [`try_pop_loan`](ShmQueue::try_pop_loan) or
/// [`pop_loan_timeout`](ShmQueue::pop_loan_timeout).
///
/// It dereferences to the element. Dropping the loan (or [`release`](Self::release)) removes
/// the element from the queue and frees its slot; [`keep`](Self::keep) ends the loan leaving
/// the element at the front, for the next pop. A loan dropped while its thread unwinds from a
/// panic keeps the element too: an element is consumed only by a consumer that finished with
/// it, as when a consumer is killed holding the loan: the element stays in the queue and the
/// next consumer receives it again (at-least-once delivery for a killed consumer).
///
/// As a [`PushLoan`], it holds the handle, and in MPMC mode the queue's lock, while it lives.
pub struct PopLoan<'q, T: ShmType, const N: usize> {
    queue: &'q ShmQueue<T, N>,
    /// `None` once released or kept.
    claim: Option<Claim<'q>>,
    _not_send: PhantomData<*const ()>,
}

impl<T: ShmType, const N: usize> PopLoan<'_, T, N> {
    /// Removes the element from the queue (as dropping the loan does) and wakes a sleeping
    /// producer.
    pub fn release(self) {
        drop(self);
    }

    /// Ends the loan without removing the element: it stays at the front, and the next pop
    /// (or pop loan) of any consumer receives it.
    pub fn keep(mut self) {
        // Dropping the claim moves no counter (and releases the MPMC lock).
        self.claim = None;
    }
}

impl<T: ShmType, const N: usize> Deref for PopLoan<'_, T, N> {
    type Target = T;

    fn deref(&self) -> &T {
        let Some(claim) = &self.claim else {
            unreachable!("a released loan is gone");
        };
        // SAFETY: the slot is inside the mapping, which `queue` keeps; the element is
        // published and complete (`head < tail` at the claim), and no producer writes the slot
        // before `head` moves past it, which only this loan does; in MPMC mode the lock keeps
        // other consumers away. Its bytes are a valid `T` (`Pod`).
        unsafe { &*self.queue.slot(claim.first) }
    }
}

impl<T: ShmType, const N: usize> Drop for PopLoan<'_, T, N> {
    fn drop(&mut self) {
        if let Some(claim) = self.claim.take() {
            if !std::thread::panicking() {
                self.queue.release(claim, 1);
            }
        }
    }
}

impl<T: ShmType, const N: usize> std::fmt::Debug for PopLoan<'_, T, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PopLoan")
            .field("queue", &self.queue.name())
            .field("element", &self.claim.as_ref().map(|claim| claim.first))
            .finish()
    }
}

/// The elements queued when [`ShmQueue::drain`] was called, popped one by one without waiting.
///
/// Each item is a `Result`: an error (another handle holds the SPSC consumer role, corrupt
/// counters) ends the iteration after it is yielded. It also ends early when the queue turns
/// out empty (other consumers took the rest) and, in MPMC mode, when another handle holds the
/// queue's lock (a loan, say) through a few attempts, as [`ShmQueue::try_pop`].
#[derive(Debug)]
pub struct QueueDrain<'q, T: ShmType, const N: usize> {
    queue: &'q ShmQueue<T, N>,
    left: usize,
}

impl<T: ShmType, const N: usize> Iterator for QueueDrain<'_, T, N> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        if self.left == 0 {
            return None;
        }
        match self.queue.try_pop() {
            Ok(Some(value)) => {
                self.left -= 1;
                Some(Ok(value))
            }
            Ok(None) => {
                self.left = 0;
                None
            }
            Err(error) => {
                self.left = 0;
                Some(Err(error))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left))
    }
}

/// Every element of a [`ShmQueue`] until it is closed and empty, each popped with a blocking
/// [`pop`](ShmQueue::pop): from [`ShmQueue::iter`] or `for x in &queue`.
///
/// Each item is a `Result`: an error of `pop` (the queue removed while waiting, another handle
/// holds the SPSC consumer role, corrupt counters) ends the iteration after it is yielded.
#[derive(Debug)]
pub struct QueueIter<'q, T: ShmType, const N: usize> {
    queue: &'q ShmQueue<T, N>,
    done: bool,
}

impl<T: ShmType, const N: usize> Iterator for QueueIter<'_, T, N> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        if self.done {
            return None;
        }
        let popped = self.queue.pop();
        self.done = !matches!(popped, Ok(Some(_)));
        popped.transpose()
    }
}

impl<T: ShmType, const N: usize> std::iter::FusedIterator for QueueIter<'_, T, N> {}
impl<T: ShmType, const N: usize> std::iter::FusedIterator for QueueDrain<'_, T, N> {}

impl<'q, T: ShmType, const N: usize> IntoIterator for &'q ShmQueue<T, N> {
    type Item = Result<T>;
    type IntoIter = QueueIter<'q, T, N>;

    fn into_iter(self) -> QueueIter<'q, T, N> {
        self.iter()
    }
}

impl<T: ShmType, const N: usize> ShmQueue<T, N> {
    pub(super) fn drain_iter(&self) -> QueueDrain<'_, T, N> {
        QueueDrain {
            queue: self,
            left: self.len(),
        }
    }

    pub(super) fn blocking_iter(&self) -> QueueIter<'_, T, N> {
        QueueIter {
            queue: self,
            done: false,
        }
    }
}
