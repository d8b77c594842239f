//! The async API (feature `tokio`): futures that wait for a value's change, an element or
//! room, woken through their `Waker` by the process's notifier (`notifier`), so they work
//! with any executor.
//!
//! Each future arms its source (counts itself in as a sleeper, so that publishers wake it),
//! then checks its condition, then registers with the notifier, which sleeps on the source's
//! futex word and wakes the task when it moves: the blocking calls' protocol, with the sleep
//! moved to the notifier's thread. Nothing polls: a future that is not ready is polled again
//! only after its word moved (or its slice ran out: 1 s, or 10 ms for a read-only handle that
//! cannot count itself in, as for the blocking calls), and a publisher with nobody waiting
//! still makes no system call.
//!
//! Cancel safety: a future takes an element (or sends) only in the poll that returns it, so a
//! dropped future loses nothing; its registration and its entry in the source's sleeper count
//! go with it. Timeouts come from the runtime (`tokio::time::timeout`).

use std::future::{poll_fn, Future};
use std::task::{Context, Poll};

use crate::attach::Attached;
use crate::error::Result;
use crate::events::{look_at_value, ValueLook};
use crate::layout::ShmType;
use crate::notifier::{Fired, Source, Target, Watch};
use crate::queue::{Attempt, Watched};
use crate::wait_set::sealed::Attachment;
use crate::{QueueEvent, Shm, ShmChannel, ShmQueue, ShmReader, ValueHandle};

/// Whether the registration fired since the last poll (and how); `None` while it waits (then
/// the task's latest waker is the one it wakes). No registration yet: a first look.
/// A fired registration is disarmed at once (see [`Watch::disarm`]): the poll arms again.
fn fired(watch: &Option<Watch>, cx: &Context<'_>) -> Option<Option<Fired>> {
    match watch {
        None => Some(None),
        Some(watch) => {
            let fired = watch.fired(Some(cx.waker()))?;
            watch.disarm();
            Some(Some(fired))
        }
    }
}

/// Registers `source` for this task, or re-arms the registration it has.
fn register(watch: &mut Option<Watch>, source: Source, cx: &Context<'_>) -> Result<()> {
    match watch {
        Some(watch) => watch.rearm(source, Some(cx.waker())),
        None => *watch = Some(Watch::new(source, Target::Waker(cx.waker().clone()))?),
    }
    Ok(())
}

/// How many polls in a row may find an MPMC queue's lock held by another handle and try again
/// at once: a push or pop holds it for microseconds. Beyond, the holder is stopped or hostile,
/// and the future re-checks every 10 ms instead of spinning at full CPU while it holds on.
const BUSY_RETRIES: u32 = 64;

/// One poll of a queue or channel operation: an attempt that never waits; if it is blocked,
/// arm the event it waits for (`watched`: it claims the SPSC role, as the attempt did), check
/// again, and register; a wake-up without an event looks for a removal. `busy` counts the
/// polls in a row that found the lock held (see [`BUSY_RETRIES`]).
fn poll_queue<'q, R>(
    watch: &mut Option<Watch>,
    busy: &mut u32,
    cx: &mut Context<'_>,
    mut attempt: impl FnMut() -> Result<Attempt<R>>,
    watched: impl Fn() -> Result<Watched<'q>>,
) -> Poll<Result<R>> {
    let Some(fired) = fired(watch, cx) else {
        return Poll::Pending;
    };
    let mut quiet = fired == Some(Fired::Quiet);
    loop {
        match attempt()? {
            Attempt::Done(done) => return Poll::Ready(Ok(done)),
            // Another handle is inside its push or pop (microseconds): yield, then try again.
            Attempt::Busy if *busy < BUSY_RETRIES => {
                *busy += 1;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            // Held for longer than any push or pop takes: look again within 10 ms, or when
            // the event moves (the holder's own push or pop), without spinning meanwhile;
            // and notice a removal meanwhile, as a blocked wait does.
            Attempt::Busy => {
                let watched = watched()?;
                if quiet {
                    if let Some(removed) = watched.removal() {
                        return Poll::Ready(Err(removed));
                    }
                }
                let (source, _) = watched.arm_source();
                register(watch, source.recheck_soon(), cx)?;
                return Poll::Pending;
            }
            Attempt::Blocked => *busy = 0,
        }
        // Whatever is still queued was taken first (the attempt above), as the blocking calls.
        let watched = watched()?;
        if std::mem::take(&mut quiet) {
            if let Some(removed) = watched.removal() {
                return Poll::Ready(Err(removed));
            }
        }
        let (source, ready) = watched.arm_source();
        if ready {
            // An event landed between the attempt and the arming: attempt again.
            continue;
        }
        register(watch, source, cx)?;
        return Poll::Pending;
    }
}

/// One poll of a wait for a value's change.
fn poll_change<'a>(
    watch: &mut Option<Watch>,
    cx: &mut Context<'_>,
    attached: &'a Attached,
    follow: impl Fn(&'a Attached) -> Result<&'a Attached>,
    since: u64,
) -> Poll<Result<u64>> {
    let Some(fired) = fired(watch, cx) else {
        return Poll::Pending;
    };
    match look_at_value(attached, follow, since, fired == Some(Fired::Quiet))? {
        ValueLook::Changed(version) => Poll::Ready(Ok(version)),
        ValueLook::Armed(source) => {
            register(watch, source, cx)?;
            Poll::Pending
        }
    }
}

/// The future of `changed` on a value handle (`Shm`, `ShmReader`).
fn changed<H: ValueHandle + Sync>(
    handle: &H,
    since: u64,
) -> impl Future<Output = Result<u64>> + Send + '_ {
    let follow = |moved| handle.follow(Attachment(moved)).map(|next| next.0);
    future_of(move |watch, cx| poll_change(watch, cx, handle.attachment().0, follow, since))
}

/// A future's body: `poll` with its registration, which the future owns (and drops with it).
fn future_of<R>(
    mut poll: impl FnMut(&mut Option<Watch>, &mut Context<'_>) -> Poll<R>,
) -> impl Future<Output = R> {
    let mut watch = None;
    poll_fn(move |cx| poll(&mut watch, cx))
}

impl<T: ShmType> Shm<T> {
    /// Waits, asynchronously, until a version other than `since` is published and returns it:
    /// [`wait_for_change`](Self::wait_for_change) as a future (feature `tokio`; it runs on any
    /// executor). It follows a migration, as the blocking call does.
    ///
    /// The future sleeps on nothing itself: the process's notifier thread sleeps on the
    /// region's version and wakes the task when it moves, and a publisher with nobody waiting
    /// makes no system call. Cancel-safe: dropping the future (a `select!` that picks another
    /// branch, a `tokio::time::timeout` that ran out) takes its registration with it. Bound
    /// the wait with the runtime's timeout.
    ///
    /// ```
    /// # use shmstore::Shm;
    /// # let name = format!("doc-changed-{}", std::process::id());
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let config = Shm::<u64>::options().unlink_on_drop(true).create(&name, 1)?;
    /// let since = config.version();
    /// let waiting = config.changed(since);
    /// *config.lock().unwrap() = 2; // another task or process, usually
    /// assert_eq!(waiting.await?, since + 1);
    /// let unchanged = tokio::time::timeout(
    ///     std::time::Duration::from_millis(10),
    ///     config.changed(since + 1),
    /// );
    /// assert!(unchanged.await.is_err(), "nothing published: the runtime's timeout ran out");
    /// # Ok::<(), shmstore::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Removed`](crate::Error::Removed) when the region is removed from its location (or replaced there by
    /// a region this handle does not follow) while this waits, as for `wait_for_change`.
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn changed(&self, since: u64) -> impl Future<Output = Result<u64>> + Send + '_ {
        changed(self, since)
    }
}

impl<T: ShmType> ShmReader<T> {
    /// Waits, asynchronously, for a version other than `since`, as
    /// [`Shm::changed`](crate::Shm::changed). A reader cannot count itself in as a waiter:
    /// it is woken at once when the region notifies readers, and otherwise within 10 ms of
    /// the change (its registration re-checks that often).
    ///
    /// # Errors
    ///
    /// As [`Shm::changed`](crate::Shm::changed).
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn changed(&self, since: u64) -> impl Future<Output = Result<u64>> + Send + '_ {
        changed(self, since)
    }
}

impl<T: ShmType, const N: usize> ShmQueue<T, N> {
    /// Removes and returns the oldest element, waiting for one asynchronously:
    /// [`pop`](Self::pop) as a future (feature `tokio`; any executor). `None` once the queue
    /// is closed and empty.
    ///
    /// Named `pop_async` beside the blocking [`pop`](Self::pop), which it does not replace.
    /// It takes `&mut self`: one wait per handle at a time, and the future is `Send` (a handle
    /// is `Send`, not `Sync`), so it can run in a spawned task. SPSC role rules as for `pop`:
    /// the handle becomes the consumer.
    ///
    /// Cancel-safe: an element is taken only in the poll that returns it, so a future dropped
    /// while it waits (a `select!` that picked another branch, a `tokio::time::timeout` that
    /// ran out) loses none, and leaves no registration behind.
    ///
    /// ```
    /// # use shmstore::ShmQueue;
    /// # let name = format!("doc-pop-async-{}", std::process::id());
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let mut jobs = ShmQueue::<u64, 8>::options().unlink_on_drop(true).create(&name)?;
    /// let mut producer = ShmQueue::<u64, 8>::open(&name)?;
    /// producer.push_async(7).await?;
    /// assert_eq!(jobs.pop_async().await?, Some(7));
    /// let idle = tokio::time::timeout(std::time::Duration::from_millis(10), jobs.pop_async());
    /// assert!(idle.await.is_err(), "empty: the runtime's timeout ran out, nothing was lost");
    /// producer.close();
    /// assert_eq!(jobs.pop_async().await?, None);
    /// # Ok::<(), shmstore::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// As [`pop`](Self::pop).
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn pop_async(&mut self) -> impl Future<Output = Result<Option<T>>> + Send + '_ {
        // The closure holds the `&mut` (which is `Send`), and lends it out per poll.
        let queue = self;
        let mut busy = 0;
        future_of(move |watch, cx| {
            let queue = &*queue;
            poll_queue(
                watch,
                &mut busy,
                cx,
                || queue.pop_attempt(),
                || queue.watch(QueueEvent::NotEmpty),
            )
        })
    }

    /// Appends `value`, waiting for room asynchronously: [`push`](Self::push) as a future
    /// (feature `tokio`), with the naming, `&mut self` and role rules of
    /// [`pop_async`](Self::pop_async). Cancel-safe: the value is pushed only in the poll that
    /// completes; a future dropped before that pushed nothing.
    ///
    /// # Errors
    ///
    /// As [`push`](Self::push).
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn push_async(&mut self, value: T) -> impl Future<Output = Result<()>> + Send + '_
    where
        T: Send,
    {
        // The closure holds the `&mut` (which is `Send`), and lends it out per poll.
        let queue = self;
        let mut busy = 0;
        future_of(move |watch, cx| {
            let queue = &*queue;
            poll_queue(
                watch,
                &mut busy,
                cx,
                || queue.push_attempt(&value),
                || queue.watch(QueueEvent::NotFull),
            )
        })
    }
}

impl ShmChannel {
    /// The oldest message, waiting for one asynchronously: [`recv`](Self::recv) as a future
    /// (feature `tokio`), with the naming, `&mut self`, role rules and cancel safety of
    /// [`ShmQueue::pop_async`](crate::ShmQueue::pop_async). `None` once closed and empty.
    ///
    /// # Errors
    ///
    /// As [`recv`](Self::recv).
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn recv_async(&mut self) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send + '_ {
        let channel = self;
        let mut buf = Vec::new();
        let mut busy = 0;
        future_of(move |watch, cx| {
            let channel = &*channel;
            poll_queue(
                watch,
                &mut busy,
                cx,
                || channel.recv_attempt(&mut buf),
                || channel.watch(QueueEvent::NotEmpty),
            )
            .map_ok(|got| got.then(|| std::mem::take(&mut buf)))
        })
    }

    /// Sends `message`, waiting for room asynchronously: [`send`](Self::send) as a future
    /// (feature `tokio`); see [`recv_async`](Self::recv_async).
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn send_async<'a>(
        &'a mut self,
        message: &'a [u8],
    ) -> impl Future<Output = Result<()>> + Send + 'a {
        let channel = self;
        let mut busy = 0;
        future_of(move |watch, cx| {
            let channel = &*channel;
            poll_queue(
                watch,
                &mut busy,
                cx,
                || channel.send_attempt(message),
                || channel.watch_room(message.len()),
            )
        })
    }
}
