//! `WaitSet`: one thread sleeps until the first of several sources is ready (a value region's
//! new version, a queue's or channel's element, room or close, a deadline), with no polling
//! and no thread per source, and learns which are ready.
//!
//! A wait arms every source (reads its futex word and counts itself in among its sleepers,
//! `wait::Armed`), then checks every condition, then sleeps on all the words at once
//! (`futex_waitv`, `wait::sleep_on_any`) only if none holds: a publish between the check and
//! the sleep moved its word, and the kernel refuses the sleep.

use std::time::{Duration, Instant};

use crate::attach::Attached;
use crate::error::{Error, Result};
use crate::layout::ShmType;
use crate::queue::{words_for, Watched};
use crate::region::Region;
use crate::wait::{
    region_removed, sleep_on_any, slice_for, time_to_look, version_after_arming, waits_on_many,
    Armed, TimedOut, WaitAny, SLEEP_SLICE, WAIT_ANY_MAX, WORDS_PER_COUNTED_SOURCE,
};
use crate::{QueueMode, Shm, ShmChannel, ShmQueue, ShmReader};

/// Sleeps until the first of several sources is ready, and says which are: value regions
/// ([`Shm`], [`ShmReader`]: a version other than the one given), queues ([`ShmQueue`]) and
/// byte channels ([`ShmChannel`]: [`QueueEvent`]s), and a deadline.
///
/// [`wait`](Self::wait) arms every source, checks them all, and sleeps on all their futex
/// words at once with `futex_waitv` (Linux 5.16+) only if none is ready, so it misses nothing
/// published between registration and sleep, polls nothing, and starts no thread. Writers
/// still make no system call when nobody waits. It returns every source that is ready when it
/// looks (not only the first), as [`Ready`]; an empty `Ready` means the deadline passed.
///
/// The same sources, added with the same calls and named by the same [`WaitKey`]s, make a
/// descriptor for event loops in a [`ShmEvents`](crate::ShmEvents); the async calls
/// (`Shm::changed`, `ShmQueue::pop_async`, feature `tokio`) wait for one source each.
///
/// ```
/// use std::time::Duration;
/// use shmstore::{QueueEvent, Shm, ShmQueue, WaitSet};
///
/// # let (cfg_name, jobs_name) = (format!("doc-ws-cfg-{}", std::process::id()),
/// #     format!("doc-ws-jobs-{}", std::process::id()));
/// let config = Shm::<[u32; 4]>::options().unlink_on_drop(true).create(&cfg_name, [0; 4])?;
/// let jobs = ShmQueue::<u64, 64>::options().unlink_on_drop(true).create(&jobs_name)?;
///
/// let mut set = WaitSet::new();
/// let config_changed = set.add_value(&config, config.version())?;
/// let job_waiting = set.add_queue(&jobs, QueueEvent::NotEmpty)?;
/// set.set_timeout(Duration::from_secs(5));
///
/// // Another process (here, a thread with its own handle) pushes a job.
/// std::thread::scope(|s| {
///     s.spawn(|| ShmQueue::<u64, 64>::open(&jobs_name).unwrap().push(7).unwrap());
/// });
/// let ready = set.wait()?;
/// assert!(ready.contains(job_waiting) && !ready.contains(config_changed));
/// assert_eq!(jobs.try_pop()?, Some(7));
///
/// // A source stays registered: after handling a change, say which version was seen.
/// config.lock().unwrap()[0] = 1;
/// assert!(set.wait()?.contains(config_changed));
/// set.set_since(config_changed, config.version());
/// # Ok::<(), shmstore::Error>(())
/// ```
///
/// # Sources
///
/// - A value region ([`add_value`](Self::add_value)) is ready when its version differs from
///   `since`, and also when it was removed from its location or replaced there, or migrated
///   (README, "Changing a region's type"): the handle's next read or
///   [`wait_for_change`](Shm::wait_for_change) follows the migration or reports
///   [`Error::Removed`]; after a migration, [`set_since`](Self::set_since) takes the region
///   the handle followed to as the one waited on, and a removed region is taken out of the set
///   with [`remove`](Self::remove). A wait never hangs on a region nobody will publish to. A
///   read-only handle ([`ShmReader`]) cannot count itself among the region's waiters: unless
///   the region was created with [`notify_readers`](crate::ShmOptions::notify_readers), the
///   wait then looks at every source every 10 ms, as its `wait_for_change` does.
/// - A queue or channel ([`add_queue`](Self::add_queue), [`add_channel`](Self::add_channel))
///   is ready for [`QueueEvent::NotEmpty`] when it holds an element (or is closed: a pop
///   returns at once), for [`QueueEvent::NotFull`] when it has room for one element (a
///   channel: for a message of its largest size; or is closed), for [`QueueEvent::Closed`]
///   once closed; and, for any event, when it was removed from its location.
/// - The deadline ([`set_deadline`](Self::set_deadline), [`set_timeout`](Self::set_timeout))
///   ends the wait with an empty [`Ready`].
///
/// In an SPSC queue or channel, only the consumer sleeps on "not empty" and only the producer
/// on "not full": registering such an event claims that role for the handle, as its first pop
/// (or push) would, and fails with [`Error::RoleTaken`] when another live handle has it.
/// [`QueueEvent::Closed`] claims nothing (a close wakes every sleeper), so any handle may
/// register it.
///
/// # Limits
///
/// One wait sleeps on at most 128 futex words (the kernel's `futex_waitv` limit): a writable
/// value handle and an MPMC queue event take 2 (the event's word and its sleeper count), a
/// read-only value handle, an SPSC queue event and a close take 1. A source that would go
/// beyond is refused with [`Error::InvalidWaitSet`]: split the sources over several sets,
/// each waited on by its own thread.
///
/// Where the kernel has no `futex_waitv` (before Linux 5.16, or a seccomp filter refuses it),
/// a wait sleeps on its first source's word alone, at most 1 ms at a time, and looks at every
/// source after each such slice: a change of another source is seen up to 1 ms late, and the
/// waiting thread wakes 1 000 times a second while it waits.
///
/// A set borrows its handles; it is not shared between threads (queue handles are not
/// `Sync`). A key is valid only for the set that returned it.
pub struct WaitSet<'a> {
    sources: Vec<Source<'a>>,
    deadline: Option<Instant>,
    /// The futex words the sources take at most (see "Limits").
    words: usize,
}

/// Names a source of a [`WaitSet`] or a [`ShmEvents`](crate::ShmEvents): returned when it is
/// added, found in what the wait ([`Ready`]) or the descriptor
/// ([`ShmEvents::ready`](crate::ShmEvents::ready)) reports. Valid only for the set or the
/// descriptor that returned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WaitKey(pub(crate) usize);

impl WaitKey {
    /// The source's position in its set (or descriptor), in the order of adding: 0, 1, 2…
    pub fn index(self) -> usize {
        self.0
    }
}

/// What a [`WaitSet`] or a [`ShmEvents`](crate::ShmEvents) waits for on a queue or byte
/// channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueEvent {
    /// An element (a message) to pop, or the queue closed. In SPSC mode, for the consumer.
    NotEmpty,
    /// Room for an element (in a channel, for a message of its largest size), or the queue
    /// closed. In SPSC mode, for the producer.
    NotFull,
    /// The queue closed ([`ShmQueue::close`]), for any handle.
    Closed,
}

/// The sources of a [`WaitSet`] that were ready when its [`wait`](WaitSet::wait) looked, in
/// the order they were added. Empty when the deadline passed first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    keys: Vec<WaitKey>,
}

impl Ready {
    /// Whether `key`'s source was ready.
    pub fn contains(&self, key: WaitKey) -> bool {
        self.keys.contains(&key)
    }

    /// The ready sources' keys, in the order they were added.
    pub fn keys(&self) -> &[WaitKey] {
        &self.keys
    }

    /// Whether no source was ready: the deadline passed.
    pub fn timed_out(&self) -> bool {
        self.keys.is_empty()
    }
}

/// A value handle a [`WaitSet`] or a [`ShmEvents`](crate::ShmEvents) can wait on: [`Shm`]
/// and [`ShmReader`].
pub trait ValueHandle: sealed::Sealed {}

pub(crate) mod sealed {
    /// A value handle's attachment (the region it uses now: the last it followed).
    pub struct Attachment<'a>(pub(crate) &'a crate::attach::Attached);

    /// Implemented only by the crate's value handles.
    pub trait Sealed {
        /// The attachment the handle uses now.
        fn attachment(&self) -> Attachment<'_>;
        /// `moved` (the handle's attachment) was migrated: the attachment that replaced it,
        /// as the handle's next read follows it.
        fn follow<'s>(&'s self, moved: Attachment<'s>) -> crate::Result<Attachment<'s>>;
    }
}

macro_rules! value_handle {
    ($handle:ident) => {
        impl<T: ShmType> sealed::Sealed for $handle<T> {
            fn attachment(&self) -> sealed::Attachment<'_> {
                sealed::Attachment(self.attached())
            }
            fn follow<'s>(
                &'s self,
                moved: sealed::Attachment<'s>,
            ) -> Result<sealed::Attachment<'s>> {
                $handle::follow(self, moved.0).map(sealed::Attachment)
            }
        }
        impl<T: ShmType> ValueHandle for $handle<T> {}
    };
}
value_handle!(Shm);
value_handle!(ShmReader);

/// The region a value handle uses now.
fn region_of(handle: &dyn sealed::Sealed) -> &Region {
    let attached: &Attached = handle.attachment().0;
    &attached.region
}

enum Source<'a> {
    Value {
        handle: &'a dyn sealed::Sealed,
        since: u64,
        /// The region the handle used when it was added, by address: a handle that followed a
        /// migration since is ready.
        first: usize,
    },
    Queue(Watched<'a>),
    /// Taken out ([`WaitSet::remove`]): never ready, sleeps on nothing.
    Removed,
}

fn address(region: &Region) -> usize {
    std::ptr::from_ref(region) as usize
}

impl<'a> Source<'a> {
    /// How many futex words the source takes at most (see "Limits").
    fn words(&self) -> usize {
        match self {
            Source::Value { handle, .. } if region_of(*handle).writable() => {
                WORDS_PER_COUNTED_SOURCE
            }
            Source::Value { .. } => 1,
            Source::Queue(watched) => watched.words(),
            Source::Removed => 0,
        }
    }

    /// Arms the source: see `wait::Armed`; `None` for a removed one.
    fn arm(&self) -> Option<Armed<'a>> {
        Some(match self {
            Source::Removed => return None,
            Source::Value { handle, .. } => Armed::value_change(region_of(*handle)),
            Source::Queue(watched) => watched.arm(),
        })
    }

    /// Whether the source is ready now. Called after arming it (see `wait::Armed`).
    /// `look`: also ask whether its region was removed from its location (a system call).
    fn is_ready(&self, armed: &Armed<'_>, look: bool) -> bool {
        match self {
            Source::Removed => false,
            Source::Value {
                handle,
                since,
                first,
            } => {
                let region = region_of(*handle);
                version_after_arming(region, armed) != *since
                    || address(region) != *first
                    || region.has_moved()
                    || (look && region_removed(region))
            }
            Source::Queue(watched) => {
                watched.is_ready() || (look && region_removed(watched.region()))
            }
        }
    }
}

impl Default for WaitSet<'_> {
    fn default() -> Self {
        WaitSet::new()
    }
}

impl<'a> WaitSet<'a> {
    /// An empty set, without a deadline.
    pub fn new() -> Self {
        WaitSet {
            sources: Vec::new(),
            deadline: None,
            words: 0,
        }
    }

    /// Adds a value region: ready when its version (as [`Shm::version`] counts them) differs
    /// from `since`, or when the region was removed, replaced or migrated (see the type's
    /// docs). Update `since` with [`set_since`](Self::set_since) after handling a change.
    ///
    /// ```
    /// use std::time::Duration;
    /// use shmstore::{Shm, WaitSet};
    /// # let name = format!("doc-ws-value-{}", std::process::id());
    /// let limits = Shm::<u64>::options().unlink_on_drop(true).create(&name, 100)?;
    /// let reader = Shm::<u64>::open_reader(&name)?;    // a reader works as well
    /// let mut set = WaitSet::new();
    /// let key = set.add_value(&reader, reader.version())?;
    /// *limits.lock().unwrap() = 200;
    /// set.set_timeout(Duration::from_secs(5));
    /// assert!(set.wait()?.contains(key));
    /// set.set_since(key, reader.version());              // handled: wait for the next one
    /// # Ok::<(), shmstore::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidWaitSet`] when the set is full (see "Limits").
    pub fn add_value<H: ValueHandle>(&mut self, handle: &'a H, since: u64) -> Result<WaitKey> {
        let region = region_of(handle);
        self.check_room(if region.writable() {
            WORDS_PER_COUNTED_SOURCE
        } else {
            1
        })?;
        Ok(self.push(Source::Value {
            handle,
            since,
            first: address(region),
        }))
    }

    /// Adds a queue's `event` (see [`QueueEvent`]). In SPSC mode, `NotEmpty` claims the
    /// consumer role and `NotFull` the producer role for this handle, as a first pop (or push)
    /// would.
    ///
    /// ```
    /// use shmstore::{QueueEvent, QueueMode, ShmQueue, WaitSet};
    /// # let name = format!("doc-ws-queue-{}", std::process::id());
    /// let inbox = ShmQueue::<u64, 16>::options()
    ///     .queue_mode(QueueMode::Spsc)
    ///     .unlink_on_drop(true)
    ///     .create(&name)?;
    /// let mut set = WaitSet::new();
    /// let jobs = set.add_queue(&inbox, QueueEvent::NotEmpty)?; // takes the consumer role
    /// let second = ShmQueue::<u64, 16>::open(&name)?;
    /// let refused = set.add_queue(&second, QueueEvent::NotEmpty);
    /// assert!(matches!(refused, Err(shmstore::Error::RoleTaken { .. })));
    /// second.push(1)?;
    /// assert!(set.wait()?.contains(jobs));
    /// # Ok::<(), shmstore::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::RoleTaken`] (or [`Error::LockedByReader`]) when the SPSC role is another
    /// handle's, as for a pop or push; [`Error::InvalidWaitSet`] when the set is full.
    pub fn add_queue<T: ShmType, const N: usize>(
        &mut self,
        queue: &'a ShmQueue<T, N>,
        event: QueueEvent,
    ) -> Result<WaitKey> {
        self.add_watched(queue.mode(), event, || queue.watch(event))
    }

    /// Adds a byte channel's `event`, as [`add_queue`](Self::add_queue) does; "not full" is
    /// room for a message of the channel's largest size.
    ///
    /// ```
    /// use shmstore::{QueueEvent, ShmChannel, WaitSet};
    /// # let name = format!("doc-ws-channel-{}", std::process::id());
    /// let channel = ShmChannel::options().capacity(4096).unlink_on_drop(true).create(&name)?;
    /// let mut set = WaitSet::new();
    /// let closed = set.add_channel(&channel, QueueEvent::Closed)?;
    /// ShmChannel::open(&name)?.close();
    /// assert!(set.wait()?.contains(closed));
    /// # Ok::<(), shmstore::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`add_queue`](Self::add_queue).
    pub fn add_channel(&mut self, channel: &'a ShmChannel, event: QueueEvent) -> Result<WaitKey> {
        self.add_watched(channel.mode(), event, || channel.watch(event))
    }

    /// Adds "room for a message of `len` bytes" in `channel` (or its close): as
    /// [`add_channel`](Self::add_channel) with [`QueueEvent::NotFull`], which waits for room
    /// for a message of the channel's largest size, but ready as soon as a message of `len`
    /// bytes fits. For a sender of small messages in a channel that also carries large ones.
    /// [`ShmEvents::add_channel_room`](crate::ShmEvents::add_channel_room) is the same for a
    /// descriptor.
    ///
    /// ```
    /// use shmstore::{ShmChannel, WaitSet};
    /// # let name = format!("doc-ws-room-{}", std::process::id());
    /// let channel = ShmChannel::options().capacity(4096).unlink_on_drop(true).create(&name)?;
    /// let mut set = WaitSet::new();
    /// let room_for_ack = set.add_channel_room(&channel, 16)?;
    /// assert!(set.wait()?.contains(room_for_ack));
    /// let too_large = set.add_channel_room(&channel, channel.max_message() + 1);
    /// assert!(matches!(too_large, Err(shmstore::Error::MessageTooLarge { .. })));
    /// # Ok::<(), shmstore::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::MessageTooLarge`] when `len` is beyond the channel's largest message (room
    /// for it never comes); otherwise as [`add_channel`](Self::add_channel) with
    /// [`QueueEvent::NotFull`] (in SPSC mode, it claims the producer role).
    pub fn add_channel_room(&mut self, channel: &'a ShmChannel, len: usize) -> Result<WaitKey> {
        let event = QueueEvent::NotFull;
        self.add_watched(channel.mode(), event, || channel.watch_room(len))
    }

    /// Sets the version a value source waits to see changed (after its last change was
    /// handled), and takes the region its handle uses now (after it followed a migration) as
    /// the one it waits on. Does nothing for a key that is not a value source of this set.
    pub fn set_since(&mut self, key: WaitKey, since: u64) {
        if let Some(Source::Value {
            handle,
            since: old,
            first,
        }) = self.sources.get_mut(key.0)
        {
            *old = since;
            *first = address(region_of(*handle));
        }
    }

    /// Takes a source out of the set (a region that was removed, say): it is never ready
    /// again, and its futex words are free for another source. The other keys stay valid.
    /// Does nothing for a key this set does not have (or no longer has).
    pub fn remove(&mut self, key: WaitKey) {
        if let Some(source) = self.sources.get_mut(key.0) {
            self.words -= source.words();
            *source = Source::Removed;
        }
    }

    /// Ends every later [`wait`](Self::wait) at `deadline` (none: waits until a source is
    /// ready).
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    /// Ends every later [`wait`](Self::wait) `timeout` from now (a timeout too large for a
    /// deadline means none).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.deadline = Instant::now().checked_add(timeout);
    }

    /// How many sources the set has (those [removed](Self::remove) not counted).
    pub fn len(&self) -> usize {
        self.sources
            .iter()
            .filter(|s| !matches!(s, Source::Removed))
            .count()
    }

    /// Whether the set has no source.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sleeps until at least one source is ready or the deadline passes, and returns every
    /// source ready then (empty at the deadline). Returns at once when a source is ready
    /// already. Nothing stays registered after it returns.
    ///
    /// A queue or channel source stays ready while its queue is closed (its pops return at
    /// once), and a ready source ends the wait even after the deadline: a loop over `wait`
    /// that drains with `try_pop`/`try_recv` checks `is_closed()` (or removes the source),
    /// or it wakes again at once, forever.
    ///
    /// ```
    /// use std::time::Duration;
    /// use shmstore::{Shm, WaitSet};
    /// # let name = format!("doc-ws-wait-{}", std::process::id());
    /// let value = Shm::<u64>::options().unlink_on_drop(true).create(&name, 0)?;
    /// let mut set = WaitSet::new();
    /// set.add_value(&value, value.version())?;
    /// set.set_timeout(Duration::from_millis(10));
    /// let ready = set.wait()?;
    /// assert!(ready.timed_out());                      // nothing changed in time
    /// # Ok::<(), shmstore::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidWaitSet`] for a set with no source and no deadline, which nothing could
    /// ever end.
    pub fn wait(&self) -> Result<Ready> {
        if self.is_empty() && self.deadline.is_none() {
            return Err(Error::InvalidWaitSet {
                reason: "it has no source and no deadline, so nothing could end the wait; add a \
                         source or set a deadline"
                    .to_string(),
            });
        }
        let mut look = false;
        let mut last_look = Instant::now();
        loop {
            // Arm every source, then check every one: a publish after its source's check moved
            // a word the sleep below expects unmoved.
            let armed: Vec<(WaitKey, &Source<'a>, Armed<'a>)> = self
                .sources
                .iter()
                .enumerate()
                .filter_map(|(i, source)| Some((WaitKey(i), source, source.arm()?)))
                .collect();
            let ready_keys = |look: bool| -> Vec<WaitKey> {
                armed
                    .iter()
                    .filter(|(_, source, armed)| source.is_ready(armed, look))
                    .map(|&(key, _, _)| key)
                    .collect()
            };
            // What moved first, without a system call: a wake-up is nearly always a publish.
            // Only when none is ready does a look for removals (one `fstatat` or `shmget` per
            // source) follow.
            let mut keys = ready_keys(false);
            if keys.is_empty() && look {
                keys = ready_keys(true);
            }
            let armed: Vec<Armed<'a>> = armed.into_iter().map(|(_, _, armed)| armed).collect();
            if !keys.is_empty() {
                return Ok(Ready { keys });
            }
            let slice = match slice_for(&armed, self.deadline) {
                Ok(slice) => slice,
                Err(TimedOut) => return Ok(Ready { keys }),
            };
            let slept = Instant::now();
            let ended = sleep_on_any(&armed, slice);
            drop(armed);
            // Removals: a region shmstore removes wakes its sleepers without moving a word (a
            // look after an early wake finds it); one removed by anything else is found within
            // a second. On a kernel without futex_waitv every slice ends early: look once a
            // second there.
            look = match ended {
                WaitAny::SleptOnFirst => last_look.elapsed() >= SLEEP_SLICE,
                _ => time_to_look(slept, Some(slice), last_look),
            };
            if look {
                last_look = Instant::now();
            }
        }
    }

    /// Adds a queue or channel source that `watch` makes, if its words fit: checked first, so
    /// that a source refused claims no SPSC role.
    fn add_watched(
        &mut self,
        mode: QueueMode,
        event: QueueEvent,
        watch: impl FnOnce() -> Result<Watched<'a>>,
    ) -> Result<WaitKey> {
        self.check_room(words_for(mode == QueueMode::Spsc, event))?;
        let watched = watch()?;
        Ok(self.push(Source::Queue(watched)))
    }

    /// Whether a source of `words` futex words still fits (see "Limits").
    fn check_room(&self, words: usize) -> Result<()> {
        let total = self.words + words;
        if total > WAIT_ANY_MAX {
            return Err(Error::InvalidWaitSet {
                reason: format!(
                    "this source would make it sleep on {total} futex words, more than the \
                     {WAIT_ANY_MAX} one futex_waitv takes (a writable value handle or an MPMC \
                     queue event takes 2, other sources 1); split the sources over several \
                     wait sets, each waited on by its own thread"
                ),
            });
        }
        Ok(())
    }

    fn push(&mut self, source: Source<'a>) -> WaitKey {
        self.words += source.words();
        self.sources.push(source);
        WaitKey(self.sources.len() - 1)
    }
}

impl std::fmt::Debug for WaitSet<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitSet")
            .field("sources", &self.sources.len())
            .field("deadline", &self.deadline)
            .field("waits_on_many", &waits_on_many())
            .finish()
    }
}

/// Makes this process behave as on a kernel without `futex_waitv`, for tests of that path (see
/// [`WaitSet`], "Limits"). Not part of the public API.
#[doc(hidden)]
pub fn __force_futex_waitv_fallback() {
    crate::sys::futex::force_no_waitv();
}

/// Makes every later [`WaitSet::wait`] of this process sleep up to an hour between looks
/// instead of a second, for tests: a wake-up lost by the protocol then shows as a hang. Not
/// part of the public API.
#[doc(hidden)]
pub fn __no_safety_slice() {
    crate::wait::drop_safety_slice();
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::ShmQueueOptions;

    /// Generous: only a broken path gets near it.
    const HANG: Duration = Duration::from_secs(20);

    fn name(test: &str) -> String {
        format!("unit-ws-{test}-{}", std::process::id())
    }

    fn value(test: &str) -> Shm<u64> {
        Shm::<u64>::options()
            .unlink_on_drop(true)
            .create(name(test).as_str(), 0)
            .unwrap()
    }

    fn queue(test: &str, mode: QueueMode) -> ShmQueue<u64, 2> {
        ShmQueueOptions::<u64, 2>::new()
            .queue_mode(mode)
            .unlink_on_drop(true)
            .create(name(test).as_str())
            .unwrap()
    }

    #[test]
    fn the_deadline_ends_a_wait_with_nothing_ready_and_an_empty_set_needs_one() {
        let v = value("deadline");
        let mut set = WaitSet::new();
        set.add_value(&v, v.version()).unwrap();
        set.set_timeout(Duration::from_millis(20));
        assert!(set.wait().unwrap().timed_out());
        let empty = WaitSet::new();
        assert!(matches!(empty.wait(), Err(Error::InvalidWaitSet { .. })));
        let mut empty = WaitSet::new();
        empty.set_timeout(Duration::from_millis(5));
        assert!(empty.wait().unwrap().timed_out());
    }

    /// Every ready source is reported, not only the first, and a reader (which cannot count
    /// itself in) is seen too.
    #[test]
    fn every_ready_source_is_reported() {
        let a = value("all-a");
        let b = value("all-b");
        let reader = Shm::<u64>::open_reader(name("all-b").as_str()).unwrap();
        let mut set = WaitSet::new();
        let ka = set.add_value(&a, a.version()).unwrap();
        let kb = set.add_value(&b, b.version()).unwrap();
        let kr = set.add_value(&reader, reader.version()).unwrap();
        *a.lock().unwrap() = 1;
        *b.lock().unwrap() = 1;
        let ready = set.wait().unwrap();
        assert_eq!(ready.keys(), [ka, kb, kr]);
    }

    /// A writer in another thread wakes a reader-only set (its 10 ms re-check).
    #[test]
    fn a_reader_source_sees_a_change_without_being_counted_in() {
        let v = value("reader");
        let reader = Shm::<u64>::open_reader(name("reader").as_str()).unwrap();
        let mut set = WaitSet::new();
        let key = set.add_value(&reader, reader.version()).unwrap();
        set.set_timeout(HANG);
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(30));
                *v.lock().unwrap() = 5;
            });
            assert_eq!(set.wait().unwrap().keys(), [key]);
        });
    }

    /// Closing wakes a "not empty" and a "closed" registration; "not full" is ready while
    /// there is room.
    #[test]
    fn close_and_room_are_events() {
        for mode in [QueueMode::Mpmc, QueueMode::Spsc] {
            let q = queue(&format!("close-{mode:?}"), mode);
            let closer =
                ShmQueue::<u64, 2>::open(name(&format!("close-{mode:?}")).as_str()).unwrap();
            let mut set = WaitSet::new();
            let not_empty = set.add_queue(&q, QueueEvent::NotEmpty).unwrap();
            let closed = set.add_queue(&closer, QueueEvent::Closed).unwrap();
            set.set_timeout(HANG);
            std::thread::scope(|s| {
                s.spawn(|| {
                    std::thread::sleep(Duration::from_millis(30));
                    // A queue handle is not Sync: the closing thread opens its own.
                    ShmQueue::<u64, 2>::open(name(&format!("close-{mode:?}")).as_str())
                        .unwrap()
                        .close();
                });
                assert_eq!(set.wait().unwrap().keys(), [not_empty, closed]);
            });
        }
        let q = queue("room", QueueMode::Mpmc);
        let mut set = WaitSet::new();
        let room = set.add_queue(&q, QueueEvent::NotFull).unwrap();
        assert!(set.wait().unwrap().contains(room));
        q.push(1).unwrap();
        q.push(2).unwrap();
        set.set_timeout(Duration::from_millis(20));
        assert!(set.wait().unwrap().timed_out(), "a full queue has no room");
    }

    /// In SPSC mode, registering "not empty" takes the consumer role; a second consumer is
    /// refused with `RoleTaken`, as its first pop would be; "closed" takes no role.
    #[test]
    fn an_spsc_registration_claims_the_role() {
        let q = queue("role", QueueMode::Spsc);
        let other = ShmQueue::<u64, 2>::open(name("role").as_str()).unwrap();
        let mut set = WaitSet::new();
        set.add_queue(&q, QueueEvent::NotEmpty).unwrap();
        assert!(matches!(
            set.add_queue(&other, QueueEvent::NotEmpty),
            Err(Error::RoleTaken {
                role: "consumer",
                ..
            })
        ));
        assert!(matches!(other.try_pop(), Err(Error::RoleTaken { .. })));
        set.add_queue(&other, QueueEvent::Closed).unwrap();
        set.add_queue(&other, QueueEvent::NotFull).unwrap();
        assert!(matches!(q.try_push(1), Err(Error::RoleTaken { .. })));
    }

    /// A removed value region counts as ready: the wait ends (the handle's next wait reports
    /// `Removed`) instead of sleeping on an orphan.
    #[test]
    fn a_removed_region_is_ready() {
        let v = Shm::<u64>::create(name("removed").as_str(), 0).unwrap();
        let mut set = WaitSet::new();
        let key = set.add_value(&v, v.version()).unwrap();
        set.set_timeout(HANG);
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(30));
                crate::unlink(name("removed").as_str()).unwrap();
            });
            let start = Instant::now();
            assert_eq!(set.wait().unwrap().keys(), [key]);
            assert!(start.elapsed() < HANG);
        });
        assert!(matches!(
            v.wait_for_change(v.version(), Some(HANG)),
            Err(Error::Removed { .. })
        ));
    }

    /// A channel with room for a small message but not for one of its largest size: "not
    /// full" is not ready, "room for 8 bytes" is, in a wait set and in a descriptor alike; a
    /// length beyond the largest message is refused.
    #[test]
    fn room_for_a_smaller_message_is_its_own_source_in_both_forms() {
        let channel = crate::ShmChannel::options()
            .capacity(4096)
            .unlink_on_drop(true)
            .create(name("room-len").as_str())
            .unwrap();
        let (ring, max) = (channel.capacity(), channel.max_message());
        let record = |len: usize| (len + 8).div_ceil(8) * 8;
        channel.try_send(&vec![1; max]).unwrap();
        // Fill to 16 bytes short of the ring: a record of 8 bytes fits, one of `max` not.
        channel
            .try_send(&vec![2; ring - 16 - record(max) - 8])
            .unwrap();
        assert!(
            channel.try_send(&vec![3; max]).is_err(),
            "no room for the largest"
        );

        let mut set = WaitSet::new();
        let not_full = set.add_channel(&channel, QueueEvent::NotFull).unwrap();
        let room = set.add_channel_room(&channel, 8).unwrap();
        assert_eq!(set.wait().unwrap().keys(), [room]);
        assert!(!set.wait().unwrap().contains(not_full));

        let mut events = crate::ShmEvents::new().unwrap();
        let not_full = events.add_channel(&channel, QueueEvent::NotFull).unwrap();
        let room = events.add_channel_room(&channel, 8).unwrap();
        let ready: Vec<WaitKey> = events.ready().into_iter().map(|(key, _)| key).collect();
        assert_eq!(ready, [room]);
        assert_ne!(room, not_full);

        assert!(matches!(
            set.add_channel_room(&channel, max + 1),
            Err(Error::MessageTooLarge { .. })
        ));
        assert!(matches!(
            events.add_channel_room(&channel, max + 1),
            Err(Error::MessageTooLarge { .. })
        ));
    }

    /// A source refused for an SPSC role taken leaves the set's count of futex words as it
    /// was (it used to keep the words it had reserved).
    #[test]
    fn a_refused_source_takes_no_room() {
        let q = queue("refused", QueueMode::Spsc);
        let other = ShmQueue::<u64, 2>::open(name("refused").as_str()).unwrap();
        let v = value("refused-v");
        let mut set = WaitSet::new();
        set.add_queue(&q, QueueEvent::NotEmpty).unwrap();
        for _ in 0..200 {
            assert!(set.add_queue(&other, QueueEvent::NotEmpty).is_err());
        }
        for _ in 0..(WAIT_ANY_MAX - 1) / WORDS_PER_COUNTED_SOURCE {
            set.add_value(&v, v.version()).unwrap();
        }
    }

    /// More sources than one futex_waitv sleeps on are refused with a message that says what
    /// to do.
    #[test]
    fn too_many_sources_are_refused() {
        let v = value("many");
        let mut set = WaitSet::new();
        for _ in 0..WAIT_ANY_MAX / WORDS_PER_COUNTED_SOURCE {
            set.add_value(&v, v.version()).unwrap();
        }
        let refused = set.add_value(&v, v.version()).unwrap_err();
        assert!(matches!(refused, Error::InvalidWaitSet { .. }));
        assert!(
            refused.to_string().contains("split the sources"),
            "{refused}"
        );
        // The same region many times over is still one wait, woken by one commit.
        *v.lock().unwrap() = 1;
        assert_eq!(set.wait().unwrap().keys().len(), set.len());
        // A removed source frees its words and is never ready again.
        set.remove(WaitKey(0));
        set.remove(WaitKey(0));
        assert!(!set.wait().unwrap().contains(WaitKey(0)));
        set.add_value(&v, 0).unwrap();
        assert!(set.add_value(&v, 0).is_err());
    }
}
