//! `ShmEvents`: a descriptor for event loops (an eventfd) that becomes readable when a watched
//! region changes or a watched queue or channel becomes ready, through the process's notifier
//! (`notifier`); and the look at a value's version that it shares with the async API.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;

use crate::attach::Attached;
use crate::error::{Error, Result};
use crate::layout::ShmType;
use crate::notifier::{Fired, Source, Target, Watch};
use crate::queue::Watched;
use crate::sys::eventfd::EventFd;
use crate::wait::{region_removed, unchanged_error, version_after_arming, Armed, Unchanged};
use crate::wait_set::sealed::Attachment;
use crate::{QueueEvent, ShmChannel, ShmQueue, ValueHandle, WaitKey};

/// How a value's wait stands after one look: changed (the new version), or armed.
pub(crate) enum ValueLook {
    Changed(u64),
    Armed(Source),
}

/// Arms a wait for a version of `attached`'s value other than `since`, then checks; follows a
/// migration (versions continue in the successor); after a `quiet` wake-up, looks for a
/// removal. The blocking `wait_for_change`'s steps, without its sleep.
pub(crate) fn look_at_value<'a>(
    mut attached: &'a Attached,
    follow: impl Fn(&'a Attached) -> Result<&'a Attached>,
    since: u64,
    quiet: bool,
) -> Result<ValueLook> {
    loop {
        let region = &attached.region;
        let armed = Armed::value_change(region);
        // Counted in first (a writable handle), so either this load sees a new version or its
        // publisher sees the count; a read-only handle relies on its slice (see `wait`).
        let now = version_after_arming(region, &armed);
        if now != since {
            return Ok(ValueLook::Changed(now));
        }
        if region.has_moved() {
            match follow(attached) {
                Ok(next) => {
                    attached = next;
                    continue;
                }
                Err(_) => return Err(unchanged_error(region, Unchanged::Moved, None)),
            }
        }
        if quiet && region_removed(region) && !region.has_moved() {
            return Err(unchanged_error(region, Unchanged::Removed, None));
        }
        // SAFETY: a value's futex word (its version) and sleeper count (`waiters`) lie in its
        // header, in the region's mapping.
        return Ok(ValueLook::Armed(unsafe {
            Source::new(armed, region.shared_mapping())
        }));
    }
}

/// What a source of a [`ShmEvents`] was found ready for, as [`ShmEvents::ready`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// A value source: the value changed, and this is its new version. The source now waits
    /// for a version other than this one.
    Changed(u64),
    /// A queue or channel source: its [`QueueEvent`] holds (an element or a message, room,
    /// or the close).
    Event,
}

/// One look at a source: what holds (if anything), and the source armed again.
type Look<'a> = Box<dyn FnMut(bool) -> Result<(Option<Readiness>, Source)> + 'a>;

/// One source of a [`ShmEvents`] and its registration with the notifier.
struct Registered<'a> {
    /// `None` after an error: it reports nothing more.
    watch: Option<Watch>,
    look: Look<'a>,
}

/// A descriptor for event loops: an eventfd that becomes readable when one of its sources is
/// ready. The sources, their arguments and their keys ([`WaitKey`]) are those of a
/// [`WaitSet`](crate::WaitSet): value regions ([`add_value`](Self::add_value): a version other
/// than `since`), queues and channels ([`add_queue`](Self::add_queue),
/// [`add_channel`](Self::add_channel): a [`QueueEvent`], with the same meanings and the same
/// SPSC role rules; [`add_channel_room`](Self::add_channel_room): room for a message of a
/// given size). Hand it to `epoll`, `poll(2)`, mio (`SourceFd`) or tokio's `AsyncFd`, and call
/// [`ready`](Self::ready) when it is readable: it says which sources are ready and arms them
/// again.
///
/// Behind it, the process's notifier thread sleeps on every source's futex word at once
/// (`futex_waitv`, Linux 5.16+; before that it looks every millisecond) and signals the
/// eventfd when one moves: no thread per source, and publishers still make no system call
/// when nobody waits. It borrows the handles it watches (`'a`); every source counts itself in
/// as a sleeper while it lives and goes, with that count, when it is
/// [removed](Self::remove) or the `ShmEvents` drops.
///
/// The descriptor is the same one, open, for as long as the `ShmEvents` lives (what tokio's
/// `AsyncFd::register` asks of it), and readable until [`ready`](Self::ready) resets it.
///
/// Where it differs from a [`WaitSet`](crate::WaitSet), because nobody sleeps in a call:
/// sources are edge-triggered, as `EPOLLET`. A queue reported ready is reported again only
/// after its next event (a push, a pop, the close), so drain what is there (pop until empty)
/// before waiting again; a value source moves its `since` to each version it reports (no
/// `set_since`). It has no deadline (the event loop has its timers) and no limit of 128 futex
/// words (the notifier starts a thread per 63 sources). A queue handle is not `Sync`, so an
/// `ShmEvents` that watches one stays on its thread (a mio loop, a current-thread runtime or
/// a `LocalSet`); in tasks that move between threads use the async calls (`Shm::changed`,
/// `ShmQueue::pop_async`, feature `tokio`).
///
/// ```
/// use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
/// use std::os::fd::AsFd;
/// use shmstore::{QueueEvent, Readiness, Shm, ShmEvents, ShmQueue};
/// # let (cfg_name, jobs_name) = (format!("doc-events-c-{}", std::process::id()), format!("doc-events-q-{}", std::process::id()));
/// let config = Shm::<u64>::options().unlink_on_drop(true).create(&cfg_name, 1)?;
/// let jobs = ShmQueue::<u64, 8>::options().unlink_on_drop(true).create(&jobs_name)?;
/// let mut events = ShmEvents::new()?;
/// let config_changed = events.add_value(&config, config.version())?;
/// let job_waiting = events.add_queue(&jobs, QueueEvent::NotEmpty)?;
///
/// let producer = ShmQueue::<u64, 8>::open(&jobs_name)?; // another process, usually
/// producer.push(42)?;
///
/// let mut fds = [PollFd::new(events.as_fd(), PollFlags::POLLIN)];
/// poll(&mut fds, PollTimeout::NONE).expect("poll");
/// for (key, readiness) in events.ready() {
///     assert_eq!(key, job_waiting);
///     assert_eq!(readiness?, Readiness::Event);
///     while let Some(job) = jobs.try_pop()? {
///         assert_eq!(job, 42);
///     }
/// }
/// # let _ = config_changed;
/// # Ok::<(), shmstore::Error>(())
/// ```
pub struct ShmEvents<'a> {
    fd: Arc<EventFd>,
    sources: Vec<Option<Registered<'a>>>,
    /// Reports found when a source was added or re-armed, not yet handed out.
    pending: Vec<(WaitKey, Result<Readiness>)>,
}

impl fmt::Debug for ShmEvents<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmEvents")
            .field("fd", &self.fd.as_raw_fd())
            .field("sources", &self.len())
            .finish_non_exhaustive()
    }
}

impl<'a> ShmEvents<'a> {
    /// A descriptor with no source yet (not readable).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the process cannot open one more descriptor (`eventfd`).
    pub fn new() -> Result<Self> {
        let fd = EventFd::new().map_err(|e| Error::io("an event descriptor", "eventfd", e))?;
        Ok(ShmEvents {
            fd: Arc::new(fd),
            sources: Vec::new(),
            pending: Vec::new(),
        })
    }

    /// How many sources it has (those [removed](Self::remove) not counted).
    pub fn len(&self) -> usize {
        self.sources.iter().flatten().count()
    }

    /// Whether it has no source.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a value region ([`Shm`](crate::Shm) or [`ShmReader`](crate::ShmReader)): ready
    /// when its version differs from `since` (then for a version other than each one
    /// reported). It follows a migration, as the handle does, as
    /// [`WaitSet::add_value`](crate::WaitSet::add_value). A reader cannot count itself in: it
    /// is told at once when the region notifies readers, and otherwise within 10 ms of a
    /// change.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the notifier cannot start a thread; those of the first look at the
    /// region ([`Error::Removed`]).
    pub fn add_value<H: ValueHandle>(&mut self, handle: &'a H, since: u64) -> Result<WaitKey> {
        self.add(value_look(since, handle))
    }

    /// Adds a queue's `event`, as [`WaitSet::add_queue`](crate::WaitSet::add_queue): in SPSC
    /// mode, `NotEmpty` claims the consumer role and `NotFull` the producer role for this
    /// handle.
    ///
    /// # Errors
    ///
    /// [`Error::RoleTaken`] (or [`Error::LockedByReader`]) when the SPSC role is another
    /// handle's; [`Error::Io`] when the notifier cannot start a thread.
    pub fn add_queue<T: ShmType, const N: usize>(
        &mut self,
        queue: &'a ShmQueue<T, N>,
        event: QueueEvent,
    ) -> Result<WaitKey> {
        let watched = queue.watch(event)?;
        self.add(event_look(watched))
    }

    /// Adds a byte channel's `event`, as [`add_queue`](Self::add_queue); "not full" is room
    /// for a message of the channel's largest size (for a smaller one, see
    /// [`add_channel_room`](Self::add_channel_room)).
    ///
    /// # Errors
    ///
    /// As [`add_queue`](Self::add_queue).
    pub fn add_channel(&mut self, channel: &'a ShmChannel, event: QueueEvent) -> Result<WaitKey> {
        let watched = channel.watch(event)?;
        self.add(event_look(watched))
    }

    /// Adds "room for a message of `len` bytes" in `channel` (or its close), as
    /// [`WaitSet::add_channel_room`](crate::WaitSet::add_channel_room).
    ///
    /// # Errors
    ///
    /// [`Error::MessageTooLarge`] when `len` is beyond the channel's largest message;
    /// otherwise as [`add_channel`](Self::add_channel) with [`QueueEvent::NotFull`].
    pub fn add_channel_room(&mut self, channel: &'a ShmChannel, len: usize) -> Result<WaitKey> {
        let watched = channel.watch_room(len)?;
        self.add(event_look(watched))
    }

    /// Takes a source out: its registration and its count among its source's sleepers go at
    /// once, and it is never reported again. The other keys stay valid. Does nothing for a key
    /// this descriptor does not have (or no longer has).
    pub fn remove(&mut self, key: WaitKey) {
        if let Some(slot) = self.sources.get_mut(key.0) {
            *slot = None;
        }
        self.pending.retain(|(pending, _)| *pending != key);
    }

    /// Which sources are ready, each armed again; resets the descriptor (not readable until
    /// the next event). Call it when the descriptor is readable; it never blocks, and an
    /// empty list means a wake-up that found nothing ready yet (a slice that ran out: a
    /// source re-checks at least once a second, as a blocking wait does).
    ///
    /// Each entry is a source's key and what it found ([`Readiness`]), or why it stopped:
    /// [`Error::Removed`] when the region, queue or channel was removed from its location (or
    /// a value's migration could not be followed); the source then reports nothing more:
    /// [`remove`](Self::remove) it.
    pub fn ready(&mut self) -> Vec<(WaitKey, Result<Readiness>)> {
        self.fd.reset();
        let mut found = std::mem::take(&mut self.pending);
        for (index, slot) in self.sources.iter_mut().enumerate() {
            let Some(registered) = slot else { continue };
            let Some(watch) = &registered.watch else {
                continue;
            };
            let Some(fired) = watch.fired(None) else {
                continue;
            };
            let key = WaitKey(index);
            // Out of the source's count before the look arms it again (`Watch::disarm`).
            watch.disarm();
            match (registered.look)(fired == Fired::Quiet) {
                Ok((readiness, source)) => {
                    watch.rearm(source, None);
                    if let Some(readiness) = readiness {
                        found.push((key, Ok(readiness)));
                    }
                }
                Err(error) => {
                    registered.watch = None;
                    found.push((key, Err(error)));
                }
            }
        }
        found
    }

    fn add(&mut self, mut look: Look<'a>) -> Result<WaitKey> {
        let key = WaitKey(self.sources.len());
        let (readiness, source) = look(false)?;
        let watch = Watch::new(source, Target::Descriptor(Arc::clone(&self.fd)))?;
        if let Some(readiness) = readiness {
            self.pending.push((key, Ok(readiness)));
            self.fd.signal();
        }
        self.sources.push(Some(Registered {
            watch: Some(watch),
            look,
        }));
        Ok(key)
    }
}

/// A value source's look: reports the latest version other than `since` (moving `since` to
/// it) and arms the wait for the next.
fn value_look<'a, H: ValueHandle>(mut since: u64, handle: &'a H) -> Look<'a> {
    let follow = move |moved: &'a Attached| handle.follow(Attachment(moved)).map(|next| next.0);
    Box::new(move |quiet| {
        let mut changed = None;
        loop {
            let attached = handle.attachment().0;
            match look_at_value(attached, follow, since, quiet && changed.is_none())? {
                ValueLook::Changed(version) => {
                    since = version;
                    changed = Some(Readiness::Changed(version));
                }
                ValueLook::Armed(source) => return Ok((changed, source)),
            }
        }
    })
}

/// A queue or channel source's look: arms, then checks; a quiet wake-up that finds it not
/// ready looks for a removal.
fn event_look(watched: Watched<'_>) -> Look<'_> {
    Box::new(move |quiet| {
        let (source, ready) = watched.arm_source();
        if !ready && quiet {
            if let Some(removed) = watched.removal() {
                return Err(removed);
            }
        }
        Ok((ready.then_some(Readiness::Event), source))
    })
}

impl AsFd for ShmEvents<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for ShmEvents<'_> {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
