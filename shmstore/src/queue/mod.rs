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
//! - A batch (`push_slice`, `pop_into`) or a loan (`loan`, `pop_loan`) runs the same two
//!   steps, over several slots or with the caller's code between them (`loan.rs`): one
//!   compare-and-swap publishes `k` slots, one store frees `k`.
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
//! A process killed while asleep stays counted until the next wake-up on its event: in MPMC
//! mode that wake call wakes nobody, so its caller clears the count (the count word's
//! generation moves on, see `wait::Registration`) and the pushes or pops after it make none;
//! in SPSC mode the waker clears the flag as it wakes, and the next holder of the role resets
//! it.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::mem::{align_of, size_of, MaybeUninit};
use std::sync::atomic::Ordering::{Acquire, SeqCst};
use std::time::{Duration, Instant};

use crate::atomic_copy::{copy_atomic, copy_atomic_unaligned};
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
use crate::wait::{
    region_removed, sleep_until, wake_unconditionally, Armed, WORDS_PER_COUNTED_SOURCE,
};
use crate::wait_set::QueueEvent;

mod channel;
mod loan;
mod mpmc;
mod spsc;

pub use channel::{RecvLoan, SendLoan, ShmChannel, ShmChannelOptions};
pub use loan::{PopLoan, PushLoan, QueueDrain, QueueIter};

use mpmc::wait_until;
use spsc::Role;

/// How long a blocked push or pop polls before it sleeps: long enough to catch a peer that is
/// about to act without paying for a wake-up, short against a scheduler tick.
const SPIN_FOR: Duration = Duration::from_micros(20);

/// A named, bounded queue of `T` in shared memory, between any number of processes.
///
/// `N` is the capacity, part of the queue's identity like `T`: opening checks both. Elements
/// are copied in and out whole ([`push`](Self::push), [`pop`](Self::pop), and many at a time
/// with [`push_slice`](Self::push_slice) and [`pop_into`](Self::pop_into)), or written and
/// read in place in their slot through a loan ([`loan`](Self::loan),
/// [`pop_loan`](Self::pop_loan)), which is how an element too large for a thread's stack
/// travels. A consumer never sees half of one, even when the producer was killed while
/// writing it. [`drain`](Self::drain) and `for x in &queue` iterate.
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
/// - A producer killed holding a [`PushLoan`] (or in the middle of a batch) exposes nothing,
///   and the next producer writes that slot again at once. A consumer killed holding a
///   [`PopLoan`] removed nothing: the element is delivered again (at-least-once).
/// - Survivors never block forever on a dead peer: a lock a dead process held is recovered
///   (MPMC), a dead SPSC producer's or consumer's role can be taken over by a new handle, and
///   `push_timeout`/`pop_timeout` bound every wait.
/// - A sleeping `push` or `pop` whose peer died (or stopped) in the middle of waking it, after
///   it cleared the sleeper flag and before the futex wake, is woken by the handle that takes
///   over that peer's SPSC role, and in any case looks at the queue again within a second.
///
/// # Handles and threads
///
/// A queue handle is `Send`, not `Sync`: open one per thread; they share the queue. Opening
/// one takes a few microseconds. Sharing one (`Arc<ShmQueue>`, a `&ShmQueue` in a scoped
/// thread) is refused at compile time with an error about `Cell<OpenOneHandlePerThread>`.
///
/// Why not `Sync`: an SPSC handle keeps private copies of the counters, and that is what makes
/// it lock-free: its push touches no shared line but the slot and `tail`, except when its copy
/// says full. Threads sharing it would need a lock around each whole push (or pop), which
/// would make them producers of one role, serialised, for the cost of an atomic
/// read-modify-write per element in the one-thread case as well. At the 50 M elements/s that
/// SPSC aims for, an element has 20 ns; an uncontended `parking_lot` lock around each SPSC
/// push and pop, measured on one thread pushing and popping 64-byte elements, took a push
/// and a pop from 334 to 358 instructions and from 32–35 to 39–42 ns of CPU time (README,
/// "Queues"). An MPMC handle needs no private state and could be shared, but the mode is chosen
/// at run time (and stored in the queue), not in the type, so the type cannot be `Sync` for
/// MPMC only. In SPSC mode each handle counts as its own producer or consumer; in MPMC mode
/// any number of handles push and pop.
///
/// # Capacity
///
/// `N` is a const generic, not a run-time value: the slot index is `i % N` with `N` known to
/// the compiler (a mask when it is a power of two, no division on the hot path), `capacity()`
/// is a constant, a capacity of 0 is refused at compile time, and opening checks `N` against
/// the header ([`Error::CapacityMismatch`]) like the element type. A queue whose depth comes
/// from configuration picks among a few `N`s (a `match` over the allowed depths), or carries
/// bytes in the byte channel, whose capacity is set at creation. A run-time-capacity
/// `ShmQueue` would be another type, not an option of this one.
pub struct ShmQueue<T: ShmType, const N: usize> {
    region: Region,
    spsc: bool,
    // The private state below is what makes the handle not `Sync`, and its compile error say
    // so: see `OpenOneHandlePerThread`.
    /// Which SPSC roles this handle holds (bit 0 producer, bit 1 consumer).
    roles: Roles,
    /// The producer's next `tail` (SPSC): it alone advances the shared one.
    next_tail: Private,
    /// The producer's last look at `head`: a lower bound of the real one.
    seen_head: Private,
    /// The consumer's next `head` (SPSC): it alone advances the shared one.
    next_head: Private,
    /// The consumer's last look at `tail` (without the closed bit): a lower bound.
    seen_tail: Private,
    /// How many new elements the consumer's last look at `tail` found (SPSC).
    last_batch: Private,
    _type: PhantomData<fn() -> T>,
}

/// A queue handle cannot be shared by threads: open one handle per thread (they share the
/// queue). Its name is what matters: every word of a handle's private state (its SPSC roles
/// and counters) is a `Cell` of it, so that the compile error of a handle (`ShmQueue`,
/// `ShmChannel`) shared by threads names only `Cell<OpenOneHandlePerThread>`, which says what
/// to do (`tests/ui/fail/queue_is_not_sync.rs`). A `Cell` of a one-word `Copy` newtype is a
/// `Cell<u64>` to the compiler: no cost. Relaxed atomics would make the handle `Sync`, but
/// cost a push and a pop 5 instructions more (334 to 339, callgrind).
#[derive(Clone, Copy)]
#[repr(transparent)]
struct OpenOneHandlePerThread(u64);

/// One word of a handle's private state (see [`OpenOneHandlePerThread`]).
struct Private(Cell<OpenOneHandlePerThread>);

impl Private {
    const fn new(value: u64) -> Self {
        Private(Cell::new(OpenOneHandlePerThread(value)))
    }

    #[inline(always)]
    fn get(&self) -> u64 {
        self.0.get().0
    }

    #[inline(always)]
    fn set(&self, value: u64) {
        self.0.set(OpenOneHandlePerThread(value));
    }
}

/// The SPSC roles a handle holds, as [`Role::bit`]s: a private word (see
/// [`OpenOneHandlePerThread`]).
struct Roles(Private);

impl Roles {
    const fn new() -> Self {
        Roles(Private::new(0))
    }

    #[inline(always)]
    fn get(&self) -> u8 {
        // Only `set` writes it, with a `u8`.
        self.0.get() as u8
    }

    #[inline(always)]
    fn set(&self, roles: u8) {
        self.0.set(u64::from(roles));
    }
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
        let spsc = stored_mode(&region) == QueueMode::Spsc;
        ShmQueue {
            region,
            spsc,
            roles: Roles::new(),
            next_tail: Private::new(0),
            seen_head: Private::new(0),
            next_head: Private::new(0),
            seen_tail: Private::new(0),
            last_batch: Private::new(0),
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
                message: None,
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
    #[inline(always)]
    pub fn push(&self, value: T) -> Result<()> {
        // The first SPSC attempt is inlined into the caller, so that the compiler can copy the
        // caller's value straight into the slot: a value passed by copy is otherwise copied
        // once more, into the argument, before the push copies it into the slot.
        if self.spsc {
            match self.spsc_push(&value)? {
                Pushed::Done => return Ok(()),
                Pushed::Closed => return Err(self.closed()),
                Pushed::Full | Pushed::LockHeld => {}
            }
        }
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
        let mut out = MaybeUninit::uninit();
        Ok(match self.pop_once(Wait::No, false, &mut out)? {
            // SAFETY: `Popped::Value` means the pop wrote the element into `out`.
            Popped::Value(()) => Some(unsafe { out.assume_init() }),
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
    #[inline(always)]
    pub fn pop(&self) -> Result<Option<T>> {
        // The first SPSC attempt is inlined into the caller (see `push`): the element is
        // copied from its slot into the value returned, which the compiler can then place
        // where the caller keeps it.
        if self.spsc {
            let mut out = MaybeUninit::uninit();
            match self.spsc_pop(true, &mut out)? {
                // SAFETY: `Popped::Value` means the pop wrote the element into `out`.
                Popped::Value(()) => return Ok(Some(unsafe { out.assume_init() })),
                Popped::Closed => return Ok(None),
                Popped::Empty | Popped::LockHeld => {}
            }
        }
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
        let mut out = MaybeUninit::uninit();
        loop {
            match self.pop_once(wait_until(deadline), true, &mut out)? {
                // SAFETY: `Popped::Value` means the pop wrote the element into `out`.
                Popped::Value(()) => return Ok(Some(unsafe { out.assume_init() })),
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

    /// One attempt to pop, into `out` (`Popped::Value` says it holds the element); `wait` as
    /// in [`push_once`](Self::push_once), `patient` for the blocking calls (see
    /// `REFRESH_PAUSES` in `spsc.rs`).
    #[inline]
    fn pop_once(&self, wait: Wait, patient: bool, out: &mut MaybeUninit<T>) -> Result<Popped<()>> {
        if self.spsc {
            self.spsc_pop(patient, out)
        } else {
            self.mpmc_pop(wait, out)
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

    /// Copies `value` into the slot of element `index`: a push's only copy of the element.
    ///
    /// # Safety
    ///
    /// No published element is in that slot, and no other handle writes it or reads it as an
    /// element until this handle publishes it (the caller holds the producer role, or the
    /// lock). A consumer misled by a forged counter may read it meanwhile, with atomic loads
    /// (see [`read_slot`](Self::read_slot)).
    #[inline(always)]
    unsafe fn write_slot(&self, index: u64, value: &T) {
        // SAFETY: `slot` is in bounds and aligned for `T` (the slots start at an offset aligned
        // for `T`, each `size_of::<T>()` long); `value` is a `T` outside the mapping, so the
        // two do not overlap; the caller has the slot to itself.
        unsafe { std::ptr::copy_nonoverlapping(value, self.slot(index), 1) };
    }

    /// Copies the slot of element `index` into `out`: a pop's only copy of the element.
    ///
    /// The copy is made of relaxed atomic loads (`atomic_copy`): a peer that forged the
    /// counters (README, "Threat model") can make a consumer read a slot that a producer is
    /// writing at that moment, and that must not be a data race in this process. It yields
    /// bytes, which any `ShmType` accepts (every bit pattern is a valid value), so `out` is
    /// a valid `T` afterwards.
    ///
    /// # Safety
    ///
    /// The slot holds a published element that no handle overwrites until this handle frees
    /// it (the caller holds the consumer role, or the lock), short of a peer breaking the
    /// protocol, which the atomic loads make harmless to this process.
    #[inline(always)]
    unsafe fn read_slot(&self, index: u64, out: &mut MaybeUninit<T>) {
        let (src, dst, len) = (
            self.slot(index).cast::<u8>(),
            out.as_mut_ptr().cast(),
            size_of::<T>(),
        );
        // Both copies below need the same: the slot is `size_of::<T>()` bytes in the mapping,
        // which lives as long as `self`; every access this process makes to it while it is
        // published is this relaxed atomic copy (the writer is done, or is the misbehaving peer
        // the caller's contract names); `out` is this call's own `T`-sized place, touched by
        // nothing else.
        if len % 8 == 0 {
            // SAFETY: as said above; and the slot is 8-byte aligned, as `copy_atomic` needs
            // (this branch is decided at compile time): the working copy is 64-byte aligned,
            // the slots start at a multiple of 256 (or of an alignment above that) and each is
            // a multiple of 8 bytes long.
            unsafe { copy_atomic(src, dst, len) };
        } else {
            // SAFETY: as said above; any alignment.
            unsafe { copy_atomic_unaligned(src, dst, len) };
        }
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

/// Loans, batches and iteration (`loan.rs`): elements written and read in place, many elements
/// moved with one publish, and the queue as an iterator.
impl<T: ShmType, const N: usize> ShmQueue<T, N> {
    /// Lends the next free slot to write an element in place, waiting for room as long as it
    /// takes: the way to push an element too large to build on the stack, or to fill one
    /// without a copy. The slot starts zeroed. [`PushLoan::commit`] publishes it; dropping
    /// the loan uncommitted (or unwinding from a panic) publishes nothing.
    ///
    /// The loan borrows the handle mutably. In [`QueueMode::Mpmc`] it also holds the queue's
    /// lock until committed or dropped: every other producer and consumer waits meanwhile, so
    /// keep MPMC loans short. A process killed holding a loan exposes nothing, and the slot is
    /// reused at once (see [`PushLoan`]).
    ///
    /// ```
    /// use shmstore::ShmQueue;
    ///
    /// // 4 MiB frames: too large to pass around by value on a thread's stack.
    /// type Frame = [u64; 512 * 1024];
    /// # let name = format!("doc-loan-{}", std::process::id());
    /// let mut frames = ShmQueue::<Frame, 2>::options().unlink_on_drop(true).create(&name)?;
    ///
    /// let mut frame = frames.loan()?;
    /// frame[0] = 42;
    /// frame[1..].fill(7);
    /// frame.commit()?;
    ///
    /// let frame = frames.pop_loan()?.expect("an element");
    /// assert_eq!((frame[0], frame[512 * 1024 - 1]), (42, 7));
    /// drop(frame); // removes it from the queue
    /// assert!(frames.is_empty());
    /// # Ok::<(), shmstore::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`push`](Self::push).
    pub fn loan(&mut self) -> Result<PushLoan<'_, T, N>> {
        self.loan_until(Some((None, Duration::MAX)))
    }

    /// Lends the next free slot if there is one now, without waiting (see [`loan`](Self::loan)).
    ///
    /// # Errors
    ///
    /// As [`try_push`](Self::try_push): [`Error::QueueFull`] also when another handle holds
    /// the MPMC lock (a loan, say) through a few attempts.
    pub fn try_loan(&mut self) -> Result<PushLoan<'_, T, N>> {
        self.loan_until(None)
    }

    /// Lends the next free slot, waiting at most `timeout` for room (see [`loan`](Self::loan)).
    ///
    /// # Errors
    ///
    /// As [`push_timeout`](Self::push_timeout).
    pub fn loan_timeout(&mut self, timeout: Duration) -> Result<PushLoan<'_, T, N>> {
        self.loan_until(Some((Instant::now().checked_add(timeout), timeout)))
    }

    /// Lends the front element to read in place, waiting for one as long as it takes; `None`
    /// once the queue is closed and empty. Dropping the [`PopLoan`] removes the element;
    /// [`PopLoan::keep`] leaves it at the front. As with [`loan`](Self::loan), the loan
    /// borrows the handle and, in MPMC mode, holds the queue's lock.
    ///
    /// A consumer killed holding the loan removed nothing: the next consumer receives the
    /// element again (at-least-once delivery, where `pop` may lose the element it was taking).
    ///
    /// ```
    /// use shmstore::ShmQueue;
    /// # let name = format!("doc-pop-loan-{}", std::process::id());
    /// let mut q = ShmQueue::<[u8; 64], 8>::options().unlink_on_drop(true).create(&name)?;
    /// q.push([1; 64])?;
    ///
    /// let peeked = q.pop_loan()?.expect("an element");
    /// assert_eq!(peeked[0], 1);
    /// peeked.keep(); // still queued
    /// assert_eq!(q.len(), 1);
    ///
    /// while let Some(element) = q.try_pop_loan()? {
    ///     assert_eq!(element[63], 1);
    /// } // each loan, dropped, removes its element
    /// assert!(q.is_empty());
    /// # Ok::<(), shmstore::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`pop`](Self::pop).
    pub fn pop_loan(&mut self) -> Result<Option<PopLoan<'_, T, N>>> {
        self.pop_loan_until(Some((None, Duration::MAX)))
    }

    /// Lends the front element if there is one now, without waiting; `None` as for
    /// [`try_pop`](Self::try_pop).
    ///
    /// # Errors
    ///
    /// As [`try_pop`](Self::try_pop).
    pub fn try_pop_loan(&mut self) -> Result<Option<PopLoan<'_, T, N>>> {
        self.pop_loan_until(None)
    }

    /// Lends the front element, waiting at most `timeout` for one.
    ///
    /// # Errors
    ///
    /// As [`pop_timeout`](Self::pop_timeout).
    pub fn pop_loan_timeout(&mut self, timeout: Duration) -> Result<Option<PopLoan<'_, T, N>>> {
        self.pop_loan_until(Some((Instant::now().checked_add(timeout), timeout)))
    }

    /// Appends every element of `values`, in order, waiting for room as long as it takes.
    /// Whatever fits at once is published together (one publish, one wake-up check), so a
    /// slice that fits in the free space is one publish, and a longer one goes in as room
    /// appears.
    ///
    /// On an error the elements before were published (for the count, push with
    /// [`try_push_slice`](Self::try_push_slice)).
    ///
    /// ```
    /// use shmstore::ShmQueue;
    /// # let name = format!("doc-push-slice-{}", std::process::id());
    /// let q = ShmQueue::<u32, 16>::options().unlink_on_drop(true).create(&name)?;
    /// q.push_slice(&[1, 2, 3])?;
    /// q.close();
    ///
    /// let mut out = [0; 8];
    /// assert_eq!(q.pop_into(&mut out)?, 3);
    /// assert_eq!(out[..3], [1, 2, 3]);
    /// assert_eq!(q.pop_into(&mut out)?, 0); // closed and empty
    /// # Ok::<(), shmstore::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`push`](Self::push).
    pub fn push_slice(&self, values: &[T]) -> Result<()> {
        self.push_slice_until(values, None, Duration::MAX)
    }

    /// As [`push_slice`](Self::push_slice), waiting at most `timeout` in all.
    ///
    /// # Errors
    ///
    /// As [`push_timeout`](Self::push_timeout); the elements before the error were published.
    pub fn push_slice_timeout(&self, values: &[T], timeout: Duration) -> Result<()> {
        self.push_slice_until(values, Instant::now().checked_add(timeout), timeout)
    }

    /// Appends as many of the first elements of `values` as there is room for now, with one
    /// publish, without waiting; how many (0 when full, or, in MPMC mode, when another handle
    /// holds the lock through a few attempts, as for [`try_push`](Self::try_push)).
    ///
    /// # Errors
    ///
    /// [`Error::QueueClosed`], [`Error::RoleTaken`], [`Error::Corrupt`].
    pub fn try_push_slice(&self, values: &[T]) -> Result<usize> {
        if values.is_empty() {
            return Ok(0);
        }
        match self.push_slice_once(values, Wait::No)? {
            loan::Attempt::Ready(pushed) => Ok(pushed),
            loan::Attempt::NotYet | loan::Attempt::LockHeld => Ok(0),
            loan::Attempt::Closed => Err(self.closed()),
        }
    }

    /// Waits for at least one element (as long as it takes), then removes as many as are
    /// queued, up to `out.len()`, with one release (one wake-up check), into the start of
    /// `out`; how many. 0 once the queue is closed and empty (or for an empty `out`).
    ///
    /// # Errors
    ///
    /// As [`pop`](Self::pop).
    pub fn pop_into(&self, out: &mut [T]) -> Result<usize> {
        self.pop_into_until(out, None, Duration::MAX)
    }

    /// As [`pop_into`](Self::pop_into), waiting at most `timeout` for the first element.
    ///
    /// # Errors
    ///
    /// As [`pop_timeout`](Self::pop_timeout).
    pub fn pop_into_timeout(&self, out: &mut [T], timeout: Duration) -> Result<usize> {
        self.pop_into_until(out, Instant::now().checked_add(timeout), timeout)
    }

    /// Removes as many elements as are queued now, up to `out.len()`, with one release,
    /// without waiting; how many (0: none to take now, as for [`try_pop`](Self::try_pop)).
    ///
    /// # Errors
    ///
    /// As [`try_pop`](Self::try_pop).
    pub fn try_pop_into(&self, out: &mut [T]) -> Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        match self.pop_into_once(out, Wait::No)? {
            loan::Attempt::Ready(popped) => Ok(popped),
            _ => Ok(0),
        }
    }

    /// The elements queued now, popped one by one as the iterator advances, never waiting
    /// (see [`QueueDrain`] for when it ends early). Items are `Result`s.
    ///
    /// ```
    /// use shmstore::ShmQueue;
    /// # let name = format!("doc-drain-{}", std::process::id());
    /// let q = ShmQueue::<u64, 8>::options().unlink_on_drop(true).create(&name)?;
    /// q.push_slice(&[1, 2, 3])?;
    /// let queued: Vec<u64> = q.drain().collect::<Result<_, _>>()?;
    /// assert_eq!(queued, [1, 2, 3]);
    /// # Ok::<(), shmstore::Error>(())
    /// ```
    pub fn drain(&self) -> QueueDrain<'_, T, N> {
        self.drain_iter()
    }

    /// Every element until the queue is closed and empty, each from a blocking
    /// [`pop`](Self::pop); also `for x in &queue`. Items are `Result`s (see [`QueueIter`]).
    ///
    /// ```
    /// use shmstore::ShmQueue;
    /// # let name = format!("doc-iter-{}", std::process::id());
    /// let q = ShmQueue::<u64, 8>::options().unlink_on_drop(true).create(&name)?;
    /// q.push_slice(&[1, 2, 3])?;
    /// q.close(); // in real use, the producer's last act
    /// let mut sum = 0;
    /// for x in &q {
    ///     sum += x?;
    /// }
    /// assert_eq!(sum, 6);
    /// # Ok::<(), shmstore::Error>(())
    /// ```
    pub fn iter(&self) -> QueueIter<'_, T, N> {
        self.blocking_iter()
    }
}

/// A queue's or channel's [`QueueEvent`], ready to be waited on: what the wait set
/// (`wait_set.rs`), the descriptor (`events.rs`) and the async calls (`awaiting.rs`) all arm
/// and check, with the one copy of each event's condition. Made by [`ShmQueue::watch`],
/// [`ShmChannel::watch`] or [`ShmChannel::watch_room`], which claim the SPSC role first.
pub(crate) struct Watched<'a> {
    region: &'a Region,
    control: &'a Control,
    spsc: bool,
    event: QueueEvent,
    room: Room,
}

/// When a queue or channel has room, for [`Watched`].
#[derive(Clone, Copy)]
enum Room {
    /// A queue of this many slots: room for one element.
    Slots(u64),
    /// A channel's ring of `ring` bytes: room for a message of `len` bytes.
    Ring { ring: u64, len: usize },
}

impl Room {
    /// Whether a push (or send) would find room with these counters (`tail` without the closed
    /// bit), or would report them corrupt: either way it does not block.
    fn has_room(self, head: u64, tail: u64) -> bool {
        match self {
            Room::Slots(slots) => tail.checked_sub(head) != Some(slots),
            Room::Ring { ring, len } => {
                tail.checked_sub(head).is_none_or(|used| used > ring)
                    || channel::has_room_for(ring, head, tail, len)
            }
        }
    }
}

impl<'a> Watched<'a> {
    /// The region of the queue or channel (to look for its removal).
    pub(crate) fn region(&self) -> &'a Region {
        self.region
    }

    /// How many futex words a wait on the event takes (see `WaitSet`, "Limits"): MPMC
    /// sleepers on "not empty" and "not full" are counted in.
    pub(crate) fn words(&self) -> usize {
        words_for(self.spsc, self.event)
    }

    /// Arms a wait for the event (see `wait::Armed`): check [`is_ready`](Self::is_ready) after,
    /// sleep only if it is not.
    pub(crate) fn arm(&self) -> Armed<'a> {
        let c = self.control;
        match self.event {
            QueueEvent::NotEmpty => Armed::queue_event(&c.not_empty, self.spsc),
            QueueEvent::NotFull => Armed::queue_event(&c.not_full, self.spsc),
            QueueEvent::Closed => Armed::queue_close(&c.not_empty),
        }
    }

    /// Whether the event holds now: an element, the closed bit or corrupt counters (not
    /// empty: a pop returns at once, or reports them); room, the close or corrupt counters
    /// (not full); the close. Called after [`arm`](Self::arm): its loads are SeqCst, so either
    /// they see the publish or its publisher sees the waiter counted in.
    pub(crate) fn is_ready(&self) -> bool {
        let c = self.control;
        let tail = c.tail.word.load(SeqCst);
        let head = c.head.word.load(SeqCst);
        let closed = tail & CLOSED != 0;
        match self.event {
            QueueEvent::NotEmpty => tail != head,
            QueueEvent::NotFull => closed || self.room.has_room(head, tail & !CLOSED),
            QueueEvent::Closed => closed,
        }
    }

    /// [`Error::Removed`] if the queue's or channel's location no longer refers to it (a
    /// system call: for a wake-up that found its event not ready).
    pub(crate) fn removal(&self) -> Option<Error> {
        region_removed(self.region).then(|| Error::Removed {
            name: self.region.name().to_string(),
        })
    }

    /// Arms, then checks ([`arm`](Self::arm), [`is_ready`](Self::is_ready)), for the
    /// process's notifier: the armed wait keeps the region mapped.
    pub(crate) fn arm_source(&self) -> (crate::notifier::Source, bool) {
        let armed = self.arm();
        let ready = self.is_ready();
        // SAFETY: the event lies in the control block, in the region's payload, in the
        // region's mapping.
        let source = unsafe { crate::notifier::Source::new(armed, self.region.shared_mapping()) };
        (source, ready)
    }
}

/// How many futex words a wait on a queue event takes: MPMC sleepers are counted in.
pub(crate) fn words_for(spsc: bool, event: QueueEvent) -> usize {
    match event {
        QueueEvent::NotEmpty | QueueEvent::NotFull if !spsc => WORDS_PER_COUNTED_SOURCE,
        _ => 1,
    }
}

/// The SPSC role a wait for `event` needs: only the consumer sleeps on "not empty", only the
/// producer on "not full" (their events' sleeper words are flags, see `wait::sleep_until`).
fn role_for(event: QueueEvent) -> Option<Role> {
    match event {
        QueueEvent::NotEmpty => Some(Role::Consumer),
        QueueEvent::NotFull => Some(Role::Producer),
        QueueEvent::Closed => None,
    }
}

impl<T: ShmType, const N: usize> ShmQueue<T, N> {
    /// The queue's `event`, to wait on; in SPSC mode, claims the role that event needs first
    /// ([`Error::RoleTaken`] when another live handle has it), as a pop or push would.
    pub(crate) fn watch(&self, event: QueueEvent) -> Result<Watched<'_>> {
        if self.spsc {
            if let Some(role) = role_for(event) {
                self.claim(role)?;
            }
        }
        Ok(Watched {
            region: &self.region,
            control: self.control(),
            spsc: self.spsc,
            event,
            room: Room::Slots(N as u64),
        })
    }

    /// The raw sleeper words of the "not empty" and "not full" events (FORMAT.md), for tests.
    /// Not part of the public API.
    #[doc(hidden)]
    pub fn __sleeper_words(&self) -> [u32; 2] {
        let c = self.control();
        [
            c.not_empty.sleepers.load(SeqCst),
            c.not_full.sleepers.load(SeqCst),
        ]
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
    /// The mode asked for with [`queue_mode`](Self::queue_mode); `None`: the default for a
    /// created queue, the creator's for an opened one.
    queue_mode: Option<QueueMode>,
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
    /// The defaults: no [`queue_mode`](Self::queue_mode) asked for (a created queue is
    /// [`QueueMode::Mpmc`], an opened one keeps the mode it has), mode `0o600`, `open_timeout`
    /// 1 s, no unlink on drop, only queues of this user.
    pub fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = ShmQueue::<T, N>::VALID;
        ShmQueueOptions {
            queue_mode: None,
            common: CommonOptions::DEFAULT,
            _type: PhantomData,
        }
    }

    /// The mode of a created queue (default [`QueueMode::Mpmc`]), and the mode an opened one
    /// must have.
    ///
    /// An opener that calls this is never switched to the other mode silently: finding a
    /// queue created in the other one is [`Error::QueueModeMismatch`], naming both (an SPSC
    /// producer that finds an MPMC queue must know that other producers may come; an MPMC
    /// one that finds an SPSC queue would get [`Error::RoleTaken`] when a second handle
    /// pushes). An opener that does not call it ([`ShmQueue::open`], and `open_or_create`
    /// without it) follows the mode the queue was created with; [`ShmQueue::mode`] tells it.
    pub fn queue_mode(mut self, queue_mode: QueueMode) -> Self {
        self.queue_mode = Some(queue_mode);
        self
    }

    common_setters! {
        what: "queue",
        mode_note: "A queue is always opened for writing (popping writes `head`), so others \
                    need write permission."
    }

    fn spec(&self) -> RegionSpec {
        let queue = QueueSpec {
            mode: self.queue_mode.unwrap_or(QueueMode::Mpmc).code(),
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
    /// As [`ShmQueue::open`], and [`Error::QueueModeMismatch`] if a
    /// [`queue_mode`](Self::queue_mode) was asked for and the queue has the other one.
    pub fn open(self, location: impl Into<Location>) -> Result<ShmQueue<T, N>> {
        let spec = self.spec();
        let region = reboot::open(&location.into(), &spec, Access::ReadWrite)?;
        self.handle(region, &spec)
    }

    /// [`ShmQueue::open_or_create`] with these options: a created queue has the
    /// [`queue_mode`](Self::queue_mode) asked for (or the default).
    ///
    /// # Errors
    ///
    /// As [`ShmQueue::open_or_create`], and [`Error::QueueModeMismatch`] if a
    /// [`queue_mode`](Self::queue_mode) was asked for and an existing queue has the other one
    /// (also when another process created it in that mode a moment earlier).
    pub fn open_or_create(self, location: impl Into<Location>) -> Result<ShmQueue<T, N>> {
        let spec = self.spec();
        let region = reboot::open_or_create(&location.into(), &spec, &mut clear_control)?;
        self.handle(region, &spec)
    }

    /// The handle of an opened queue, once its mode is the one asked for (if any). Checked
    /// before the handle exists, so that a refused queue is never removed by `unlink_on_drop`.
    fn handle(&self, region: Region, spec: &RegionSpec) -> Result<ShmQueue<T, N>> {
        check_mode(&region, self.queue_mode)?;
        Ok(ShmQueue::from_region(region, spec))
    }
}

/// `QueueModeMismatch` when an opener `asked` for a mode and the queue or channel in `region`
/// has the other; an opener that asked for none follows the creator.
pub(super) fn check_mode(region: &Region, asked: Option<QueueMode>) -> Result<()> {
    let found = stored_mode(region);
    match asked {
        Some(asked) if asked != found => Err(Error::QueueModeMismatch {
            name: region.name().to_string(),
            asked,
            found,
        }),
        _ => Ok(()),
    }
}

/// The mode stored in the header of a validated queue region.
fn stored_mode(region: &Region) -> QueueMode {
    region
        .info()
        .queue
        .map_or(QueueMode::Mpmc, |queue| QueueMode::from_code(queue.mode))
}

/// A new queue is empty and open: a zeroed control block (a re-initialised abandoned object
/// may hold old bytes). The slots need no initialising: nothing reads a slot before it is
/// written.
fn clear_control(payload: &mut [u8]) {
    payload[..QUEUE_CONTROL_SIZE].fill(0);
}

/// What one attempt that never waits did, for the async calls (`crate::awaiting`).
#[cfg(feature = "tokio")]
pub(crate) enum Attempt<R> {
    Done(R),
    /// Empty (pop) or full (push): wait for the event.
    Blocked,
    /// MPMC: another handle held the lock for a few attempts; try again soon.
    Busy,
}

impl<T: ShmType, const N: usize> ShmQueue<T, N> {
    /// One pop that never waits, for `pop_async`: `Done(None)` once closed and empty.
    #[cfg(feature = "tokio")]
    pub(crate) fn pop_attempt(&self) -> Result<Attempt<Option<T>>> {
        let mut out = MaybeUninit::uninit();
        Ok(match self.pop_once(Wait::No, false, &mut out)? {
            // SAFETY: `Popped::Value` means the pop wrote the element into `out`.
            Popped::Value(()) => Attempt::Done(Some(unsafe { out.assume_init() })),
            Popped::Closed => Attempt::Done(None),
            Popped::Empty => Attempt::Blocked,
            Popped::LockHeld => Attempt::Busy,
        })
    }

    /// One push that never waits, for `push_async`.
    #[cfg(feature = "tokio")]
    pub(crate) fn push_attempt(&self, value: &T) -> Result<Attempt<()>> {
        Ok(match self.push_once(value, Wait::No)? {
            Pushed::Done => Attempt::Done(()),
            Pushed::Closed => return Err(self.closed()),
            Pushed::Full => Attempt::Blocked,
            Pushed::LockHeld => Attempt::Busy,
        })
    }
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

    /// Pushes `4 N + 3` distinct elements of `S` bytes through a queue of `mode` (wrapping it
    /// several times), popping with `pop` and `try_pop` in turn: each comes out whole, in order.
    /// Sizes that are not a multiple of 8 leave most slots unaligned (the byte-then-word copy),
    /// 4 KiB and more take the wide copy.
    fn round_trip<const S: usize, const N: usize>(mode: QueueMode) {
        let name = format!(
            "shmstore-test-queue-copy-{S}-{mode:?}-{}",
            std::process::id()
        );
        let q = ShmQueue::<[u8; S], N>::options()
            .queue_mode(mode)
            .unlink_on_drop(true)
            .create(&name)
            .unwrap();
        let element = |i: usize| -> [u8; S] { std::array::from_fn(|b| (i * 31 + b * 7) as u8) };
        let total = 4 * N + 3;
        let mut next = 0;
        for i in 0..total {
            q.push(element(i)).unwrap();
            // Full after every `N` pushes: pop them all (a lone handle must not wait for room).
            if (i + 1) % N == 0 || i + 1 == total {
                while next <= i {
                    let got = if next % 2 == 0 { q.pop() } else { q.try_pop() };
                    assert!(
                        got.unwrap() == Some(element(next)),
                        "element {next} of {S} bytes"
                    );
                    next += 1;
                }
            }
        }
        assert_eq!(q.try_pop().unwrap(), None);
    }

    #[test]
    fn elements_of_every_alignment_come_out_whole() {
        for mode in [QueueMode::Spsc, QueueMode::Mpmc] {
            round_trip::<13, 5>(mode);
            round_trip::<1, 3>(mode);
            round_trip::<24, 4>(mode);
            round_trip::<4100, 3>(mode);
            round_trip::<4096, 2>(mode);
        }
    }
}
