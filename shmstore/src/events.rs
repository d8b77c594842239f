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
use crate::queue::Side;
use crate::region::Region;
use crate::snapshot::version_from_word;
use crate::sys::eventfd::EventFd;
use crate::wait::{region_removed, unchanged_error, Armed, Unchanged};
use crate::{Shm, ShmChannel, ShmQueue, ShmReader};

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
        let now = version_now(region);
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

/// A value's published version, loaded as the blocking wait loads it: sequentially
/// consistent through a writable mapping (it pairs with the publisher's load of `waiters`),
/// acquire through a read-only one (which cannot count itself in anyway).
fn version_now(region: &Region) -> u64 {
    use crate::format::LoadAcquire;
    let version = &region.header().version;
    version_from_word(if region.writable() {
        version.load(std::sync::atomic::Ordering::SeqCst)
    } else {
        version.load_acquire()
    })
}

/// A key that names one watch of a [`ShmEvents`], as [`ShmEvents::ready`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WatchKey(usize);

/// What a watch of a [`ShmEvents`] found ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// The value changed: its new version. The watch now waits for a version other than
    /// this one.
    Changed(u64),
    /// The queue or channel has an element or a message (a pop watch), room (a push watch),
    /// or is closed.
    Ready,
}

/// What [`ShmEvents::ready`] reports for one watch.
#[derive(Debug)]
pub struct Ready {
    /// Which watch.
    pub key: WatchKey,
    /// What it found, or why it stopped: [`Error::Removed`] when the region, queue or channel
    /// was removed from its location (the watch then reports nothing more: unwatch it), or
    /// an error of the handle (an SPSC role taken, say).
    pub readiness: Result<Readiness>,
}

/// One look at a watch's source: what holds (if anything), and the source armed again.
type Look<'a> = Box<dyn FnMut(bool) -> Result<(Option<Readiness>, Source)> + 'a>;

struct Watched<'a> {
    /// `None` after an error: it reports nothing more.
    watch: Option<Watch>,
    look: Look<'a>,
}

/// A descriptor for event loops: an eventfd that becomes readable when a watched region
/// changes (since a version) or a watched queue or channel becomes ready (an element, room,
/// or its close). Hand it to `epoll`, `poll(2)`, mio (`SourceFd`) or tokio's `AsyncFd`, and
/// call [`ready`](Self::ready) when it is readable: it says which watches are ready and arms
/// them again.
///
/// Behind it, the process's notifier thread sleeps on every watched source's futex word at
/// once (`futex_waitv`, Linux 5.16+; before that it looks every millisecond) and signals the
/// eventfd when one moves: no thread per source, and publishers still make no system call
/// when nobody waits. It borrows the handles it watches (`'a`); every watch counts itself in
/// as its source's sleeper while it lives and goes, with that count, when it is unwatched or
/// the `ShmEvents` drops.
///
/// The descriptor is the same one, open, for as long as the `ShmEvents` lives (what tokio's
/// `AsyncFd::register` asks of it), and readable until [`ready`](Self::ready) resets it.
///
/// Watches are edge-triggered, as `EPOLLET`: a queue reported ready is reported again only
/// after its next event (a push, a pop, the close), so drain what is there (pop until empty)
/// before waiting again. A value's watch moves its `since` to each version it reports. SPSC
/// role rules are those of the blocking calls: a pop watch makes the handle the consumer, a
/// push watch the producer. A queue handle is not `Sync`, so an `ShmEvents` that watches one
/// stays on its thread (a mio loop, a current-thread runtime or a `LocalSet`); in tasks that
/// move between threads use the async calls (`Shm::changed`, `ShmQueue::pop_async`, feature
/// `tokio`).
///
/// ```
/// use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
/// use std::os::fd::AsFd;
/// use shmstore::{Readiness, Shm, ShmEvents, ShmQueue};
/// # let (cfg_name, jobs_name) = (format!("doc-events-c-{}", std::process::id()), format!("doc-events-q-{}", std::process::id()));
/// let config = Shm::<u64>::options().unlink_on_drop(true).create(&cfg_name, 1)?;
/// let jobs = ShmQueue::<u64, 8>::options().unlink_on_drop(true).create(&jobs_name)?;
/// let mut events = ShmEvents::new()?;
/// let config_key = events.watch_value(&config, config.version())?;
/// let jobs_key = events.watch_pop(&jobs)?;
///
/// let producer = ShmQueue::<u64, 8>::open(&jobs_name)?; // another process, usually
/// producer.push(42)?;
///
/// let mut fds = [PollFd::new(events.as_fd(), PollFlags::POLLIN)];
/// poll(&mut fds, PollTimeout::NONE).expect("poll");
/// for ready in events.ready() {
///     assert_eq!(ready.key, jobs_key);
///     assert_eq!(ready.readiness?, Readiness::Ready);
///     while let Some(job) = jobs.try_pop()? {
///         assert_eq!(job, 42);
///     }
/// }
/// # let _ = config_key;
/// # Ok::<(), shmstore::Error>(())
/// ```
pub struct ShmEvents<'a> {
    fd: Arc<EventFd>,
    watches: Vec<Option<Watched<'a>>>,
    /// Reports found when a watch was added or re-armed, not yet handed out.
    pending: Vec<Ready>,
}

impl fmt::Debug for ShmEvents<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmEvents")
            .field("fd", &self.fd.as_raw_fd())
            .field("watches", &self.len())
            .finish_non_exhaustive()
    }
}

impl<'a> ShmEvents<'a> {
    /// A descriptor with nothing to watch yet (not readable).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the process cannot open one more descriptor (`eventfd`).
    pub fn new() -> Result<Self> {
        let fd = EventFd::new().map_err(|e| Error::io("an event descriptor", "eventfd", e))?;
        Ok(ShmEvents {
            fd: Arc::new(fd),
            watches: Vec::new(),
            pending: Vec::new(),
        })
    }

    /// How many watches it holds.
    pub fn len(&self) -> usize {
        self.watches.iter().flatten().count()
    }

    /// Whether it holds no watch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Watches `shm`'s value for a version other than `since` (then for one other than each
    /// version reported). It follows a migration, as the handle does.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the notifier cannot start a thread; those of the first look at the
    /// region ([`Error::Removed`]).
    pub fn watch_value<T: ShmType>(&mut self, shm: &'a Shm<T>, since: u64) -> Result<WatchKey> {
        self.add(value_look(since, move || {
            (shm.attached(), Box::new(move |m| shm.follow(m)))
        }))
    }

    /// Watches a read-only handle's value, as [`watch_value`](Self::watch_value). A reader
    /// cannot count itself in: it is told at once when the region notifies readers, and
    /// otherwise within 10 ms of a change.
    ///
    /// # Errors
    ///
    /// As [`watch_value`](Self::watch_value).
    pub fn watch_reader<T: ShmType>(
        &mut self,
        reader: &'a ShmReader<T>,
        since: u64,
    ) -> Result<WatchKey> {
        self.add(value_look(since, move || {
            (reader.attached(), Box::new(move |m| reader.follow(m)))
        }))
    }

    /// Watches `queue` for an element to pop, or its close.
    ///
    /// # Errors
    ///
    /// [`Error::RoleTaken`] (SPSC: another handle is the consumer), [`Error::Io`].
    pub fn watch_pop<T: ShmType, const N: usize>(
        &mut self,
        queue: &'a ShmQueue<T, N>,
    ) -> Result<WatchKey> {
        self.add(event_look(
            move || queue.arm(Side::Pop),
            move || queue.removal(),
        ))
    }

    /// Watches `queue` for room to push, or its close.
    ///
    /// # Errors
    ///
    /// [`Error::RoleTaken`] (SPSC: another handle is the producer), [`Error::Io`].
    pub fn watch_push<T: ShmType, const N: usize>(
        &mut self,
        queue: &'a ShmQueue<T, N>,
    ) -> Result<WatchKey> {
        self.add(event_look(
            move || queue.arm(Side::Push),
            move || queue.removal(),
        ))
    }

    /// Watches `channel` for a message to receive, or its close.
    ///
    /// # Errors
    ///
    /// As [`watch_pop`](Self::watch_pop).
    pub fn watch_recv(&mut self, channel: &'a ShmChannel) -> Result<WatchKey> {
        self.add(event_look(
            move || channel.arm(Side::Pop, 0),
            move || channel.removal(),
        ))
    }

    /// Watches `channel` for room for a message of `len` bytes, or its close.
    ///
    /// # Errors
    ///
    /// As [`watch_push`](Self::watch_push).
    pub fn watch_send(&mut self, channel: &'a ShmChannel, len: usize) -> Result<WatchKey> {
        self.add(event_look(
            move || channel.arm(Side::Push, len),
            move || channel.removal(),
        ))
    }

    /// Stops watching: the watch's registration and its count in its source go at once.
    /// Unknown keys are ignored.
    pub fn unwatch(&mut self, key: WatchKey) {
        if let Some(slot) = self.watches.get_mut(key.0) {
            *slot = None;
        }
        self.pending.retain(|ready| ready.key != key);
    }

    /// Which watches are ready, each armed again; resets the descriptor (not readable until
    /// the next event). Call it when the descriptor is readable; it never blocks, and an
    /// empty list means a wake-up that found nothing ready yet (a slice that ran out: a
    /// watch re-checks at least once a second, as a blocking wait does).
    pub fn ready(&mut self) -> Vec<Ready> {
        self.fd.reset();
        let mut found = std::mem::take(&mut self.pending);
        for (index, slot) in self.watches.iter_mut().enumerate() {
            let Some(watched) = slot else { continue };
            let Some(watch) = &watched.watch else {
                continue;
            };
            let Some(fired) = watch.fired(None) else {
                continue;
            };
            let key = WatchKey(index);
            // Out of the source's count before the look arms it again (`Watch::disarm`).
            watch.disarm();
            match (watched.look)(fired == Fired::Quiet) {
                Ok((readiness, source)) => {
                    watch.rearm(source, None);
                    if let Some(readiness) = readiness {
                        found.push(Ready {
                            key,
                            readiness: Ok(readiness),
                        });
                    }
                }
                Err(error) => {
                    watched.watch = None;
                    found.push(Ready {
                        key,
                        readiness: Err(error),
                    });
                }
            }
        }
        found
    }

    fn add(&mut self, mut look: Look<'a>) -> Result<WatchKey> {
        let key = WatchKey(self.watches.len());
        let (readiness, source) = look(false)?;
        let watch = Watch::new(source, Target::Descriptor(Arc::clone(&self.fd)))?;
        if let Some(readiness) = readiness {
            self.pending.push(Ready {
                key,
                readiness: Ok(readiness),
            });
            self.fd.signal();
        }
        self.watches.push(Some(Watched {
            watch: Some(watch),
            look,
        }));
        Ok(key)
    }
}

/// The attachment a value handle uses now, and how it follows a migration.
type Followed<'a> = (
    &'a Attached,
    Box<dyn Fn(&'a Attached) -> Result<&'a Attached> + 'a>,
);

/// A value watch's look: reports the latest version other than `since` (moving `since` to it)
/// and arms the wait for the next.
fn value_look<'a>(mut since: u64, handle: impl Fn() -> Followed<'a> + 'a) -> Look<'a> {
    Box::new(move |quiet| {
        let mut changed = None;
        loop {
            let (attached, follow) = handle();
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

/// A queue or channel watch's look: arms, then checks; a quiet wake-up that finds it not
/// ready looks for a removal.
fn event_look<'a>(
    arm: impl Fn() -> Result<(Source, bool)> + 'a,
    removal: impl Fn() -> Option<Error> + 'a,
) -> Look<'a> {
    Box::new(move |quiet| {
        let (source, ready) = arm()?;
        if !ready && quiet {
            if let Some(removed) = removal() {
                return Err(removed);
            }
        }
        Ok((ready.then_some(Readiness::Ready), source))
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
