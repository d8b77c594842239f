//! `ShmQueue<T, N>`: a named, bounded queue of `T` between processes, and its options.
//!
//! # Protocol
//!
//! The payload of a queue region is a 256-byte control block followed by `N` slots of `T`
//! (`FORMAT.md`). Two monotonic 64-bit counters say what the slots hold: `tail` counts the
//! elements ever pushed, `head` the elements ever popped; element `i` lives in slot `i % N`.
//! Bit 63 of `tail` is the *closed* flag.
//!
//! - A push writes the slot at `tail`, then publishes it by advancing `tail` with a
//!   compare-and-swap that fails if the queue was closed meanwhile. A producer killed before
//!   the swap leaves a half-written slot that no consumer can see: the next push overwrites it.
//! - A pop copies the slot at `head` out, then frees it by advancing `head`. A consumer killed
//!   before that leaves the element in the queue (the next pop takes it again); killed after
//!   it, before `pop` returned, the element is gone with it. That is the only loss.
//! - In [`QueueMode::Spsc`] the one producer owns `tail` and the one consumer owns `head`, so
//!   neither takes a lock; each keeps a private copy of the other's counter and reads the
//!   shared one only when its copy says full (or empty). A role is claimed in shared memory, by
//!   a compare-and-swap of the role's `pid` word from 0 to the claimant's pid, which only a
//!   process with write access can do; its holder proves it is alive with a *read* lock on a
//!   byte of the object (`F_OFD_SETLK`, byte 0 for the producer, byte 1 for the consumer),
//!   taken before the swap and kept until the word is 0 again. The kernel drops the lock when
//!   the holder's handle closes or its process dies, so a second producer gets
//!   [`Error::RoleTaken`] and a replacement for a dead one takes the role over: it takes the
//!   *write* lock on the byte, which the kernel grants only when no handle holds a lock there,
//!   swaps the dead holder's pid for its own and turns its lock into a read lock. A read lock
//!   conflicts only with write locks, and only writers take those, so a process with read
//!   access cannot keep anyone from a free role (see `claim_role` in `spsc.rs`).
//! - In [`QueueMode::Mpmc`] (`mpmc.rs`) every push and pop runs under the region's robust
//!   mutex, taken through the same lock code as a value's (`lock`). A holder
//!   killed at any point leaves the counters consistent (each changes in one store, after the
//!   copy), so the next locker only marks the mutex consistent: nothing to roll back, nothing
//!   poisoned.
//!
//! # Sleeping and waking
//!
//! A blocked `pop` (or `push`) spins for a few microseconds, then sleeps on an *event*: a
//! futex word (`epoch`) and a count of sleepers, the eventcount of the `wait` module that a
//! value's `wait_for_change` uses too. It reads the epoch, counts itself in with a
//! sequentially consistent increment, re-checks the counters, and sleeps only if the epoch has
//! not moved. The other side publishes its counter with a sequentially consistent operation
//! and then reads the sleeper count: by that total order, either it sees the sleeper (and bumps
//! the epoch and wakes it) or the sleeper sees the new counter. With nobody asleep, a push or
//! pop makes no system call. In SPSC mode the count is a flag that the waker clears, so a sleep
//! costs one wake call however many pushes (or pops) land before the sleeper runs; the sleeper
//! clears it itself only when it wakes with the epoch unmoved (a timeout or a signal), which no
//! waker can then be relying on.
//!
//! A waker can die (or be stopped) inside a wake-up: after it cleared the SPSC flag or bumped
//! the epoch, before its futex wake. Its partner then sleeps with no flag set, so the pushes
//! (or pops) of a replacement would never wake it. Two things bound that:
//!
//! - a handle that takes an SPSC role wakes the other side once, unconditionally: a replacement
//!   for a dead peer wakes the survivor as it attaches;
//! - no sleep lasts longer than [`SLEEP_SLICE`](crate::wait::SLEEP_SLICE): a sleeper looks at
//!   the counters at least that often, woken or not, so even with no replacement (or a
//!   `close` whose caller died before its wake) it sees room, an element or the closed flag
//!   within a second.
//!
//! A process killed while asleep stays counted: in MPMC mode every later push or pop on that
//! side then makes one wake call; in SPSC mode the next holder of the role resets the count.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::sync::atomic::Ordering::{Acquire, SeqCst};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
pub use crate::format::QueueMode;
use crate::format::{
    Control, QueueShape, SharedBytes, CLOSED, MAX_PAYLOAD_ALIGN, QUEUE_CONTROL_SIZE,
};
use crate::layout::ShmType;
use crate::location::Location;
use crate::lock::Wait;
use crate::options::{common_setters, CommonOptions};
use crate::reboot;
use crate::region::{QueueSpec, Region, RegionSpec};
use crate::sys::object::Access;
use crate::wait::{region_removed, sleep_until, wake_unconditionally};

mod channel;
mod mpmc;
mod spsc;

pub use channel::{RecvLoan, SendLoan, ShmChannel, ShmChannelOptions};

use mpmc::wait_until;
use spsc::Role;

/// How long a blocked push or pop polls before it sleeps: long enough to catch a peer that is
/// about to act without paying for a wake-up, short against a scheduler tick.
const SPIN_FOR: Duration = Duration::from_micros(20);

/// A named, bounded queue of `T` in shared memory, between any number of processes.
///
/// `N` is the capacity, part of the queue's identity like `T`: opening checks both. Elements
/// are copied in and out whole; a consumer never sees half of one, even when the producer was
/// killed while writing it.
///
/// ```
/// use shmstore::{ShmQueue, ShmType};
///
/// #[derive(ShmType, Clone, Copy, Debug, PartialEq)]
/// #[repr(C)]
/// struct Order { id: u64, price: f64, qty: u32, side: u32 }
///
/// # let name = format!("doc-queue-{}", std::process::id());
/// // In the producer process:
/// let orders = ShmQueue::<Order, 1024>::open_or_create(&name)?;
/// orders.push(Order { id: 1, price: 101.5, qty: 10, side: 0 })?;
///
/// // In the consumer process (here, the same one):
/// let inbox = ShmQueue::<Order, 1024>::open(&name)?;
/// assert_eq!(inbox.pop()?, Some(Order { id: 1, price: 101.5, qty: 10, side: 0 }));
///
/// orders.close();               // consumers drain what is left, then pop() returns None
/// assert_eq!(inbox.pop()?, None);
/// # shmstore::unlink(&name)?;
/// # Ok::<(), shmstore::Error>(())
/// ```
///
/// # Crash safety
///
/// - A producer killed in the middle of a push never exposes the half-written element;
///   everything it pushed before is delivered.
/// - A consumer killed in the middle of a pop loses at most the element it was taking, and
///   only if it died after freeing the slot and before `pop` returned; killed earlier, the
///   element stays at the front for the next pop.
/// - Survivors never block forever on a dead peer: a lock a dead process held is recovered
///   (MPMC), a dead SPSC producer's or consumer's role can be taken over by a new handle, and
///   `push_timeout`/`pop_timeout` bound every wait.
/// - A sleeping `push` or `pop` whose peer died (or stopped) in the middle of waking it, after
///   it cleared the sleeper flag and before the futex wake, is woken by the handle that takes
///   over that peer's SPSC role, and in any case looks at the queue again within a second.
///
/// # Handles and threads
///
/// A handle is `Send` but not `Sync`: it keeps private copies of the counters (that is what
/// makes SPSC lock-free). Give each thread its own handle; opening one takes a few
/// microseconds. In SPSC mode each handle counts as its own producer or consumer.
pub struct ShmQueue<T: ShmType, const N: usize> {
    region: Region,
    spsc: bool,
    /// Which SPSC roles this handle holds (bit 0 producer, bit 1 consumer).
    roles: Cell<u8>,
    /// The producer's next `tail` (SPSC): it alone advances the shared one.
    next_tail: Cell<u64>,
    /// The producer's last look at `head`: a lower bound of the real one.
    seen_head: Cell<u64>,
    /// The consumer's next `head` (SPSC): it alone advances the shared one.
    next_head: Cell<u64>,
    /// The consumer's last look at `tail` (without the closed bit): a lower bound.
    seen_tail: Cell<u64>,
    /// How many new elements the consumer's last look at `tail` found (SPSC).
    last_batch: Cell<u64>,
    _type: PhantomData<fn() -> T>,
}

/// What one attempt to push did.
enum Pushed {
    Done,
    Full,
    Closed,
    /// MPMC: another handle held the lock until the deadline passed (for `try_push`, through
    /// `mpmc::TRY_LOCK_ATTEMPTS` attempts).
    LockHeld,
}

/// What one attempt to pop found.
enum Popped<T> {
    Value(T),
    Empty,
    /// Closed, and nothing left.
    Closed,
    /// MPMC: another handle held the lock until the deadline passed (for `try_pop`, through
    /// `mpmc::TRY_LOCK_ATTEMPTS` attempts).
    LockHeld,
}

const LOCK_HELD: &str = "its lock, which another handle kept holding";

impl<T: ShmType, const N: usize> ShmQueue<T, N> {
    const VALID: () = {
        assert!(N > 0, "a ShmQueue needs a capacity N of at least 1");
        assert!(
            size_of::<T>() > 0,
            "a ShmQueue of a zero-sized type would carry no data"
        );
        assert!(
            align_of::<T>() <= MAX_PAYLOAD_ALIGN,
            "a ShmType aligned to more than 4096 bytes cannot be placed in a page-aligned mapping"
        );
    };
    const SLOTS_OFFSET: usize = QueueShape::slots_offset(align_of::<T>());

    /// Creates a new, empty queue in the default mode ([`QueueMode::Mpmc`]) at `location`: a
    /// name (`&str`, `String`), a file (`&Path`, `PathBuf`) or a System V key
    /// ([`Location::sysv`]); see [`ShmQueueOptions`](ShmQueueOptions#where-the-queue-lives).
    /// [`Error::AlreadyExists`] if the name is taken. See [`options`](Self::options) for the
    /// mode and permissions.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] or [`Error::InvalidLocation`], [`Error::AlreadyExists`],
    /// [`Error::Io`].
    pub fn create(location: impl Into<Location>) -> Result<Self> {
        Self::options().create(location)
    }

    /// Opens the existing queue at `location` (a name, a file or a System V key, as for
    /// [`create`](Self::create)), checking that it is a queue of `T` with capacity `N`.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::WrongKind`] (it is a single value),
    /// [`Error::LayoutMismatch`] (another element type), [`Error::CapacityMismatch`], and those
    /// of [`Shm::open`](crate::Shm::open).
    pub fn open(location: impl Into<Location>) -> Result<Self> {
        Self::options().open(location)
    }

    /// Opens the queue at `location` (a name, a file or a System V key, as for
    /// [`create`](Self::create)), or creates it empty if it does not exist: safe to race from
    /// any number of processes.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open) and [`create`](Self::create).
    pub fn open_or_create(location: impl Into<Location>) -> Result<Self> {
        Self::options().open_or_create(location)
    }

    /// Options for creating or opening a queue: mode, permissions, timeouts, cleanup.
    pub fn options() -> ShmQueueOptions<T, N> {
        ShmQueueOptions::new()
    }

    fn from_region(mut region: Region, spec: &RegionSpec) -> Self {
        region.arm_unlink_on_drop(spec);
        let spsc = region
            .info()
            .queue
            .is_some_and(|queue| QueueMode::from_code(queue.mode) == QueueMode::Spsc);
        ShmQueue {
            region,
            spsc,
            roles: Cell::new(0),
            next_tail: Cell::new(0),
            seen_head: Cell::new(0),
            next_head: Cell::new(0),
            seen_tail: Cell::new(0),
            last_batch: Cell::new(0),
            _type: PhantomData,
        }
    }

    /// The queue's name (for a file or System V queue, its location as text).
    pub fn name(&self) -> &str {
        self.region.name()
    }

    /// Where the queue lives.
    pub fn location(&self) -> &Location {
        self.region.location()
    }

    /// Whether the location no longer refers to this handle's queue (removed, perhaps with a
    /// new one created under it), as [`Shm::is_removed`](crate::Shm::is_removed): a producer
    /// whose consumer removed the queue on its way out pushes into a queue nobody will pop.
    ///
    /// # Errors
    ///
    /// As [`Shm::is_removed`](crate::Shm::is_removed).
    pub fn is_removed(&self) -> Result<bool> {
        self.region.is_removed()
    }

    /// For a file-backed queue, writes it to disk and waits (see
    /// [`Shm::flush`](crate::Shm::flush)).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] on a write error.
    pub fn flush(&self) -> Result<()> {
        self.region.flush()
    }

    /// The capacity, `N`.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// The mode the queue was created with.
    pub fn mode(&self) -> QueueMode {
        if self.spsc {
            QueueMode::Spsc
        } else {
            QueueMode::Mpmc
        }
    }

    /// How many elements the queue holds now (a snapshot: others may push or pop meanwhile).
    pub fn len(&self) -> usize {
        self.control().len_and_closed(N).0
    }

    /// Whether the queue holds no element now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether [`close`](Self::close) was called, by any process.
    pub fn is_closed(&self) -> bool {
        self.control().tail.word.load(Acquire) & CLOSED != 0
    }

    /// Closes the queue for every process: pushes fail with [`Error::QueueClosed`] from now
    /// on, and consumers first receive everything pushed before, then `None`. Every sleeping
    /// producer and consumer is woken. Closing twice does nothing more; a closed queue stays
    /// closed (remove it and create a new one to reuse the name).
    pub fn close(&self) {
        let c = self.control();
        c.tail.word.fetch_or(CLOSED, SeqCst);
        wake_unconditionally(&c.not_empty, self.spsc);
        wake_unconditionally(&c.not_full, self.spsc);
    }

    /// Whether a live handle other than this one holds the producer role of an SPSC queue.
    /// `None` for an MPMC queue, whose producers are not tracked.
    ///
    /// It answers as taking the role would decide: a holder whose liveness lock is gone is
    /// not live; when only read locks sit on the role's byte (its holder's, or those of a
    /// process with read access only), the holder counts as live unless its pid is numbered
    /// in this PID namespace and no process has it. A holder in another namespace whose
    /// byte a reader locks therefore counts as live.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the lock cannot be queried.
    pub fn has_other_producer(&self) -> Result<Option<bool>> {
        self.has_other(Role::Producer)
    }

    /// Whether a live handle other than this one holds the consumer role of an SPSC queue.
    /// `None` for an MPMC queue. Decided as in
    /// [`has_other_producer`](Self::has_other_producer).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the lock cannot be queried.
    pub fn has_other_consumer(&self) -> Result<Option<bool>> {
        self.has_other(Role::Consumer)
    }

    /// Appends `value` if there is room, without waiting: neither for space nor, in MPMC
    /// mode, for the queue's lock.
    ///
    /// In MPMC mode, when another handle holds the queue's lock (its push or pop is under way,
    /// or its process was preempted or stopped in the middle of one) through
    /// a few attempts (a few microseconds of trying at most), this returns
    /// [`Error::QueueFull`] as if the queue were full, without appending: there is no room for
    /// this call *now*, and the value is the caller's to push again later. It never blocks
    /// behind that holder, whatever the holder does.
    ///
    /// ```
    /// # use shmstore::{Error, ShmQueue};
    /// # let name = format!("doc-try-push-{}", std::process::id());
    /// let q = ShmQueue::<u64, 2>::options().unlink_on_drop(true).create(&name)?;
    /// q.try_push(1)?;
    /// q.try_push(2)?;
    /// assert!(matches!(q.try_push(3), Err(Error::QueueFull { capacity: 2, .. })));
    /// # Ok::<(), shmstore::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::QueueFull`] (full, or the MPMC lock is held by another handle: see above),
    /// [`Error::QueueClosed`], [`Error::RoleTaken`] (SPSC: another handle is the producer),
    /// [`Error::Corrupt`] (a peer broke the counters).
    #[inline]
    pub fn try_push(&self, value: T) -> Result<()> {
        match self.push_once(&value, Wait::No)? {
            Pushed::Done => Ok(()),
            Pushed::Full | Pushed::LockHeld => Err(Error::QueueFull {
                name: self.name().to_string(),
                capacity: N,
            }),
            Pushed::Closed => Err(self.closed()),
        }
    }

    /// Appends `value`, waiting for room as long as it takes.
    ///
    /// # Errors
    ///
    /// [`Error::QueueClosed`] (also when the queue is closed while this waits),
    /// [`Error::Removed`] when the queue is removed from its location (or replaced) while this
    /// waits for room (nobody will pop from it again), and those of [`try_push`](Self::try_push)
    /// except `QueueFull`.
    #[inline]
    pub fn push(&self, value: T) -> Result<()> {
        self.push_until(&value, None, Duration::MAX)
    }

    /// Appends `value`, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when no room appeared in time, and those of [`push`](Self::push).
    pub fn push_timeout(&self, value: T, timeout: Duration) -> Result<()> {
        // A timeout too large to represent as a deadline means none.
        self.push_until(&value, Instant::now().checked_add(timeout), timeout)
    }

    /// Removes and returns the oldest element, or `None` if there is none to take now (open
    /// or closed: see [`is_closed`](Self::is_closed)). It never waits: neither for an element
    /// nor, in MPMC mode, for the queue's lock.
    ///
    /// In MPMC mode, `None` also means that another handle held the queue's lock (its push or
    /// pop was under way, or its process was preempted or stopped in the middle of one)
    /// through a few attempts (a few microseconds of trying at most): the queue may hold
    /// elements that this call could not take without waiting for that holder. Nothing was
    /// removed; call again later, or wait with [`pop`](Self::pop) or
    /// [`pop_timeout`](Self::pop_timeout).
    ///
    /// # Errors
    ///
    /// [`Error::RoleTaken`] (SPSC: another handle is the consumer), [`Error::Corrupt`].
    #[inline]
    pub fn try_pop(&self) -> Result<Option<T>> {
        Ok(match self.pop_once(Wait::No, false)? {
            Popped::Value(value) => Some(value),
            Popped::Empty | Popped::Closed | Popped::LockHeld => None,
        })
    }

    /// Removes and returns the oldest element, waiting for one as long as it takes. `None`
    /// once the queue is closed and empty, so a consumer loop reads
    /// `while let Some(x) = queue.pop()? { … }`.
    ///
    /// # Errors
    ///
    /// [`Error::Removed`] when the queue is removed from its location (or replaced) while this
    /// waits on it empty (nobody will push to it again), and those of
    /// [`try_pop`](Self::try_pop).
    #[inline]
    pub fn pop(&self) -> Result<Option<T>> {
        self.pop_until(None, Duration::MAX)
    }

    /// Like [`pop`](Self::pop), waiting at most `timeout` for an element.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when nothing arrived in time, and those of [`pop`](Self::pop).
    pub fn pop_timeout(&self, timeout: Duration) -> Result<Option<T>> {
        self.pop_until(Instant::now().checked_add(timeout), timeout)
    }

    fn push_until(&self, value: &T, deadline: Option<Instant>, timeout: Duration) -> Result<()> {
        // The clock is read only once the queue has been found full.
        let mut start = None;
        let mut polls = 0u32;
        // Set when a sleep ended without the event: then, if still full, look for a removal.
        let mut quiet = false;
        loop {
            match self.push_once(value, wait_until(deadline))? {
                Pushed::Done => return Ok(()),
                Pushed::Closed => return Err(self.closed()),
                Pushed::LockHeld => return Err(self.timeout(LOCK_HELD, timeout)),
                Pushed::Full => {}
            }
            if std::mem::take(&mut quiet) && region_removed(&self.region) {
                return Err(self.removed());
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(self.timeout("free space (the queue stayed full)", timeout));
            }
            if keep_spinning(&mut polls, &mut start) {
                continue;
            }
            let c = self.control();
            quiet = sleep_until(&c.not_full, self.spsc, deadline, || {
                let head = c.head.word.load(SeqCst);
                let tail = c.tail.word.load(SeqCst);
                // Room, closed, or corrupt counters (the next attempt reports those).
                tail & CLOSED != 0 || (tail.wrapping_sub(head)) < N as u64
            });
        }
    }

    fn pop_until(&self, deadline: Option<Instant>, timeout: Duration) -> Result<Option<T>> {
        let mut start = None;
        let mut polls = 0u32;
        // As in `push_until`: whatever is still queued is popped before a removal is reported.
        let mut quiet = false;
        loop {
            match self.pop_once(wait_until(deadline), true)? {
                Popped::Value(value) => return Ok(Some(value)),
                Popped::Closed => return Ok(None),
                Popped::LockHeld => return Err(self.timeout(LOCK_HELD, timeout)),
                Popped::Empty => {}
            }
            if std::mem::take(&mut quiet) && region_removed(&self.region) {
                return Err(self.removed());
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(self.timeout("an element (the queue stayed empty)", timeout));
            }
            if keep_spinning(&mut polls, &mut start) {
                continue;
            }
            let c = self.control();
            // Any difference means an element or the closed bit.
            quiet = sleep_until(&c.not_empty, self.spsc, deadline, || {
                c.tail.word.load(SeqCst) != c.head.word.load(SeqCst)
            });
        }
    }

    /// One attempt to push; `wait` says how long an MPMC push may wait for the lock.
    #[inline]
    fn push_once(&self, value: &T, wait: Wait) -> Result<Pushed> {
        if self.spsc {
            self.spsc_push(value)
        } else {
            self.mpmc_push(value, wait)
        }
    }

    /// One attempt to pop; `wait` as in [`push_once`](Self::push_once), `patient` for the
    /// blocking calls (see `REFRESH_PAUSES` in `spsc.rs`).
    #[inline]
    fn pop_once(&self, wait: Wait, patient: bool) -> Result<Popped<T>> {
        if self.spsc {
            self.spsc_pop(patient)
        } else {
            self.mpmc_pop(wait)
        }
    }

    /// A peer that wrote nonsense into the counters is reported, never trusted.
    #[inline]
    fn check_counters(&self, tail: u64, head: u64) -> Result<()> {
        match tail.checked_sub(head) {
            Some(len) if len <= N as u64 => Ok(()),
            _ => Err(self.corrupt(format!(
                "its counters say {tail} pushed and {head} popped, which a queue of {N} cannot hold"
            ))),
        }
    }

    /// The slot of element number `index`.
    #[inline]
    fn slot(&self, index: u64) -> *mut T {
        let at = Self::SLOTS_OFFSET + (index % N as u64) as usize * size_of::<T>();
        // SAFETY: the payload holds the control block and `N` slots of `T` from SLOTS_OFFSET
        // (the header was validated against this `T` and `N`), and `index % N < N`.
        unsafe { self.region.working_copy().add(at).cast::<T>() }
    }

    #[inline]
    fn control(&self) -> &Control {
        match self.region.payload().and_then(SharedBytes::view::<Control>) {
            Some(control) => control,
            // The header was validated as a queue of `N` elements of `T`: its payload
            // (64-byte aligned) starts with the control block.
            None => unreachable!("a queue's payload holds its control block"),
        }
    }

    fn removed(&self) -> Error {
        Error::Removed {
            name: self.name().to_string(),
        }
    }

    fn closed(&self) -> Error {
        Error::QueueClosed {
            name: self.name().to_string(),
        }
    }

    fn timeout(&self, waiting_for: &'static str, after: Duration) -> Error {
        Error::Timeout {
            name: self.name().to_string(),
            waiting_for,
            after,
        }
    }

    fn corrupt(&self, reason: String) -> Error {
        Error::corrupt(self.name(), reason)
    }
}

/// Polls for [`SPIN_FOR`] after the first failed attempt; `false` when it is time to sleep.
#[inline]
fn keep_spinning(polls: &mut u32, start: &mut Option<Instant>) -> bool {
    *polls += 1;
    if *polls % 16 == 0 && start.get_or_insert_with(Instant::now).elapsed() >= SPIN_FOR {
        return false;
    }
    std::hint::spin_loop();
    true
}

impl<T: ShmType, const N: usize> fmt::Debug for ShmQueue<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmQueue")
            .field("name", &self.name())
            .field("type", &T::LAYOUT.type_name())
            .field("capacity", &N)
            .field("mode", &self.mode())
            .field("len", &self.len())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// How to create or open a [`ShmQueue`]: `ShmQueue::<T, N>::options()`, then the mode,
/// permissions, timeouts and cleanup, then [`create`](Self::create), [`open`](Self::open) or
/// [`open_or_create`](Self::open_or_create) with the queue's [`Location`].
///
/// ```
/// use shmstore::{QueueMode, ShmQueue};
/// # let name = format!("doc-queue-options-{}", std::process::id());
/// let q = ShmQueue::<[u8; 64], 4096>::options()
///     .queue_mode(QueueMode::Spsc)   // one producer, one consumer, lock-free
///     .mode(0o600)
///     .unlink_on_drop(true)
///     .open_or_create(&name)?;
/// assert_eq!(q.mode(), QueueMode::Spsc);
/// # Ok::<(), shmstore::Error>(())
/// ```
///
/// # Where the queue lives
///
/// As for a value (see [`ShmOptions`](crate::ShmOptions#where-the-region-lives)): a `&str` or
/// `String` is a POSIX name, a `&Path` or `PathBuf` (or [`Location::path`]) a file, and
/// [`Location::sysv`] a System V segment.
///
/// ```
/// use shmstore::{Location, ShmQueue};
/// # let name = format!("doc-queue-where-{}", std::process::id());
/// # let dir = std::env::temp_dir().join(format!("doc-queue-where-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// # let key = 0x5e00_0000 | (std::process::id() as i32 & 0xffff);
/// let named = ShmQueue::<u64, 8>::options().unlink_on_drop(true).create(&name)?;
///
/// let path = dir.join("jobs.shm");
/// let jobs = ShmQueue::<u64, 8>::options().unlink_on_drop(true).create(&path)?;
/// jobs.push(7)?;
/// assert_eq!(ShmQueue::<u64, 8>::open(&path)?.pop()?, Some(7));
///
/// let segment = ShmQueue::<u64, 8>::options()
///     .unlink_on_drop(true)
///     .create(Location::sysv(key))?;
/// assert_eq!(segment.name(), format!("sysv:{:#010x}", key));
/// # drop((named, jobs));
/// # std::fs::remove_dir(&dir).unwrap();
/// # Ok::<(), shmstore::Error>(())
/// ```
///
/// An SPSC role in a System V segment is recorded as the holder's pid, since a segment has no
/// descriptor to lock: a replacement takes it over once that process is gone, and until a
/// reused pid exits, it may wrongly see the role as taken. A replacement in another PID
/// namespace than the holder's never takes it over (see [`QueueMode::Spsc`]).
#[must_use = "options do nothing until create, open or open_or_create is called"]
pub struct ShmQueueOptions<T: ShmType, const N: usize> {
    queue_mode: QueueMode,
    common: CommonOptions,
    _type: PhantomData<fn() -> T>,
}

impl<T: ShmType, const N: usize> Clone for ShmQueueOptions<T, N> {
    fn clone(&self) -> Self {
        ShmQueueOptions { ..*self }
    }
}

impl<T: ShmType, const N: usize> fmt::Debug for ShmQueueOptions<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("ShmQueueOptions");
        out.field("queue_mode", &self.queue_mode);
        self.common.debug_fields(&mut out);
        out.finish()
    }
}

impl<T: ShmType, const N: usize> Default for ShmQueueOptions<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: ShmType, const N: usize> ShmQueueOptions<T, N> {
    /// The defaults: [`QueueMode::Mpmc`], mode `0o600`, `open_timeout` 1 s, no unlink on drop,
    /// only queues of this user.
    pub fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = ShmQueue::<T, N>::VALID;
        ShmQueueOptions {
            queue_mode: QueueMode::Mpmc,
            common: CommonOptions::DEFAULT,
            _type: PhantomData,
        }
    }

    /// The mode of a created queue (default [`QueueMode::Mpmc`]). Openers follow the mode the
    /// queue was created with.
    pub fn queue_mode(mut self, queue_mode: QueueMode) -> Self {
        self.queue_mode = queue_mode;
        self
    }

    common_setters! {
        what: "queue",
        mode_note: "A queue is always opened for writing (popping writes `head`), so others \
                    need write permission."
    }

    fn spec(&self) -> RegionSpec {
        let queue = QueueSpec {
            mode: self.queue_mode.code(),
            capacity: N,
        };
        self.common.spec(&T::LAYOUT, false, false, Some(queue))
    }

    /// [`ShmQueue::create`] with these options: a new, empty queue at `location`.
    ///
    /// # Errors
    ///
    /// As [`ShmQueue::create`].
    pub fn create(self, location: impl Into<Location>) -> Result<ShmQueue<T, N>> {
        let spec = self.spec();
        Region::create(&location.into(), &spec, &mut clear_control)
            .map(|region| ShmQueue::from_region(region, &spec))
    }

    /// [`ShmQueue::open`] with these options.
    ///
    /// # Errors
    ///
    /// As [`ShmQueue::open`].
    pub fn open(self, location: impl Into<Location>) -> Result<ShmQueue<T, N>> {
        let spec = self.spec();
        reboot::open(&location.into(), &spec, Access::ReadWrite)
            .map(|region| ShmQueue::from_region(region, &spec))
    }

    /// [`ShmQueue::open_or_create`] with these options.
    ///
    /// # Errors
    ///
    /// As [`ShmQueue::open_or_create`].
    pub fn open_or_create(self, location: impl Into<Location>) -> Result<ShmQueue<T, N>> {
        let spec = self.spec();
        reboot::open_or_create(&location.into(), &spec, &mut clear_control)
            .map(|region| ShmQueue::from_region(region, &spec))
    }
}

/// A new queue is empty and open: a zeroed control block (a re-initialised abandoned object
/// may hold old bytes). The slots need no initialising: nothing reads a slot before it is
/// written.
fn clear_control(payload: &mut [u8]) {
    payload[..QUEUE_CONTROL_SIZE].fill(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_send_but_not_sync() {
        fn send<X: Send>() {}
        send::<ShmQueue<u64, 4>>();
        // Not `Sync`: the compile-fail test `tests/ui/fail/queue_is_not_sync.rs`.
    }
}
