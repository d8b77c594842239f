//! Sleeping and waking: one futex eventcount, used both for a value's changes and for a
//! queue's events.
//!
//! An [`EventCount`] is a futex word that moves on every event (the *epoch*) and a count of
//! the sleepers that want to hear about it. A sleeper reads the epoch, counts itself in with a
//! sequentially consistent operation, re-checks its condition, and sleeps only if the epoch
//! has not moved. The waker moves the epoch (or publishes what moves it) with a sequentially
//! consistent operation and then reads the sleeper count: by that total order, either it sees
//! the sleeper (and wakes it) or the sleeper sees the event. With nobody asleep, an event costs
//! one load and no system call.
//!
//! - A value's eventcount is its version (the futex word is the low half, FORMAT.md) and the
//!   header's `waiters`: publishing a version is the event ([`Region::wait_for_change`]).
//! - A queue's are its control block's two events (`not_empty`, `not_full`): each has its own
//!   epoch, bumped by the waker ([`sleep_until`], [`notify`], [`wake_unconditionally`]; the
//!   protocol is in `queue/`'s module docs, "Sleeping and waking").

use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::format::{Event, LoadAcquire, FLAG_NOTIFY_READERS};
use crate::region::Region;
use crate::snapshot::version_from_word;
use crate::sys::futex::{self, WaitAny, Word};
pub(crate) use crate::sys::futex::{waits_on_many, WAIT_ANY_MAX};

/// How long a waiter for a value's change spins on the version before it sleeps: a cross-core
/// futex wake costs tens of microseconds on a virtual machine, more than most waits between
/// close writes.
const SPIN_BEFORE_SLEEP: Duration = Duration::from_micros(20);
/// How often a read-only waiter re-checks when publishers do not wake it.
const UNNOTIFIED_SLICE: Duration = Duration::from_millis(10);
/// The longest a blocked queue push or pop sleeps before it looks at the counters again, woken
/// or not. A wake-up can be lost for good only to a peer that dies (or stops) inside it, after
/// it cleared the sleeper flag and before its futex wake, to one that closes the queue and dies
/// before waking anyone, or to a writer that breaks the protocol (clears a flag, or shares an
/// SPSC role with a forked child): this bounds what that costs a survivor. A second is nothing
/// to a thread with nothing to do, and long against any wake-up that does arrive.
pub(crate) const SLEEP_SLICE: Duration = Duration::from_secs(1);

/// A word a futex sleeps on: a 32-bit epoch, or the low half of a 64-bit version.
trait Epoch {
    /// The 32 bits the futex compares, loaded with sequential consistency.
    fn seen(&self) -> u32;
    /// Sleeps while the word's futex half equals `seen`, at most `timeout`; returns early on
    /// any wake-up (callers re-check).
    fn sleep(&self, seen: u32, timeout: Option<Duration>);
    /// Wakes every sleeper on the word, in every process.
    fn wake_all(&self);
}

impl Epoch for AtomicU32 {
    fn seen(&self) -> u32 {
        self.load(SeqCst)
    }

    fn sleep(&self, seen: u32, timeout: Option<Duration>) {
        futex::wait(self, seen, timeout);
    }

    fn wake_all(&self) {
        futex::wake_all(self);
    }
}

impl Epoch for AtomicU64 {
    fn seen(&self) -> u32 {
        self.load(SeqCst) as u32
    }

    fn sleep(&self, seen: u32, timeout: Option<Duration>) {
        futex::wait_low_half(self, seen, timeout);
    }

    fn wake_all(&self) {
        futex::wake_low_half(self);
    }
}

/// An epoch and the count of those sleeping on it (see the module docs).
struct EventCount<'a, E: Epoch> {
    epoch: &'a E,
    sleepers: &'a AtomicU32,
}

impl<'a, E: Epoch> EventCount<'a, E> {
    fn new(epoch: &'a E, sleepers: &'a AtomicU32) -> Self {
        EventCount { epoch, sleepers }
    }

    /// Counts one more sleeper, until the returned registration is dropped (also when the
    /// wait unwinds).
    fn register(&self) -> Registration<'a> {
        self.sleepers.fetch_add(1, SeqCst);
        Registration(self.sleepers)
    }

    /// Whether anyone is counted in. Must follow the event by a full barrier (a SeqCst
    /// operation), which pairs with the sleepers' SeqCst registration.
    #[inline]
    fn has_sleepers(&self) -> bool {
        self.sleepers.load(SeqCst) != 0
    }
}

/// A sleeper's entry in an eventcount's count; removed on drop, never below zero (a peer may
/// have reset the count meanwhile).
struct Registration<'a>(&'a AtomicU32);

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .fetch_update(SeqCst, Relaxed, |n| Some(n.saturating_sub(1)));
    }
}

/// A bounded wait ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimedOut;

/// Why a wait for a value's change ended without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unchanged {
    /// The timeout ran out.
    TimedOut,
    /// The location no longer refers to the region ([`Region::is_removed`]): it was
    /// removed, or replaced, and nothing will publish to it again.
    Removed,
    /// A migration replaced the region under its location by one of a wider type, which
    /// holds every committed write and continues its versions ([`Region::has_moved`]): a
    /// handle that follows it reopens the location and waits there with the same `since`.
    Moved,
}

impl From<TimedOut> for Unchanged {
    fn from(TimedOut: TimedOut) -> Self {
        Unchanged::TimedOut
    }
}

/// Whether a sleeper that woke without its event should look at its region's location: when
/// it was woken before its slice ran out (the region's removal by shmstore wakes every
/// sleeper, see `Region::wake_every_sleeper`), or when it last looked [`SLEEP_SLICE`] ago or
/// more (a removal by anything else wakes nobody: this bounds how late it is noticed). Only
/// sleepers pay for the look (one `fstatat` or `shmget`); publishers never do.
fn time_to_look(slept: Instant, slice: Option<Duration>, last_look: Instant) -> bool {
    slice.is_none_or(|slice| slept.elapsed() < slice) || last_look.elapsed() >= SLEEP_SLICE
}

/// Whether the region's location refers to another object or none. An error looking (the
/// directory became unreadable, say) is no proof of removal: the wait goes on.
pub(crate) fn region_removed(region: &Region) -> bool {
    matches!(region.is_removed(), Ok(true))
}

/// The time left until `deadline`: `None` without a deadline, [`TimedOut`] once it has passed
/// (never a zero duration, which would make a bounded sleep return at once).
pub(crate) fn time_left(
    deadline: Option<Instant>,
) -> std::result::Result<Option<Duration>, TimedOut> {
    match deadline {
        None => Ok(None),
        Some(deadline) => {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                Err(TimedOut)
            } else {
                Ok(Some(left))
            }
        }
    }
}

/// A value's eventcount: its version and the header's `waiters`.
fn value_changes(region: &Region) -> EventCount<'_, AtomicU64> {
    let h = region.header();
    EventCount::new(&h.version, &h.waiters)
}

/// Wakes every sleeper on a value's version if any is registered, or if the region notifies
/// read-only handles (which cannot register). Must follow a version store by a full barrier:
/// a waiter registers with a SeqCst increment and then re-reads the version, so either it sees
/// the new version or this load sees it.
#[inline]
pub(crate) fn wake_value_waiters(region: &Region) {
    let changes = value_changes(region);
    if changes.has_sleepers() || region.info().flags & FLAG_NOTIFY_READERS != 0 {
        changes.epoch.wake_all();
    }
}

/// `Region::wait_for_change` with the public error.
pub(crate) fn wait_for_change(
    region: &Region,
    since: u64,
    timeout: Option<Duration>,
) -> Result<u64> {
    region
        .wait_for_change(since, timeout)
        .map_err(|unchanged| unchanged_error(region, unchanged, timeout))
}

/// The public error for a wait of `timeout` on `region` that ended without a change. A
/// migrated region is `Removed` for a caller that does not follow it.
pub(crate) fn unchanged_error(
    region: &Region,
    unchanged: Unchanged,
    timeout: Option<Duration>,
) -> Error {
    match unchanged {
        Unchanged::TimedOut => Error::Timeout {
            name: region.name().to_string(),
            waiting_for: "a new version",
            after: timeout.unwrap_or_default(),
        },
        Unchanged::Removed | Unchanged::Moved => Error::Removed {
            name: region.name().to_string(),
        },
    }
}

impl Region {
    /// Waits until a version other than `since` is published and returns it (versions as the
    /// API counts them, see [`version_from_word`]; the futex sleeps on the raw word).
    ///
    /// It spins briefly, then sleeps on the version's eventcount. A writable handle registers
    /// in `waiters` first, so publishers know to wake it, and a publish with no registered
    /// waiter makes no system call. A read-only handle cannot register: it is woken at once
    /// when the region was created with `notify_readers(true)`, and otherwise re-checks every
    /// 10 ms.
    ///
    /// A region removed from its location (or replaced there) ends the wait with
    /// [`Unchanged::Removed`]: at once when shmstore removed it (its remover wakes every
    /// sleeper), within [`SLEEP_SLICE`] otherwise (no sleep lasts longer, and a sleeper that
    /// wakes without a new version looks at the location; see [`time_to_look`]).
    ///
    /// A region that moved (a migration replaced it, [`Region::has_moved`]) ends the wait
    /// with [`Unchanged::Moved`]: before each sleep and after each wake-up or slice it looks
    /// at the header's `lifecycle` word (one load, no system call while the region is
    /// current). The migrator wakes every sleeper once the word says so; a sleeper that
    /// looked just before that store and slept just after the wake-up notices at the end of
    /// its slice, as after a removal by another program.
    pub(crate) fn wait_for_change(
        &self,
        since: u64,
        timeout: Option<Duration>,
    ) -> std::result::Result<u64, Unchanged> {
        let version = &self.header().version;
        let start = Instant::now();
        // A timeout too large to represent as a deadline means none.
        let deadline = timeout.and_then(|t| start.checked_add(t));
        // Spin first: most changes between cooperating processes come soon.
        let mut spins = 0u32;
        loop {
            let now = version_from_word(version.load_acquire());
            if now != since {
                return Ok(now);
            }
            spins += 1;
            if spins % 64 == 0
                && start.elapsed() >= SPIN_BEFORE_SLEEP.min(timeout.unwrap_or(Duration::MAX))
            {
                break;
            }
            std::hint::spin_loop();
        }
        let changes = value_changes(self);
        let registration = self.writable().then(|| changes.register());
        let notified = registration.is_some() || self.info().flags & FLAG_NOTIFY_READERS != 0;
        let mut last_look = Instant::now();
        loop {
            // Registered (a writable handle): SeqCst, which pairs with the publisher's SeqCst
            // swap and load of `waiters` (lock.rs), so either this load sees the new version or
            // the publisher sees us registered. Unregistered (perhaps through a read-only
            // mapping, where only relaxed loads are allowed: see `LoadAcquire`), nothing
            // pairs with it: the futex wait below rechecks the word in the kernel.
            let current = if registration.is_some() {
                version.load(SeqCst)
            } else {
                version.load_acquire()
            };
            if version_from_word(current) != since {
                return Ok(version_from_word(current));
            }
            if self.has_moved() {
                return Err(Unchanged::Moved);
            }
            let left = time_left(deadline)?;
            let slice_for = if notified {
                SLEEP_SLICE
            } else {
                UNNOTIFIED_SLICE
            };
            let slice = Some(left.map_or(slice_for, |l| l.min(slice_for)));
            let slept = Instant::now();
            changes.epoch.sleep(current as u32, slice);
            if version_from_word(version.load_acquire()) == since
                && time_to_look(slept, slice, last_look)
            {
                last_look = Instant::now();
                // A moved region's location refers to another object too: `Moved` first.
                if self.has_moved() {
                    return Err(Unchanged::Moved);
                }
                if region_removed(self) {
                    // A migration also gives the location to another object (and its migrator
                    // woke us): a move, which the caller follows, not a removal. Asked after
                    // the look, so a rename between the two is seen as one (the migrator
                    // marks the header before it renames).
                    return Err(if self.has_moved() {
                        Unchanged::Moved
                    } else {
                        Unchanged::Removed
                    });
                }
            }
        }
    }
}

/// A queue event's eventcount.
fn queue_event(event: &Event) -> EventCount<'_, AtomicU32> {
    EventCount::new(&event.epoch, &event.sleepers)
}

/// Sleeps on a queue's `event` unless `ready()` after counting in (see the module docs), at
/// most until `deadline` and at most [`SLEEP_SLICE`]. Returns on any wake-up: the caller
/// re-checks. Returns whether it slept and woke without the event (the epoch did not move):
/// the slice ran out, or the region's remover woke it; the caller then asks
/// [`region_removed`] if its condition still does not hold.
///
/// `single`: SPSC, where only the role holder sleeps on this event. Then the count is a flag
/// the waker clears when it wakes us (so exactly one wake call per sleep), and we clear it
/// ourselves only if nobody did, that is, if the epoch did not move.
pub(crate) fn sleep_until(
    event: &Event,
    single: bool,
    deadline: Option<Instant>,
    ready: impl FnOnce() -> bool,
) -> bool {
    let events = queue_event(event);
    let epoch = events.epoch.seen();
    let registration = if single {
        event.sleepers.store(1, SeqCst);
        None
    } else {
        Some(events.register())
    };
    let mut slept = false;
    if !ready() {
        // Past the deadline it does not sleep: the caller's next check reports the timeout.
        if let Ok(left) = time_left(deadline) {
            let slice = left.map_or(SLEEP_SLICE, |left| left.min(SLEEP_SLICE));
            events.epoch.sleep(epoch, Some(slice));
            slept = true;
        }
    }
    let quiet = event.epoch.load(SeqCst) == epoch;
    if single && quiet {
        event.sleepers.store(0, SeqCst);
    }
    drop(registration);
    slept && quiet
}

/// Called after publishing a queue counter with a sequentially consistent operation: wakes
/// the other side if it sleeps. One load when nobody does.
#[inline]
pub(crate) fn notify(event: &Event, single: bool) {
    if queue_event(event).has_sleepers() {
        wake(event, single);
    }
}

/// Bumps the epoch and wakes every sleeper. With a `single` sleeper (SPSC), only if this call
/// is the one that clears its flag: the pushes (or pops) that follow, before it runs, make no
/// further wake call.
#[cold]
fn wake(event: &Event, single: bool) {
    if single && event.sleepers.swap(0, SeqCst) == 0 {
        return;
    }
    bump_and_wake(event);
}

/// Wakes every sleeper whatever the count says (for `close`, and for a new SPSC role holder).
pub(crate) fn wake_unconditionally(event: &Event, single: bool) {
    if single {
        event.sleepers.store(0, SeqCst);
    }
    bump_and_wake(event);
}

fn bump_and_wake(event: &Event) {
    event.epoch.fetch_add(1, SeqCst);
    event.epoch.wake_all();
}

/// One source of a wait on several at once, armed: the futex word to sleep on, the value it
/// must still hold for the sleep to start, and this waiter's entry in the source's sleeper
/// count (so that its publishers wake it), removed when the `Armed` drops.
///
/// The protocol is the one of [`sleep_until`] and [`Region::wait_for_change`], split in two:
/// arm every source (read the epoch, count in), then check every condition, then sleep on all
/// the words at once ([`sleep_on_any`]) only if none holds. A publish between the check and
/// the sleep moved its word: the kernel then refuses the sleep.
pub(crate) struct Armed<'a> {
    word: Word<'a>,
    expected: u32,
    /// Whether a publish wakes this waiter; a read-only handle of a region that does not
    /// notify readers cannot count itself in, and re-checks every [`UNNOTIFIED_SLICE`].
    notified: bool,
    _entry: Entry<'a>,
}

/// A waiter's entry in a source's sleeper count, taken out on drop.
enum Entry<'a> {
    /// Nothing to take out: the source wakes everyone (a close) or cannot be counted in.
    None,
    /// One in a count (a value's `waiters`, an MPMC queue event's `sleepers`).
    Counted(Registration<'a>),
    /// An SPSC queue event's flag (only its role holder sleeps there): the waker clears it when
    /// it wakes us; we clear it ourselves only if nobody did, that is, if the epoch did not move.
    Flag {
        flag: &'a AtomicU32,
        epoch: &'a AtomicU32,
        seen: u32,
    },
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        if let Entry::Flag { flag, epoch, seen } = self {
            if epoch.load(SeqCst) == *seen {
                flag.store(0, SeqCst);
            }
        }
    }
}

impl<'a> Armed<'a> {
    /// Arms a wait for a new version of `region`'s value: its version's futex half, and the
    /// header's `waiters` for a writable handle. Check the version after this.
    pub(crate) fn value_change(region: &'a Region) -> Armed<'a> {
        let changes = value_changes(region);
        let entry = if region.writable() {
            Entry::Counted(changes.register())
        } else {
            Entry::None
        };
        let notified =
            matches!(entry, Entry::Counted(_)) || region.info().flags & FLAG_NOTIFY_READERS != 0;
        // After counting in (SeqCst), so that either this load sees a new version or its
        // publisher sees us counted in.
        let expected = changes.epoch.seen();
        Armed {
            word: Word::low_half(changes.epoch),
            expected,
            notified,
            _entry: entry,
        }
    }

    /// Arms a wait on a queue's (or channel's) `event`: `single` for an SPSC queue, whose
    /// event only its role holder may sleep on (the caller holds that role). Check the
    /// condition after this.
    pub(crate) fn queue_event(event: &'a Event, single: bool) -> Armed<'a> {
        let events = queue_event(event);
        let expected = events.epoch.seen();
        let entry = if single {
            event.sleepers.store(1, SeqCst);
            Entry::Flag {
                flag: &event.sleepers,
                epoch: &event.epoch,
                seen: expected,
            }
        } else {
            Entry::Counted(events.register())
        };
        Armed {
            word: Word::of(&event.epoch),
            expected,
            notified: true,
            _entry: entry,
        }
    }

    /// Arms a wait for a queue's close, which wakes every sleeper on `event` whether counted
    /// in or not: nothing to count in, so any handle may wait for it, in any mode.
    pub(crate) fn queue_close(event: &'a Event) -> Armed<'a> {
        Armed {
            word: Word::of(&event.epoch),
            expected: event.epoch.load(SeqCst),
            notified: true,
            _entry: Entry::None,
        }
    }
}

/// How long a wait on several sources may sleep before it re-checks them all: as
/// [`sleep_until`] (at most [`SLEEP_SLICE`], which bounds a lost wake-up), or
/// [`UNNOTIFIED_SLICE`] when a source cannot count this waiter in.
pub(crate) fn slice_for(
    armed: &[Armed<'_>],
    deadline: Option<Instant>,
) -> Result<Duration, TimedOut> {
    let slice = if armed.iter().all(|a| a.notified) {
        SLEEP_SLICE
    } else {
        UNNOTIFIED_SLICE
    };
    Ok(time_left(deadline)?.map_or(slice, |left| left.min(slice)))
}

/// Sleeps until a wake-up on any armed source, at most `slice` (see [`slice_for`]), and says
/// which source's word was woken if the kernel says. Returns at once when a word already moved.
/// Sources beyond [`WAIT_ANY_MAX`] are not slept on: callers keep sets within it.
pub(crate) fn sleep_on_any(armed: &[Armed<'_>], slice: Duration) -> Option<usize> {
    let words: Vec<(Word<'_>, u32)> = armed.iter().map(|a| (a.word, a.expected)).collect();
    match futex::wait_any(&words, Some(slice)) {
        WaitAny::Woken(i) => Some(i),
        WaitAny::Returned | WaitAny::SleptOnFirst => None,
    }
}

impl<'a> Armed<'a> {
    /// The futex word this source sleeps on and the value it must hold for a sleep to start
    /// (for a waiter that sleeps elsewhere: the process's notifier).
    pub(crate) fn word(&self) -> (Word<'a>, u32) {
        (self.word, self.expected)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::SeqCst;

    use super::*;
    use crate::layout::ShmType;
    use crate::lock::Wait;
    use crate::region::{scratch_handles, scratch_value};
    use crate::sys::mutex::Until;
    use crate::sys::object::Access;

    /// Generous: only a broken path gets near it.
    const HANG: Duration = Duration::from_secs(20);

    /// Publishes one write (lock, open the latch, commit).
    fn publish_a_write(region: &Region) {
        region.acquire(Wait::Forever).expect("lock");
        region.begin_write();
        // SAFETY: acquired above by this thread; the region's own payload size.
        unsafe { region.release(true, region.info().layout.payload_size) };
    }

    /// A waiter gets the next version, through a writable handle (registered in `waiters`,
    /// woken by the publisher) or a read-only one (re-checking), and a bounded wait with no
    /// change times out; neither leaves a registration behind.
    #[test]
    fn a_waiter_gets_the_next_version_or_times_out() {
        let (region, reader) =
            scratch_handles("wait-change", &<[u64; 32]>::LAYOUT, false, Access::ReadOnly);
        let waiters = &region.header().waiters;
        let since = region.published_version();
        for waiter in [&region, &reader] {
            let short = Some(Duration::from_millis(20));
            assert_eq!(
                waiter.wait_for_change(since, short),
                Err(Unchanged::TimedOut)
            );
        }
        assert_eq!(
            waiters.load(SeqCst),
            0,
            "a timed-out waiter stayed registered"
        );
        for (waiter, registers) in [(&region, true), (&reader, false)] {
            let since = region.published_version();
            std::thread::scope(|scope| {
                let waiting = scope.spawn(move || waiter.wait_for_change(since, Some(HANG)));
                let by = Instant::now() + HANG;
                while registers && waiters.load(SeqCst) == 0 && Instant::now() < by {
                    std::thread::yield_now();
                }
                assert_eq!(waiters.load(SeqCst), u32::from(registers));
                publish_a_write(&region);
                assert_eq!(waiting.join().unwrap(), Ok(since + 1));
            });
            assert_eq!(waiters.load(SeqCst), 0);
        }
    }

    /// Bug: `wait_for_change(_, Some(Duration::MAX))` (and `read_timeout`, `lock_timeout`,
    /// `open_timeout` of `Duration::MAX`) panicked computing the deadline (commit 17dde9a). A
    /// deadline that cannot be represented means none.
    #[test]
    fn regression_a_timeout_of_duration_max_panicked_computing_the_deadline() {
        let region = scratch_value("wait-max", 0);
        let since = region.published_version();
        publish_a_write(&region);
        assert_eq!(
            region.wait_for_change(since, Some(Duration::MAX)),
            Ok(since + 1)
        );
        assert!(matches!(Wait::For(Duration::MAX).until(), Until::Forever));
    }

    /// Bug: a value waiter's deregistration wrapped the count below zero when a peer had reset
    /// it meanwhile, so every later publish made a wake-up call for nobody (fixed when the
    /// value's and the queue's eventcounts became one, commit 7dfc35a).
    #[test]
    fn regression_a_waiter_wrapped_the_count_below_zero_after_a_reset() {
        let (epoch, sleepers) = (AtomicU32::new(0), AtomicU32::new(0));
        let events = EventCount::new(&epoch, &sleepers);
        let registration = events.register();
        assert!(events.has_sleepers());
        sleepers.store(0, SeqCst);
        drop(registration);
        assert_eq!(sleepers.load(SeqCst), 0);
        assert!(!events.has_sleepers());
    }
}
