//! `ShmChannel`: a named, bounded queue of byte messages of any length up to a bound, between
//! processes, with its capacity in bytes chosen at run time.
//!
//! # Protocol
//!
//! A channel is a queue region (`FORMAT.md`, "Byte channels") whose element is an 8-byte ring
//! unit: the queue control block, a settings line (the largest message and the ring size, fixed
//! at creation), then a ring of records. `tail` counts the bytes ever published, `head` the
//! bytes ever released; both move by whole records, multiples of 8. A record is an 8-byte
//! header (length, tag) and the message, padded to 8. A record that would not fit before the
//! ring's end is preceded by a *skip* record that fills the rest of the ring, and starts at
//! offset 0; two largest records fit in the ring, so a record always fits an empty one.
//!
//! Everything else is [`ShmQueue`](super::ShmQueue)'s protocol with a record for an element:
//! a send writes the record, then publishes it by advancing `tail` with a compare-and-swap that
//! fails if the channel was closed (a producer killed before it exposes nothing, and the next
//! send overwrites its bytes); a receive reads the record, then releases it by advancing
//! `head`. SPSC roles are claimed and held as a queue's (`claim_role` in `spsc.rs`), MPMC
//! sends and receives run under the region's robust mutex, and blocked sides sleep on the
//! same events. A receiver checks every record header against the counters, the ring and the
//! largest message before it reads through it (`format::parse_front`).

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Relaxed, SeqCst};
use std::time::{Duration, Instant};

use crate::atomic_copy::copy_atomic;
use crate::error::{Error, RefusedMessage, Result};
use crate::format::{
    header_word, max_message_fits, parse_front, place, record_size, ring_for, units_for,
    ChannelUnit, Control, Event, Front, Owner, Placement, Settings, SharedBytes, CLOSED,
    QUEUE_CONTROL_SIZE, RECORD_HEADER, RING_OFFSET, SETTINGS_OFFSET, SETTINGS_SIZE, TAG_MESSAGE,
    TAG_SKIP,
};
use crate::layout::ShmType;
use crate::location::Location;
use crate::lock::{StepLock, Wait};
use crate::options::{common_setters, CommonOptions};
use crate::reboot;
use crate::region::{QueueSpec, Region, RegionSpec};
use crate::sys::object::Access;
use crate::wait::{notify, region_removed, sleep_until, wake_unconditionally};

use super::mpmc::wait_until;
use super::spsc::{other_holds_role, take_role, Role, CONSUMER_BYTE, PRODUCER_BYTE};
use super::{keep_spinning, QueueMode, Roles};

/// How many times a non-blocking MPMC call tries the lock (as `ShmQueue`'s `try_push`).
const TRY_LOCK_ATTEMPTS: u32 = 64;

/// A named, bounded queue of byte messages in shared memory, between any number of processes.
///
/// Its capacity (the ring's size in bytes) and its largest message are chosen at creation, at
/// run time; openers read them from the region. A message of any length from 0 to the largest
/// takes its length rounded up to 8, plus an 8-byte header: a 13-byte message takes 24 bytes.
///
/// ```
/// use shmstore::ShmChannel;
///
/// # let name = format!("doc-channel-{}", std::process::id());
/// // In the producer process:
/// let jobs = ShmChannel::options()
///     .capacity(64 * 1024)
///     .max_message(1500)
///     .unlink_on_drop(true)
///     .create(&name)?;
/// jobs.send(b"resize 640x480")?;
/// jobs.send(&[7u8; 1500])?;
///
/// // In the consumer process (here, the same one):
/// let inbox = ShmChannel::open(&name)?;
/// assert_eq!(inbox.capacity(), 64 * 1024);
/// assert_eq!(inbox.recv()?.as_deref(), Some(&b"resize 640x480"[..]));
/// assert_eq!(inbox.recv()?.map(|m| m.len()), Some(1500));
///
/// jobs.close();
/// assert_eq!(inbox.recv()?, None);
/// # Ok::<(), shmstore::Error>(())
/// ```
///
/// # Loans
///
/// [`send_loan`](Self::send_loan) reserves room for a message of a given length and lends it
/// as `&mut [u8]`, published by [`SendLoan::commit`] (dropped uncommitted, nothing is sent);
/// [`recv_loan`](Self::recv_loan) lends the front message as `&[u8]`, released when the loan
/// is dropped. No copy either way. In MPMC mode a loan holds the channel's lock until it ends:
/// keep it short, and do not send or receive through another handle of the same channel on
/// the same thread meanwhile.
///
/// ```
/// use shmstore::{QueueMode, ShmChannel};
/// # let name = format!("doc-channel-loan-{}", std::process::id());
/// let mut ch = ShmChannel::options()
///     .queue_mode(QueueMode::Spsc)
///     .capacity(4096)
///     .unlink_on_drop(true)
///     .create(&name)?;
/// let mut loan = ch.send_loan(5)?;
/// loan.copy_from_slice(b"hello");
/// loan.commit()?;
/// let got = ch.recv_loan()?.expect("a message");
/// assert_eq!(&*got, b"hello");
/// # drop(got);
/// # Ok::<(), shmstore::Error>(())
/// ```
///
/// # Crash safety
///
/// As [`ShmQueue`](super::ShmQueue)'s: a producer killed in the middle of a send (or holding a
/// loan) never exposes a partial message, and its room is usable again at once (SPSC: by the
/// replacement producer; MPMC: by any producer, once the lock is recovered); a consumer killed
/// in the middle of a receive loses at most that message. A record a peer forged is reported as
/// [`Error::Corrupt`], never trusted.
///
/// # Handles and threads
///
/// As for `ShmQueue`: a handle is `Send`, not `Sync`; give each thread its own.
pub struct ShmChannel {
    region: Region,
    spsc: bool,
    /// The ring's size in bytes.
    ring: u64,
    /// The largest message, read once at open and validated against the ring.
    max_message: usize,
    /// Which SPSC roles this handle holds (as `ShmQueue`'s: not `Sync`, see
    /// `OpenOneHandlePerThread`).
    roles: Roles,
}

/// What one attempt found.
enum Step<R> {
    Ready(R),
    /// Full (send) or empty (receive).
    Blocked,
    Closed,
    LockHeld,
}

/// A reservation for a message of `len` bytes at `placement`, from `tail`.
struct Reserved<'a> {
    tail: u64,
    placement: Placement,
    len: usize,
    lock: Option<StepLock<'a>>,
}

/// A front message found at `head`.
struct Found<'a> {
    head: u64,
    front: Front,
    lock: Option<StepLock<'a>>,
}

const LOCK_HELD: &str = "its lock, which another handle kept holding";

impl ShmChannel {
    /// Options for creating or opening a channel: capacity, largest message, mode,
    /// permissions, timeouts, cleanup.
    pub fn options() -> ShmChannelOptions {
        ShmChannelOptions::new()
    }

    /// Opens the existing channel at `location` (a name, a file or a System V key), whatever
    /// its capacity and largest message: they are read from the region.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::WrongKind`] (a single value), [`Error::LayoutMismatch`]
    /// (a `ShmQueue`, not a channel), [`Error::Corrupt`] (its settings make no sense), and
    /// those of [`Shm::open`](crate::Shm::open).
    pub fn open(location: impl Into<Location>) -> Result<Self> {
        Self::options().open(location)
    }

    fn from_region(mut region: Region, spec: &RegionSpec) -> Result<Self> {
        let name = region.name().to_string();
        let Some(queue) = region.info().queue else {
            return Err(Error::corrupt(
                &name,
                "a channel's header describes no queue",
            ));
        };
        let spsc = QueueMode::from_code(queue.mode) == QueueMode::Spsc;
        let Some(ring) = ring_for(queue.capacity) else {
            return Err(Error::corrupt(
                &name,
                format!(
                    "its header's capacity ({} units) leaves no ring",
                    queue.capacity
                ),
            ));
        };
        let settings = settings(&region);
        let stored_ring = settings.ring.load(Acquire);
        let max_message = settings.max_message.load(Acquire);
        if stored_ring != ring as u64
            || !usize::try_from(max_message).is_ok_and(|max| max_message_fits(max, ring))
        {
            return Err(Error::corrupt(
                &name,
                format!(
                    "its settings say a ring of {stored_ring} bytes (the header: {ring}) and \
                     messages of up to {max_message} bytes, which such a ring cannot carry"
                ),
            ));
        }
        // Only now: a channel refused above is not this handle's to remove.
        region.arm_unlink_on_drop(spec);
        Ok(ShmChannel {
            region,
            spsc,
            ring: ring as u64,
            max_message: max_message as usize,
            roles: Roles::new(),
        })
    }

    /// The channel's name (for a file or System V channel, its location as text).
    pub fn name(&self) -> &str {
        self.region.name()
    }

    /// Where the channel lives.
    pub fn location(&self) -> &Location {
        self.region.location()
    }

    /// The ring's size in bytes, as created.
    pub fn capacity(&self) -> usize {
        self.ring as usize
    }

    /// The largest message, in bytes, as created.
    pub fn max_message(&self) -> usize {
        self.max_message
    }

    /// The mode the channel was created with.
    pub fn mode(&self) -> QueueMode {
        if self.spsc {
            QueueMode::Spsc
        } else {
            QueueMode::Mpmc
        }
    }

    /// How many bytes of the ring hold messages now, record headers and padding included (a
    /// snapshot, clamped to the capacity).
    pub fn used_bytes(&self) -> usize {
        let c = self.control();
        let head = c.head.word.load(Acquire);
        let tail = c.tail.word.load(Acquire) & !CLOSED;
        tail.saturating_sub(head).min(self.ring) as usize
    }

    /// In SPSC mode, whether another live process (or another handle) holds the producer's
    /// role, as [`ShmQueue::has_other_producer`](crate::ShmQueue::has_other_producer) says for
    /// a queue; `None` in MPMC mode, which has no roles.
    ///
    /// # Errors
    ///
    /// `Io` if the role's liveness lock cannot be probed.
    pub fn has_other_producer(&self) -> Result<Option<bool>> {
        self.has_other(Role::Producer)
    }

    /// In SPSC mode, whether another live process (or another handle) holds the consumer's
    /// role: a producer that finds none can start one. `None` in MPMC mode.
    ///
    /// # Errors
    ///
    /// `Io` if the role's liveness lock cannot be probed.
    pub fn has_other_consumer(&self) -> Result<Option<bool>> {
        self.has_other(Role::Consumer)
    }

    fn has_other(&self, role: Role) -> Result<Option<bool>> {
        if !self.spsc {
            return Ok(None);
        }
        let (byte, line) = role_place(self.control(), role);
        other_holds_role(&self.region, self.roles.get(), role, byte, line).map(Some)
    }

    /// Whether the channel holds no message now.
    pub fn is_empty(&self) -> bool {
        self.used_bytes() == 0
    }

    /// Whether [`close`](Self::close) was called, by any process.
    pub fn is_closed(&self) -> bool {
        self.control().tail.word.load(Acquire) & CLOSED != 0
    }

    /// Closes the channel for every process: sends fail with [`Error::QueueClosed`] from now
    /// on, receivers get what was sent before, then `None`. Every sleeper is woken.
    pub fn close(&self) {
        let c = self.control();
        c.tail.word.fetch_or(CLOSED, SeqCst);
        wake_unconditionally(&c.not_empty, self.spsc);
        wake_unconditionally(&c.not_full, self.spsc);
    }

    /// Sends `message` if there is room now, without waiting (neither for room nor, in MPMC
    /// mode, for a lock another handle holds: then [`Error::QueueFull`] as for
    /// [`ShmQueue::try_push`](super::ShmQueue::try_push)).
    ///
    /// # Errors
    ///
    /// [`Error::MessageTooLarge`], [`Error::QueueFull`], [`Error::QueueClosed`],
    /// [`Error::RoleTaken`] (SPSC: another handle is the producer), [`Error::Corrupt`].
    pub fn try_send(&self, message: &[u8]) -> Result<()> {
        let reserved = self.reserve_now(message.len())?;
        self.write_and_publish(reserved, message)
    }

    /// Sends `message`, waiting for room as long as it takes.
    ///
    /// # Errors
    ///
    /// [`Error::QueueClosed`] (also when closed while this waits), [`Error::Removed`] (the
    /// channel was removed while this waited), and those of [`try_send`](Self::try_send)
    /// except `QueueFull`.
    pub fn send(&self, message: &[u8]) -> Result<()> {
        let reserved = self.reserve_until(message.len(), None, Duration::MAX)?;
        self.write_and_publish(reserved, message)
    }

    /// Sends `message`, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`], and those of [`send`](Self::send).
    pub fn send_timeout(&self, message: &[u8], timeout: Duration) -> Result<()> {
        let deadline = Instant::now().checked_add(timeout);
        let reserved = self.reserve_until(message.len(), deadline, timeout)?;
        self.write_and_publish(reserved, message)
    }

    /// Reserves room for a message of `len` bytes, waiting for it as long as it takes, and
    /// lends it: write the message in place, then [`commit`](SendLoan::commit). The bytes lent
    /// are not cleared: they hold whatever the ring held, so write all of them.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub fn send_loan(&mut self, len: usize) -> Result<SendLoan<'_>> {
        let reserved = self.reserve_until(len, None, Duration::MAX)?;
        Ok(SendLoan {
            channel: self,
            reserved: Some(reserved),
        })
    }

    /// Like [`send_loan`](Self::send_loan), without waiting.
    ///
    /// # Errors
    ///
    /// As [`try_send`](Self::try_send).
    pub fn try_send_loan(&mut self, len: usize) -> Result<SendLoan<'_>> {
        let reserved = self.reserve_now(len)?;
        Ok(SendLoan {
            channel: self,
            reserved: Some(reserved),
        })
    }

    /// Takes the oldest message into `buf` (cleared first) if there is one now; `false` if
    /// there is none (open or closed) or, in MPMC mode, another handle held the lock through a
    /// few attempts.
    ///
    /// # Errors
    ///
    /// [`Error::RoleTaken`] (SPSC: another handle is the consumer), [`Error::Corrupt`].
    pub fn try_recv_into(&self, buf: &mut Vec<u8>) -> Result<bool> {
        match self.find_once(Wait::No)? {
            Step::Ready(found) => {
                self.copy_out(&found, buf);
                self.release(found);
                Ok(true)
            }
            Step::Blocked | Step::Closed | Step::LockHeld => Ok(false),
        }
    }

    /// [`try_recv_into`](Self::try_recv_into) into a new `Vec`.
    ///
    /// # Errors
    ///
    /// As [`try_recv_into`](Self::try_recv_into).
    pub fn try_recv(&self) -> Result<Option<Vec<u8>>> {
        let mut buf = Vec::new();
        Ok(self.try_recv_into(&mut buf)?.then_some(buf))
    }

    /// Takes the oldest message into `buf` (cleared first), waiting for one as long as it
    /// takes; `false` once the channel is closed and empty.
    ///
    /// # Errors
    ///
    /// [`Error::Removed`] (removed while this waited), and those of
    /// [`try_recv_into`](Self::try_recv_into).
    pub fn recv_into(&self, buf: &mut Vec<u8>) -> Result<bool> {
        self.recv_into_until(buf, None, Duration::MAX)
    }

    /// The oldest message, waiting for one as long as it takes; `None` once the channel is
    /// closed and empty, so a consumer reads `while let Some(m) = channel.recv()? { … }`.
    ///
    /// # Errors
    ///
    /// As [`recv_into`](Self::recv_into).
    pub fn recv(&self) -> Result<Option<Vec<u8>>> {
        let mut buf = Vec::new();
        Ok(self.recv_into(&mut buf)?.then_some(buf))
    }

    /// Like [`recv`](Self::recv), waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`], and those of [`recv`](Self::recv).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<Vec<u8>>> {
        let mut buf = Vec::new();
        let deadline = Instant::now().checked_add(timeout);
        Ok(self
            .recv_into_until(&mut buf, deadline, timeout)?
            .then_some(buf))
    }

    /// Lends the oldest message in place, waiting for one as long as it takes; it is released
    /// (removed from the channel) when the loan is dropped. `None` once closed and empty.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    pub fn recv_loan(&mut self) -> Result<Option<RecvLoan<'_>>> {
        let found = self.find_until(None, Duration::MAX)?;
        Ok(found.map(|found| RecvLoan {
            channel: self,
            found: Some(found),
        }))
    }

    /// Like [`recv_loan`](Self::recv_loan), without waiting: `None` as for
    /// [`try_recv_into`](Self::try_recv_into).
    ///
    /// # Errors
    ///
    /// As [`try_recv_into`](Self::try_recv_into).
    pub fn try_recv_loan(&mut self) -> Result<Option<RecvLoan<'_>>> {
        Ok(match self.find_once(Wait::No)? {
            Step::Ready(found) => Some(RecvLoan {
                channel: self,
                found: Some(found),
            }),
            _ => None,
        })
    }

    fn recv_into_until(
        &self,
        buf: &mut Vec<u8>,
        deadline: Option<Instant>,
        timeout: Duration,
    ) -> Result<bool> {
        match self.find_until(deadline, timeout)? {
            Some(found) => {
                self.copy_out(&found, buf);
                self.release(found);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    // --- sending ---------------------------------------------------------------------------

    fn check_len(&self, len: usize) -> Result<()> {
        if len > self.max_message {
            return Err(Error::MessageTooLarge {
                name: self.name().to_string(),
                len,
                max: self.max_message,
            });
        }
        Ok(())
    }

    fn reserve_now(&self, len: usize) -> Result<Reserved<'_>> {
        self.check_len(len)?;
        match self.reserve_once(len, Wait::No)? {
            Step::Ready(reserved) => Ok(reserved),
            Step::Blocked | Step::LockHeld => Err(Error::QueueFull {
                name: self.name().to_string(),
                capacity: self.capacity(),
                message: Some(RefusedMessage {
                    len,
                    free: self.capacity() - self.used_bytes(),
                }),
            }),
            Step::Closed => Err(self.closed()),
        }
    }

    fn reserve_until(
        &self,
        len: usize,
        deadline: Option<Instant>,
        timeout: Duration,
    ) -> Result<Reserved<'_>> {
        self.check_len(len)?;
        let mut start = None;
        let mut polls = 0u32;
        let mut quiet = false;
        loop {
            match self.reserve_once(len, wait_until(deadline))? {
                Step::Ready(reserved) => return Ok(reserved),
                Step::Closed => return Err(self.closed()),
                Step::LockHeld => return Err(self.timeout(LOCK_HELD, timeout)),
                Step::Blocked => {}
            }
            if std::mem::take(&mut quiet) && region_removed(&self.region) {
                return Err(self.removed());
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(self.timeout("free space (the channel stayed full)", timeout));
            }
            if keep_spinning(&mut polls, &mut start) {
                continue;
            }
            let c = self.control();
            quiet = sleep_until(&c.not_full, self.spsc, deadline, || {
                let head = c.head.word.load(SeqCst);
                let tail = c.tail.word.load(SeqCst);
                // Room, closed, or counters the next attempt reports as corrupt.
                tail & CLOSED != 0
                    || tail.checked_sub(head).is_none_or(|used| used > self.ring)
                    || place(self.ring, head, tail, len).is_some()
            });
        }
    }

    /// One attempt to reserve room for `len` bytes.
    fn reserve_once(&self, len: usize, wait: Wait) -> Result<Step<Reserved<'_>>> {
        let c = self.control();
        let lock = if self.spsc {
            self.claim(Role::Producer)?;
            None
        } else {
            let tail = c.tail.word.load(Acquire);
            if tail & CLOSED != 0 {
                return Ok(Step::Closed);
            }
            let head = c.head.word.load(Relaxed);
            if tail.checked_sub(head).is_some_and(|used| used <= self.ring)
                && place(self.ring, head, tail, len).is_none()
            {
                return Ok(Step::Blocked);
            }
            match self.lock(wait)? {
                Some(lock) => Some(lock),
                None => return Ok(Step::LockHeld),
            }
        };
        // SPSC: this handle alone moves `tail`; MPMC: the lock keeps other producers away.
        let tail = c.tail.word.load(Acquire);
        if tail & CLOSED != 0 {
            return Ok(Step::Closed);
        }
        let head = c.head.word.load(Acquire);
        self.check_counters(head, tail)?;
        Ok(match place(self.ring, head, tail, len) {
            Some(placement) => Step::Ready(Reserved {
                tail,
                placement,
                len,
                lock,
            }),
            None => Step::Blocked,
        })
    }

    fn write_and_publish(&self, reserved: Reserved<'_>, message: &[u8]) -> Result<()> {
        let data = self.ring_ptr(reserved.placement.offset + RECORD_HEADER);
        // SAFETY: `place` put the record inside the ring, in bytes no published record holds
        // and no other producer writes (SPSC role or MPMC lock); `message.len()` is the
        // reserved length, which the record holds after its header.
        unsafe { std::ptr::copy_nonoverlapping(message.as_ptr(), data, message.len()) };
        self.publish(reserved)
    }

    /// Writes the record headers of a reservation whose message is in place, then publishes
    /// it by advancing `tail` (unless the channel was closed meanwhile).
    fn publish(&self, reserved: Reserved<'_>) -> Result<()> {
        let Reserved {
            tail,
            placement,
            len,
            lock,
        } = reserved;
        if let Some(skip_at) = placement.skip_at {
            self.header(skip_at)
                .store(header_word(0, TAG_SKIP), Relaxed);
        }
        // `len <= max_message <= u32::MAX` (checked at reservation and open).
        self.header(placement.offset)
            .store(header_word(len as u32, TAG_MESSAGE), Relaxed);
        let c = self.control();
        let published =
            match c
                .tail
                .word
                .compare_exchange(tail, tail + placement.advance, SeqCst, Relaxed)
            {
                Ok(_) => true,
                Err(now) if now == tail | CLOSED => false,
                Err(now) => {
                    return Err(self.corrupt(format!(
                        "its tail moved from {tail} to {now} under the producer that held it"
                    )))
                }
            };
        drop(lock);
        if !published {
            return Err(self.closed());
        }
        notify(&c.not_empty, self.spsc);
        Ok(())
    }

    // --- receiving -------------------------------------------------------------------------

    fn find_until(
        &self,
        deadline: Option<Instant>,
        timeout: Duration,
    ) -> Result<Option<Found<'_>>> {
        let mut start = None;
        let mut polls = 0u32;
        let mut quiet = false;
        loop {
            match self.find_once(wait_until(deadline))? {
                Step::Ready(found) => return Ok(Some(found)),
                Step::Closed => return Ok(None),
                Step::LockHeld => return Err(self.timeout(LOCK_HELD, timeout)),
                Step::Blocked => {}
            }
            if std::mem::take(&mut quiet) && region_removed(&self.region) {
                return Err(self.removed());
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(self.timeout("a message (the channel stayed empty)", timeout));
            }
            if keep_spinning(&mut polls, &mut start) {
                continue;
            }
            let c = self.control();
            quiet = sleep_until(&c.not_empty, self.spsc, deadline, || {
                c.tail.word.load(SeqCst) != c.head.word.load(SeqCst)
            });
        }
    }

    /// One attempt to find the front message.
    fn find_once(&self, wait: Wait) -> Result<Step<Found<'_>>> {
        let c = self.control();
        let lock = if self.spsc {
            self.claim(Role::Consumer)?;
            None
        } else {
            let head = c.head.word.load(Acquire);
            let tail = c.tail.word.load(Acquire);
            if tail & !CLOSED == head {
                return Ok(if tail & CLOSED != 0 {
                    Step::Closed
                } else {
                    Step::Blocked
                });
            }
            match self.lock(wait)? {
                Some(lock) => Some(lock),
                None => return Ok(Step::LockHeld),
            }
        };
        let head = c.head.word.load(Acquire);
        let tail = c.tail.word.load(Acquire);
        let front = parse_front(self.ring, self.max_message, head, tail & !CLOSED, |at| {
            self.header(at).load(Relaxed)
        })
        .map_err(|reason| self.corrupt(reason))?;
        Ok(match front {
            Some(front) => Step::Ready(Found { head, front, lock }),
            None if tail & CLOSED != 0 => Step::Closed,
            None => Step::Blocked,
        })
    }

    /// Copies a found message into `buf` with atomic loads: a hostile peer writing the ring
    /// meanwhile changes what is copied, never makes the copy a data race in this process.
    fn copy_out(&self, found: &Found<'_>, buf: &mut Vec<u8>) {
        let len = found.front.len;
        buf.clear();
        buf.reserve(len);
        // SAFETY: `parse_front` checked that the message lies inside the ring; it starts 8
        // bytes after an 8-aligned record in the 64-byte aligned ring, so it is 8-aligned;
        // `buf` has room for `len` bytes and nothing else touches it; this process writes
        // published ring bytes only as a producer, which does not write them before `head`
        // passes them.
        unsafe { copy_atomic(self.ring_ptr(found.front.data), buf.as_mut_ptr(), len) };
        // SAFETY: the copy just initialised the first `len` bytes, within the capacity.
        unsafe { buf.set_len(len) };
    }

    /// The bytes of a found message.
    fn message(&self, found: &Found<'_>) -> &[u8] {
        // SAFETY: `parse_front` checked that the record lies inside the ring and inside the
        // published bytes, which no producer writes until `head` passes them (SPSC: this handle
        // is the one consumer; MPMC: `found` holds the lock).
        unsafe { std::slice::from_raw_parts(self.ring_ptr(found.front.data), found.front.len) }
    }

    /// Releases a found message: advances `head` past it.
    fn release(&self, found: Found<'_>) {
        let c = self.control();
        c.head.word.store(found.head + found.front.advance, SeqCst);
        drop(found.lock);
        notify(&c.not_full, self.spsc);
    }

    // --- shared ----------------------------------------------------------------------------

    fn check_counters(&self, head: u64, tail: u64) -> Result<()> {
        match tail.checked_sub(head) {
            Some(used) if used <= self.ring && head % 8 == 0 && tail % 8 == 0 => Ok(()),
            _ => Err(self.corrupt(format!(
                "its counters say {tail} bytes sent and {head} received, which a ring of {} \
                 bytes cannot hold",
                self.ring
            ))),
        }
    }

    /// A pointer to ring offset `at` (`at <= ring`).
    fn ring_ptr(&self, at: usize) -> *mut u8 {
        debug_assert!(at as u64 <= self.ring);
        // SAFETY: the payload holds the control block, the settings line and `ring` bytes
        // (the header was validated with this capacity), and callers pass `at <= ring`.
        unsafe { self.region.working_copy().add(RING_OFFSET + at) }
    }

    /// The record header at ring offset `at`, a multiple of 8 below the ring's size.
    fn header(&self, at: usize) -> &AtomicU64 {
        let at = at.min(self.ring as usize - RECORD_HEADER) & !7;
        // SAFETY: `at` is clamped inside the ring and 8-aligned, and the ring starts 8-aligned
        // (the payload is 64-byte aligned and RING_OFFSET a multiple of 64): an `AtomicU64`
        // there is valid for any bits, and every access to it is atomic.
        unsafe { &*self.ring_ptr(at).cast::<AtomicU64>() }
    }

    fn control(&self) -> &Control {
        match self.region.payload().and_then(SharedBytes::view::<Control>) {
            Some(control) => control,
            None => unreachable!("a channel's payload holds its control block"),
        }
    }

    fn lock(&self, wait: Wait) -> Result<Option<StepLock<'_>>> {
        match self.region.lock_step(wait, TRY_LOCK_ATTEMPTS) {
            Ok(locked) => Ok(Some(locked)),
            Err(not_locked) => match not_locked.into_error(&self.region) {
                None => Ok(None),
                Some(error) => Err(error),
            },
        }
    }

    /// Takes the SPSC role at this handle's first send or receive (as `ShmQueue`'s).
    fn claim(&self, role: Role) -> Result<()> {
        if self.roles.get() & role.bit() != 0 {
            return Ok(());
        }
        let c = self.control();
        let (byte, line) = role_place(c, role);
        take_role(&self.region, role, byte, line)?;
        let (own, partner): (&Event, &Event) = match role {
            Role::Producer => (&c.not_full, &c.not_empty),
            Role::Consumer => (&c.not_empty, &c.not_full),
        };
        // A count a dead predecessor left would cost every partner operation a wake call.
        own.sleepers.store(0, SeqCst);
        self.roles.set(self.roles.get() | role.bit());
        // As `ShmQueue`: wake a partner a predecessor may have left asleep without a flag.
        wake_unconditionally(partner, true);
        Ok(())
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

/// Whether a ring of `ring` bytes with these counters has room for a message of `len` bytes.
pub(super) fn has_room_for(ring: u64, head: u64, tail: u64, len: usize) -> bool {
    place(ring, head, tail, len).is_some()
}

impl ShmChannel {
    /// The channel's `event`, to wait on (as [`ShmQueue::watch`](super::ShmQueue)): "not
    /// full" is room for a message of the channel's largest size.
    pub(crate) fn watch(&self, event: super::QueueEvent) -> Result<super::Watched<'_>> {
        self.watched(event, self.max_message)
    }

    /// "Not full" for a message of `len` bytes: room for it, or the close. Claims the
    /// producer role in SPSC mode.
    ///
    /// # Errors
    ///
    /// [`Error::MessageTooLarge`] when no message of `len` bytes fits (room for it never
    /// comes); [`Error::RoleTaken`] as for a send.
    pub(crate) fn watch_room(&self, len: usize) -> Result<super::Watched<'_>> {
        self.check_len(len)?;
        self.watched(super::QueueEvent::NotFull, len)
    }

    fn watched(&self, event: super::QueueEvent, len: usize) -> Result<super::Watched<'_>> {
        if self.spsc {
            if let Some(role) = super::role_for(event) {
                self.claim(role)?;
            }
        }
        Ok(super::Watched {
            region: &self.region,
            control: self.control(),
            spsc: self.spsc,
            event,
            room: super::Room::Ring {
                ring: self.ring,
                len,
            },
        })
    }
}

/// The byte lock and control line of an SPSC role.
fn role_place(c: &Control, role: Role) -> (u64, &crate::format::Line) {
    match role {
        Role::Producer => (PRODUCER_BYTE, &c.tail),
        Role::Consumer => (CONSUMER_BYTE, &c.head),
    }
}

fn settings(region: &Region) -> &Settings {
    match region
        .payload()
        .and_then(|payload| payload.range(SETTINGS_OFFSET, SETTINGS_SIZE))
        .and_then(SharedBytes::view::<Settings>)
    {
        Some(settings) => settings,
        None => unreachable!("a channel's payload holds its settings line"),
    }
}

impl Drop for ShmChannel {
    fn drop(&mut self) {
        // As `ShmQueue`'s drop: free the role word, then the liveness lock.
        for role in [Role::Producer, Role::Consumer] {
            if self.roles.get() & role.bit() == 0 {
                continue;
            }
            let (byte, line) = role_place(self.control(), role);
            let me = Owner::me().word();
            let freed = line.owner.compare_exchange(me, 0, SeqCst, SeqCst).is_ok();
            if freed && !self.region.is_segment() {
                self.region.release_byte(byte);
            }
        }
    }
}

impl fmt::Debug for ShmChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmChannel")
            .field("name", &self.name())
            .field("capacity", &self.capacity())
            .field("max_message", &self.max_message)
            .field("mode", &self.mode())
            .field("used_bytes", &self.used_bytes())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Room for one message, lent by [`ShmChannel::send_loan`]: derefs to the message's bytes
/// (`&mut [u8]` of the requested length, holding whatever the ring held: write all of it).
/// [`commit`](Self::commit) publishes it; dropped uncommitted (or in a panic), nothing is sent.
#[must_use = "a send loan publishes nothing until it is committed"]
pub struct SendLoan<'a> {
    channel: &'a ShmChannel,
    reserved: Option<Reserved<'a>>,
}

impl SendLoan<'_> {
    /// Publishes the message.
    ///
    /// # Errors
    ///
    /// [`Error::QueueClosed`] if the channel was closed meanwhile (nothing was sent),
    /// [`Error::Corrupt`].
    pub fn commit(mut self) -> Result<()> {
        match self.reserved.take() {
            Some(reserved) => self.channel.publish(reserved),
            None => Ok(()),
        }
    }
}

impl Deref for SendLoan<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.reserved {
            Some(r) => {
                let data = self.channel.ring_ptr(r.placement.offset + RECORD_HEADER);
                // SAFETY: the reservation's bytes lie in the ring (`place`), and nobody else
                // reads or writes them until it is published (SPSC role or MPMC lock).
                unsafe { std::slice::from_raw_parts(data, r.len) }
            }
            None => &[],
        }
    }
}

impl DerefMut for SendLoan<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        match &self.reserved {
            Some(r) => {
                let data = self.channel.ring_ptr(r.placement.offset + RECORD_HEADER);
                // SAFETY: as in `deref`; `&mut self` makes this the only borrow of them.
                unsafe { std::slice::from_raw_parts_mut(data, r.len) }
            }
            None => &mut [],
        }
    }
}

impl fmt::Debug for SendLoan<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendLoan")
            .field("len", &self.len())
            .finish()
    }
}

/// The front message, lent by [`ShmChannel::recv_loan`]: derefs to its bytes; released
/// (removed from the channel) when dropped, or by [`release`](Self::release);
/// [`keep`](Self::keep) ends the loan leaving it at the front. A loan dropped while its thread
/// unwinds from a panic keeps the message too, as when its consumer is killed holding it: the
/// next consumer receives it again (at-least-once).
///
/// The bytes are the ring's, read in place: a well-behaved producer does not write them until
/// the loan is released, but a hostile process with write access to the channel can change
/// them under the loan (as it can change any byte of the region). Its length was checked
/// against the ring, so the slice never reaches outside it. A consumer that must not see bytes
/// change takes a copy ([`recv_into`](ShmChannel::recv_into)) instead.
pub struct RecvLoan<'a> {
    channel: &'a ShmChannel,
    found: Option<Found<'a>>,
}

impl Deref for RecvLoan<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.found {
            Some(found) => self.channel.message(found),
            None => &[],
        }
    }
}

impl RecvLoan<'_> {
    /// Removes the message from the channel (as dropping the loan does) and wakes a sleeping
    /// sender.
    pub fn release(self) {
        drop(self);
    }

    /// Ends the loan without removing the message: it stays at the front, and the next
    /// receive (or receive loan) of any consumer gets it.
    pub fn keep(mut self) {
        // Dropping what was found moves no counter (and releases the MPMC lock).
        self.found = None;
    }
}

impl Drop for RecvLoan<'_> {
    fn drop(&mut self) {
        if let Some(found) = self.found.take() {
            // A consumer that panicked while reading did not finish with the message: it
            // stays for the next receive, as a queue's `PopLoan` keeps its element.
            if !std::thread::panicking() {
                self.channel.release(found);
            }
        }
    }
}

impl fmt::Debug for RecvLoan<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvLoan")
            .field("len", &self.len())
            .finish()
    }
}

/// How to create or open a [`ShmChannel`]: `ShmChannel::options()`, then the capacity, the
/// largest message, the mode, permissions, timeouts and cleanup, then
/// [`create`](Self::create), [`open`](Self::open) or [`open_or_create`](Self::open_or_create).
#[must_use = "options do nothing until create, open or open_or_create is called"]
#[derive(Clone)]
pub struct ShmChannelOptions {
    /// The mode asked for; `None`: the default for a created channel, the creator's for an
    /// opened one.
    queue_mode: Option<QueueMode>,
    capacity: usize,
    max_message: Option<usize>,
    common: CommonOptions,
}

impl fmt::Debug for ShmChannelOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("ShmChannelOptions");
        out.field("queue_mode", &self.queue_mode)
            .field("capacity", &self.capacity)
            .field("max_message", &self.max_message);
        self.common.debug_fields(&mut out);
        out.finish()
    }
}

impl Default for ShmChannelOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl ShmChannelOptions {
    /// The defaults: no [`queue_mode`](Self::queue_mode) asked for (a created channel is
    /// [`QueueMode::Mpmc`], an opened one keeps its own), a capacity of 64 KiB, the largest
    /// message as large as the capacity allows, mode `0o600`, `open_timeout` 1 s, no unlink on
    /// drop.
    pub fn new() -> Self {
        ShmChannelOptions {
            queue_mode: None,
            capacity: 64 * 1024,
            max_message: None,
            common: CommonOptions::DEFAULT,
        }
    }

    /// The ring's size in bytes of a created channel (rounded up to a multiple of 8). Each
    /// message takes its length rounded up to 8, plus 8.
    pub fn capacity(mut self, bytes: usize) -> Self {
        self.capacity = bytes;
        self
    }

    /// The largest message of a created channel, in bytes (default: the largest the capacity
    /// allows). Two records of that size must fit in the ring: `capacity >= 2 * (8 +
    /// max_message rounded up to 8)`, so that a message that does not fit before the ring's
    /// end always fits once the ring has drained.
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.max_message = Some(bytes);
        self
    }

    /// The mode of a created channel (default [`QueueMode::Mpmc`]), and the mode an opened
    /// one must have: as for a queue
    /// ([`ShmQueueOptions::queue_mode`](super::ShmQueueOptions::queue_mode)), an opener that
    /// asks for a mode and finds the other one gets [`Error::QueueModeMismatch`], naming both,
    /// never the other mode silently; one that does not ask follows the creator.
    pub fn queue_mode(mut self, queue_mode: QueueMode) -> Self {
        self.queue_mode = Some(queue_mode);
        self
    }

    common_setters! {
        what: "channel",
        mode_note: "A channel is always opened for writing (receiving writes `head`), so others \
                    need write permission."
    }

    /// The ring size and largest message of a created channel, checked.
    fn geometry(&self, name: &str) -> Result<(usize, usize)> {
        let ring = self
            .capacity
            .checked_next_multiple_of(8)
            .filter(|&ring| ring > 0 && ring <= u32::MAX as usize);
        // The largest message whose record fits twice: half the ring, down to a whole unit,
        // less the header (0, refused below, when the ring is too small for any).
        let max = |ring: usize| (ring / 2 / 8 * 8).saturating_sub(RECORD_HEADER);
        let geometry = ring.and_then(|ring| {
            let max_message = self.max_message.unwrap_or_else(|| max(ring));
            max_message_fits(max_message, ring).then_some((ring, max_message))
        });
        geometry.ok_or_else(|| Error::Io {
            name: name.to_string(),
            operation: "lay out the channel",
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "a capacity of {} bytes cannot carry messages of up to {} bytes: the \
                     capacity must be at least 32 and below 4 GiB, and hold two records of \
                     the largest message (8 bytes plus the message rounded up to 8 each)",
                    self.capacity,
                    self.max_message
                        .map_or("the default".to_string(), |m| m.to_string())
                ),
            ),
        })
    }

    fn spec(&self, units: usize) -> RegionSpec {
        let queue = QueueSpec {
            mode: self.queue_mode.unwrap_or(QueueMode::Mpmc).code(),
            capacity: units,
        };
        self.common
            .spec(&ChannelUnit::LAYOUT, false, false, Some(queue))
    }

    /// Creates a new, empty channel at `location` (a name, a file or a System V key, as for
    /// [`ShmQueue`](super::ShmQueue)).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] (invalid capacity or largest message, or an I/O error),
    /// [`Error::AlreadyExists`], [`Error::InvalidName`] or [`Error::InvalidLocation`].
    pub fn create(self, location: impl Into<Location>) -> Result<ShmChannel> {
        let location = location.into();
        let (ring, max_message) = self.geometry(&location.to_string())?;
        let spec = self.spec(units_for(ring));
        let region = Region::create(&location, &spec, &mut |payload: &mut [u8]| {
            init_payload(payload, ring, max_message)
        })?;
        ShmChannel::from_region(region, &spec)
    }

    /// [`ShmChannel::open`] with these options (the capacity and largest message set here are
    /// not compared: the channel's own are used).
    ///
    /// # Errors
    ///
    /// As [`ShmChannel::open`], and [`Error::QueueModeMismatch`] if a
    /// [`queue_mode`](Self::queue_mode) was asked for and the channel has the other one.
    pub fn open(self, location: impl Into<Location>) -> Result<ShmChannel> {
        let spec = self.spec(QueueSpec::ANY_CAPACITY);
        let region = reboot::open(&location.into(), &spec, Access::ReadWrite)?;
        self.handle(region, &spec)
    }

    /// Opens the channel at `location`, or creates it with these options if it does not
    /// exist: safe to race from any number of processes.
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create) and [`open`](Self::open) (a mode asked for and not found
    /// included), and [`Error::CapacityMismatch`] (in bytes, the capacity rounded up to 8)
    /// when the channel exists with another capacity.
    pub fn open_or_create(self, location: impl Into<Location>) -> Result<ShmChannel> {
        let location = location.into();
        let (ring, max_message) = self.geometry(&location.to_string())?;
        let spec = self.spec(units_for(ring));
        let region = reboot::open_or_create(&location, &spec, &mut |payload: &mut [u8]| {
            init_payload(payload, ring, max_message)
        })
        .map_err(|error| match error {
            // In ring bytes, as the capacity was asked for, not in the header's units.
            Error::CapacityMismatch { name, found, .. } => Error::CapacityMismatch {
                name,
                expected: ring,
                found: ring_for(found).unwrap_or(0),
            },
            other => other,
        })?;
        self.handle(region, &spec)
    }

    /// The handle of an opened channel, once its mode is the one asked for (if any): checked
    /// before the handle exists, so that a refused channel is never removed by
    /// `unlink_on_drop`.
    fn handle(&self, region: Region, spec: &RegionSpec) -> Result<ShmChannel> {
        super::check_mode(&region, self.queue_mode)?;
        ShmChannel::from_region(region, spec)
    }
}

/// A new channel: zeroed control block, its settings, an empty ring (the ring needs no
/// initialising: nothing reads a record before it is published).
fn init_payload(payload: &mut [u8], ring: usize, max_message: usize) {
    payload[..QUEUE_CONTROL_SIZE].fill(0);
    let settings = &mut payload[SETTINGS_OFFSET..SETTINGS_OFFSET + SETTINGS_SIZE];
    settings.fill(0);
    settings[..8].copy_from_slice(&(max_message as u64).to_ne_bytes());
    settings[8..16].copy_from_slice(&(ring as u64).to_ne_bytes());
}

const _: () = assert!(RING_OFFSET % 64 == 0);
const _: () = assert!(record_size(0).is_some());

impl ShmChannel {
    /// One receive that never waits, into `buf` (cleared first), for `recv_async`:
    /// `Done(false)` once closed and empty.
    #[cfg(feature = "tokio")]
    pub(crate) fn recv_attempt(&self, buf: &mut Vec<u8>) -> Result<super::Attempt<bool>> {
        Ok(match self.find_once(Wait::No)? {
            Step::Ready(found) => {
                self.copy_out(&found, buf);
                self.release(found);
                super::Attempt::Done(true)
            }
            Step::Closed => super::Attempt::Done(false),
            Step::Blocked => super::Attempt::Blocked,
            Step::LockHeld => super::Attempt::Busy,
        })
    }

    /// One send that never waits, for `send_async`.
    #[cfg(feature = "tokio")]
    pub(crate) fn send_attempt(&self, message: &[u8]) -> Result<super::Attempt<()>> {
        self.check_len(message.len())?;
        Ok(match self.reserve_once(message.len(), Wait::No)? {
            Step::Ready(reserved) => {
                self.write_and_publish(reserved, message)?;
                super::Attempt::Done(())
            }
            Step::Closed => return Err(self.closed()),
            Step::Blocked => super::Attempt::Blocked,
            Step::LockHeld => super::Attempt::Busy,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    fn scratch(test: &str, mode: QueueMode, capacity: usize, max: usize) -> ShmChannel {
        let name = format!("unit-channel-{test}-{}", std::process::id());
        ShmChannel::options()
            .queue_mode(mode)
            .capacity(capacity)
            .max_message(max)
            .unlink_on_drop(true)
            .create(name.as_str())
            .unwrap()
    }

    #[derive(Debug, Clone)]
    enum Op {
        Send(Vec<u8>),
        Recv,
        LoanSend(Vec<u8>, bool),
        LoanRecv,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..=40).prop_map(Op::Send),
            Just(Op::Recv),
            (
                proptest::collection::vec(any::<u8>(), 0..=40),
                any::<bool>()
            )
                .prop_map(|(m, c)| Op::LoanSend(m, c)),
            Just(Op::LoanRecv),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Every operation against a `VecDeque<Vec<u8>>` that counts the ring's bytes.
        #[test]
        fn behaves_like_a_bounded_deque(ops in proptest::collection::vec(op(), 1..200), spsc in any::<bool>()) {
            let mode = if spsc { QueueMode::Spsc } else { QueueMode::Mpmc };
            let mut ch = scratch(&format!("model-{spsc}"), mode, 128, 40);
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            for op in ops {
                match op {
                    Op::Send(m) => match ch.try_send(&m) {
                        Ok(()) => model.push_back(m),
                        Err(Error::QueueFull { .. }) => prop_assert!(room_short(&model, &m)),
                        Err(e) => prop_assert!(false, "{e}"),
                    },
                    Op::LoanSend(m, true) => match ch.try_send_loan(m.len()) {
                        Ok(mut loan) => {
                            loan.copy_from_slice(&m);
                            loan.commit().unwrap();
                            model.push_back(m);
                        }
                        Err(Error::QueueFull { .. }) => prop_assert!(room_short(&model, &m)),
                        Err(e) => prop_assert!(false, "{e}"),
                    },
                    Op::LoanSend(m, false) => {
                        if let Ok(mut loan) = ch.try_send_loan(m.len()) {
                            loan.copy_from_slice(&m);
                            drop(loan);
                        }
                    }
                    Op::Recv => prop_assert_eq!(ch.try_recv().unwrap(), model.pop_front()),
                    Op::LoanRecv => {
                        let got = ch.try_recv_loan().unwrap().map(|l| l.to_vec());
                        prop_assert_eq!(got, model.pop_front());
                    }
                }
                let used: usize = model.iter().map(|m| record_size(m.len()).unwrap()).sum();
                prop_assert!(ch.used_bytes() >= used && ch.used_bytes() <= 128);
            }
            while let Some(m) = model.pop_front() {
                prop_assert_eq!(ch.try_recv().unwrap(), Some(m));
            }
            prop_assert_eq!(ch.try_recv().unwrap(), None);
        }
    }

    /// Whether `m` may not fit behind `model` in a 128-byte ring: the bytes used, plus at
    /// most a skip record (less than one record of the largest message, 48 bytes), plus its
    /// record exceed the ring.
    fn room_short(model: &VecDeque<Vec<u8>>, m: &[u8]) -> bool {
        let used: usize = model.iter().map(|m| record_size(m.len()).unwrap()).sum();
        used + record_size(m.len()).unwrap() + 48 > 128
    }

    #[test]
    fn a_forged_length_is_corrupt_not_a_panic() {
        let ch = scratch("forged", QueueMode::Mpmc, 256, 64);
        ch.send(b"hello").unwrap();
        ch.header(0)
            .store(header_word(10_000, TAG_MESSAGE), Relaxed);
        assert!(matches!(ch.try_recv(), Err(Error::Corrupt { .. })));
        ch.header(0).store(header_word(0, TAG_SKIP), Relaxed);
        assert!(matches!(ch.try_recv(), Err(Error::Corrupt { .. })));
        ch.control().tail.word.store(1 << 40, SeqCst);
        assert!(matches!(ch.try_recv(), Err(Error::Corrupt { .. })));
        assert!(matches!(ch.try_send(b"x"), Err(Error::Corrupt { .. })));
    }

    /// A channel's errors speak of its bytes and messages, never of a queue's elements.
    #[test]
    fn errors_speak_of_bytes_and_messages() {
        let ch = scratch("wording", QueueMode::Mpmc, 4096, 1500);
        // Records of 1512, 1512 and 872 bytes: 200 of the 4096 left.
        ch.send(&[1; 1500]).unwrap();
        ch.send(&[2; 1500]).unwrap();
        ch.send(&[3; 864]).unwrap();
        let full = ch.try_send(&[4; 1500]).unwrap_err();
        assert!(
            matches!(
                full,
                Error::QueueFull {
                    capacity: 4096,
                    message: Some(RefusedMessage {
                        len: 1500,
                        free: 200
                    }),
                    ..
                }
            ),
            "{full:?}"
        );
        let text = full.to_string();
        assert!(
            text.contains("no room now for a message of 1500 bytes: 200 of 4096 bytes free"),
            "{text}"
        );
        assert!(!text.contains("element"), "{text}");
        assert!(text.contains("ShmChannel::send"), "{text}");

        let reopened = ShmChannel::options()
            .capacity(8192)
            .open_or_create(ch.name())
            .unwrap_err();
        assert!(
            matches!(
                reopened,
                Error::CapacityMismatch {
                    expected: 8192,
                    found: 4096,
                    ..
                }
            ),
            "{reopened:?}"
        );
        assert!(reopened.to_string().contains("ShmChannel"), "{reopened}");

        ch.close();
        let closed = ch.try_send(b"late").unwrap_err().to_string();
        assert!(closed.contains("or sent, for a channel"), "{closed}");
    }

    #[test]
    fn too_large_and_bad_geometry_are_errors() {
        let ch = scratch("large", QueueMode::Spsc, 64, 24);
        assert!(matches!(
            ch.try_send(&[0; 25]),
            Err(Error::MessageTooLarge {
                len: 25,
                max: 24,
                ..
            })
        ));
        let name = format!("unit-channel-geometry-{}", std::process::id());
        let bad = ShmChannel::options()
            .capacity(64)
            .max_message(40)
            .create(name.as_str());
        assert!(matches!(bad, Err(Error::Io { .. })));
        // Too small for any message: an error, not an arithmetic panic.
        for capacity in [0, 1, 8, 16, 24] {
            let tiny = ShmChannel::options()
                .capacity(capacity)
                .create(name.as_str());
            assert!(
                matches!(tiny, Err(Error::Io { .. })),
                "{capacity}: {tiny:?}"
            );
        }
        // The default largest message fits any capacity, an odd number of units included.
        for capacity in [32, 40, 4104, 4096] {
            let ch = ShmChannel::options()
                .capacity(capacity)
                .unlink_on_drop(true)
                .create(name.as_str())
                .unwrap();
            ch.try_send(&vec![7; ch.max_message()]).unwrap();
            assert_eq!(ch.try_recv().unwrap(), Some(vec![7; ch.max_message()]));
        }
    }
}
