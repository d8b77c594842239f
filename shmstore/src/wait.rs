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
//! The count is a word with a generation in its high bits ([`COUNT_MASK`]): a waker whose wake
//! call woke nobody clears it, so that a sleeper killed while counted in costs one publish a
//! wake call, not every publish; counted sleepers sleep on the count word too, so that no live
//! one is lost by a clear ([`Registration`] has the proof). Several sources are waited on at
//! once by arming each ([`Armed`]), checking all, and sleeping on all their words
//! ([`sleep_on_any`]), which is what `WaitSet` does.
//!
//! - A value's eventcount is its version (the futex word is the low half, FORMAT.md) and the
//!   header's `waiters`: publishing a version is the event ([`Region::wait_for_change`]).
//! - A queue's are its control block's two events (`not_empty`, `not_full`): each has its own
//!   epoch, bumped by the waker ([`sleep_until`], [`notify`], [`wake_unconditionally`]; the
//!   protocol is in `queue/`'s module docs, "Sleeping and waking").

use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::format::{Event, LoadAcquire, FLAG_NOTIFY_READERS};
use crate::region::Region;
use crate::snapshot::version_from_word;
use crate::sys::futex::{self, Word};
pub(crate) use crate::sys::futex::{waits_on_many, WaitAny, WAIT_ANY_MAX};

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
}

impl Epoch for AtomicU32 {
    fn seen(&self) -> u32 {
        self.load(SeqCst)
    }
}

impl Epoch for AtomicU64 {
    fn seen(&self) -> u32 {
        self.load(SeqCst) as u32
    }
}

/// The sleeper count word (a value's `waiters`, an MPMC queue event's `sleepers`): bits 0..16
/// count the sleepers, bits 16..32 are its *generation*, which moves each time a waker clears
/// the count (see [`clear_if_nobody_woke`]). A publisher wakes when the count bits are not 0.
/// (An SPSC event's `sleepers` is a flag, 0 or 1, see [`sleep_until`].)
pub(crate) const COUNT_MASK: u32 = 0xffff;
/// One step of the generation.
const GENERATION_ONE: u32 = COUNT_MASK + 1;

/// Whether a sleeper count word counts anyone in.
#[inline]
pub(crate) fn counts_anyone(word: u32) -> bool {
    word & COUNT_MASK != 0
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
        Registration::count_in(self.sleepers)
    }

    /// Whether anyone is counted in, and the count word seen. Must follow the event by a full
    /// barrier (a SeqCst operation), which pairs with the sleepers' SeqCst registration.
    #[inline]
    fn sleepers_seen(&self) -> Option<u32> {
        let seen = self.sleepers.load(SeqCst);
        counts_anyone(seen).then_some(seen)
    }
}

/// A sleeper's entry in a sleeper count word ([`COUNT_MASK`]), of the generation it was
/// counted in; taken out on drop only if the count still has that generation (a waker that
/// cleared the count took every entry of the generation out already: taking one more would
/// take out someone else's).
///
/// # Why a dead sleeper stops costing publishes, and a live one never misses a wake-up
///
/// A process killed while counted in leaves its entry behind, and every publish would make a
/// futex wake call for nobody. So a waker whose `FUTEX_WAKE` woke nobody clears the count
/// (the generation moves on, the count becomes 0: [`clear_if_nobody_woke`]), and then wakes
/// the count word itself. That is safe because every counted sleeper sleeps on two words at
/// once (`futex_waitv`): the event's word, with the value it read after counting in, and the
/// count word, with the value it had once this sleeper was counted in ([`renew`]). Take a live
/// sleeper whose entry a waker clears:
///
/// - asleep when the waker's first `FUTEX_WAKE` ran: then that wake woke it (a sleeper on
///   several words is woken by a wake of any of them), the wake count was at least 1, and the
///   waker cleared nothing;
/// - asleep when the waker woke the count word after clearing it: woken by that wake;
/// - not asleep yet: the count word it will sleep on has moved (another generation, count 0,
///   which no word it saw holds: it saw its own entry counted), so the kernel refuses the
///   sleep. Either way it returns, re-checks its condition, and counts itself in again
///   ([`renew`]) before it sleeps again.
///
/// And a sleeper counted in never misses the event it waits for: the publisher moves the
/// event's word (a new version, a queue counter and then the epoch) with a SeqCst operation
/// and then loads the count word (SeqCst). Either that load sees the sleeper's entry (or its
/// clearing: above), and the wake (or the kernel's refusal, the word having moved) gets it, or
/// the sleeper's SeqCst check after counting in sees the new word.
///
/// The generation has 16 bits: a sleeper whose entry was cleared and that then stays awake
/// (preempted between counting in and sleeping) through 65 536 more clears would take its
/// generation for current again and take out another's entry; that sleeper then sleeps until
/// its slice ([`SLEEP_SLICE`]) ends. Where the kernel has no `futex_waitv`, sleepers sleep on
/// the event's word alone and wakers never clear the count: a dead sleeper's entry then costs
/// every publish a wake call, as before.
///
/// [`renew`]: Registration::renew
pub(crate) struct Registration<'a> {
    count: &'a AtomicU32,
    /// The generation (bits above [`COUNT_MASK`]) the entry was counted in; `None` when the
    /// count was full (65 535 sleepers), so that this waiter is not counted in.
    generation: Option<u32>,
}

impl<'a> Registration<'a> {
    /// Counts one more sleeper in `count` (SeqCst), unless it is full.
    fn count_in(count: &'a AtomicU32) -> Self {
        let before = count
            .fetch_update(SeqCst, SeqCst, |w| {
                (w & COUNT_MASK != COUNT_MASK).then_some(w + 1)
            })
            .ok();
        Registration {
            count,
            generation: before.map(|w| w & !COUNT_MASK),
        }
    }

    /// Makes sure this sleeper is counted in, counting it in again if a waker cleared the count
    /// since, and returns the count word now: the value a sleep on it expects. `None` if the
    /// count is full (the waiter is not counted in, and re-checks every [`UNNOTIFIED_SLICE`]).
    pub(crate) fn renew(&mut self) -> Option<u32> {
        let now = self.count.load(SeqCst);
        if self.generation == Some(now & !COUNT_MASK) && counts_anyone(now) {
            return Some(now);
        }
        *self = Registration::count_in(self.count);
        self.generation?;
        Some(self.count.load(SeqCst))
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let Some(generation) = self.generation else {
            return;
        };
        let _ = self.count.fetch_update(SeqCst, Relaxed, |w| {
            (w & !COUNT_MASK == generation && counts_anyone(w)).then(|| w - 1)
        });
    }
}

/// After a wake call on an event whose count word read `seen` (counting someone in) woke
/// `woken` sleepers: when it woke nobody, whoever is counted in is dead, or alive and not
/// asleep yet, so the count is cleared (next generation, count 0) and the count word woken:
/// see [`Registration`] for why no live sleeper misses anything. A count that changed since
/// `seen` is left alone (the next publish looks again). Never where the kernel has no
/// `futex_waitv`: sleepers there do not sleep on the count word.
#[cold]
fn clear_if_nobody_woke(count: &AtomicU32, seen: u32, woken: usize) {
    if woken != 0 || !counts_anyone(seen) || !futex::waits_on_many() {
        return;
    }
    let cleared = (seen & !COUNT_MASK).wrapping_add(GENERATION_ONE);
    if count
        .compare_exchange(seen, cleared, SeqCst, Relaxed)
        .is_ok()
    {
        futex::wake_all(count);
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
pub(crate) fn time_to_look(slept: Instant, slice: Option<Duration>, last_look: Instant) -> bool {
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
    let seen = changes.sleepers_seen();
    if seen.is_some() || region.info().flags & FLAG_NOTIFY_READERS != 0 {
        wake_version(region, seen);
    }
}

/// The wake call of [`wake_value_waiters`], and the clearing of a count whose sleepers are all
/// gone ([`clear_if_nobody_woke`]).
#[cold]
fn wake_version(region: &Region, seen: Option<u32>) {
    let h = region.header();
    let woken = futex::wake_low_half_counting(&h.version);
    if let Some(seen) = seen {
        clear_if_nobody_woke(&h.waiters, seen, woken);
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
        let mut registration = self.writable().then(|| changes.register());
        let mut last_look = Instant::now();
        loop {
            // Counted in again if a waker cleared the count meanwhile (see `Registration`).
            let count_seen = registration.as_mut().and_then(Registration::renew);
            let notified = count_seen.is_some() || self.info().flags & FLAG_NOTIFY_READERS != 0;
            // Registered (a writable handle): SeqCst, which pairs with the publisher's SeqCst
            // swap and load of `waiters` (lock.rs), so either this load sees the new version or
            // the publisher sees us registered. Unregistered (perhaps through a read-only
            // mapping, where only relaxed loads are allowed: see `LoadAcquire`), nothing
            // pairs with it: the futex wait below rechecks the word in the kernel.
            let current = if count_seen.is_some() {
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
            let slice = left.map_or(slice_for, |l| l.min(slice_for));
            let slept = Instant::now();
            let count = count_seen.map(|seen| (Word::of(&self.header().waiters), seen));
            futex::wait_word(Word::low_half(version), current as u32, count, slice);
            if version_from_word(version.load_acquire()) == since
                && time_to_look(slept, Some(slice), last_look)
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
    let mut registration = if single {
        event.sleepers.store(1, SeqCst);
        None
    } else {
        Some(events.register())
    };
    // Counted in (MPMC): the count word too is slept on (see `Registration`).
    let count_seen = registration.as_mut().and_then(Registration::renew);
    let mut slept = false;
    if !ready() {
        // Past the deadline it does not sleep: the caller's next check reports the timeout.
        if let Ok(left) = time_left(deadline) {
            // A full count (65 535 sleepers) could not count this one in: re-check sooner.
            let most = if single || count_seen.is_some() {
                SLEEP_SLICE
            } else {
                UNNOTIFIED_SLICE
            };
            let slice = left.map_or(most, |left| left.min(most));
            let count = count_seen.map(|seen| (Word::of(&event.sleepers), seen));
            futex::wait_word(Word::of(&event.epoch), epoch, count, slice);
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
    if let Some(seen) = queue_event(event).sleepers_seen() {
        wake(event, single, seen);
    }
}

/// Bumps the epoch and wakes every sleeper. With a `single` sleeper (SPSC), only if this call
/// is the one that clears its flag: the pushes (or pops) that follow, before it runs, make no
/// further wake call. With counted sleepers (MPMC, the count word read `seen`), a wake call
/// that woke nobody clears the count ([`clear_if_nobody_woke`]).
#[cold]
fn wake(event: &Event, single: bool, seen: u32) {
    if single {
        if event.sleepers.swap(0, SeqCst) != 0 {
            bump_and_wake(event);
        }
        return;
    }
    let woken = bump_and_wake(event);
    clear_if_nobody_woke(&event.sleepers, seen, woken);
}

/// Wakes every sleeper whatever the count says (for `close`, and for a new SPSC role holder).
pub(crate) fn wake_unconditionally(event: &Event, single: bool) {
    if single {
        event.sleepers.store(0, SeqCst);
    }
    bump_and_wake(event);
}

/// Returns how many sleepers the wake call woke.
fn bump_and_wake(event: &Event) -> usize {
    event.epoch.fetch_add(1, SeqCst);
    futex::wake_all_counting(&event.epoch)
}

/// One source of a wait on several at once, armed: the futex word to sleep on, the value it
/// must still hold for the sleep to start, and this waiter's entry in the source's sleeper
/// count (so that its publishers wake it), removed when the `Armed` drops. A counted entry
/// adds the count word to sleep on (see [`Registration`]).
///
/// The protocol is the one of [`sleep_until`] and [`Region::wait_for_change`], split in two:
/// arm every source (read the epoch, count in), then check every condition, then sleep on all
/// the words at once ([`sleep_on_any`]) only if none holds. A publish between the check and
/// the sleep moved its word: the kernel then refuses the sleep.
pub(crate) struct Armed<'a> {
    word: Word<'a>,
    expected: u32,
    /// The sleeper count word and its value once counted in, for a counted entry.
    count: Option<(Word<'a>, u32)>,
    /// Whether a publish wakes this waiter; a read-only handle of a region that does not
    /// notify readers cannot count itself in, and re-checks every [`UNNOTIFIED_SLICE`].
    notified: bool,
    _entry: Entry<'a>,
}

/// A waiter's entry in a source's sleeper count, taken out on drop.
enum Entry<'a> {
    /// Nothing to take out: the source wakes everyone (a close) or cannot be counted in.
    None,
    /// One in a count (a value's `waiters`, an MPMC queue event's `sleepers`), held for its
    /// `Drop`.
    Counted { _registration: Registration<'a> },
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

/// Counts a waiter in `sleepers`: its entry, and the count word to sleep on with its value.
fn counted_entry(sleepers: &AtomicU32) -> (Entry<'_>, Option<(Word<'_>, u32)>) {
    let mut registration = Registration::count_in(sleepers);
    let seen = registration.renew();
    (
        Entry::Counted {
            _registration: registration,
        },
        seen.map(|seen| (Word::of(sleepers), seen)),
    )
}

impl<'a> Armed<'a> {
    /// Arms a wait for a new version of `region`'s value: its version's futex half, and the
    /// header's `waiters` for a writable handle. Check the version after this (with a SeqCst
    /// load when [`counted`](Self::counted)).
    pub(crate) fn value_change(region: &'a Region) -> Armed<'a> {
        let changes = value_changes(region);
        let (entry, count) = if region.writable() {
            counted_entry(&region.header().waiters)
        } else {
            (Entry::None, None)
        };
        let notified = count.is_some() || region.info().flags & FLAG_NOTIFY_READERS != 0;
        // After counting in (SeqCst), so that either this load sees a new version or its
        // publisher sees us counted in.
        let expected = changes.epoch.seen();
        Armed {
            word: Word::low_half(changes.epoch),
            expected,
            count,
            notified,
            _entry: entry,
        }
    }

    /// Arms a wait on a queue's (or channel's) `event`: `single` for an SPSC queue, whose
    /// event only its role holder may sleep on (the caller holds that role). Check the
    /// condition after this.
    pub(crate) fn queue_event(event: &'a Event, single: bool) -> Armed<'a> {
        let expected = event.epoch.load(SeqCst);
        let (entry, count) = if single {
            event.sleepers.store(1, SeqCst);
            let flag = Entry::Flag {
                flag: &event.sleepers,
                epoch: &event.epoch,
                seen: expected,
            };
            (flag, None)
        } else {
            counted_entry(&event.sleepers)
        };
        Armed {
            word: Word::of(&event.epoch),
            expected,
            notified: single || count.is_some(),
            count,
            _entry: entry,
        }
    }

    /// Arms a wait for a queue's close, which wakes every sleeper on `event` whether counted
    /// in or not: nothing to count in, so any handle may wait for it, in any mode.
    pub(crate) fn queue_close(event: &'a Event) -> Armed<'a> {
        Armed {
            word: Word::of(&event.epoch),
            expected: event.epoch.load(SeqCst),
            count: None,
            notified: true,
            _entry: Entry::None,
        }
    }

    /// Makes this waiter re-check every [`UNNOTIFIED_SLICE`], though publishes still wake it:
    /// for a wait on what no publish announces (an MPMC queue's lock that another process
    /// keeps holding).
    #[cfg(feature = "tokio")]
    pub(crate) fn recheck_soon(&mut self) {
        self.notified = false;
    }

    /// Whether this waiter is counted in its source's sleeper count.
    pub(crate) fn counted(&self) -> bool {
        self.count.is_some()
    }
}

/// How many futex words a source takes in [`sleep_on_any`] at most: its event's, and its
/// sleeper count's when it is counted in.
pub(crate) const WORDS_PER_COUNTED_SOURCE: usize = 2;

/// A value region's published version (as the API counts them), loaded after `armed` (its
/// [`Armed::value_change`]) as the protocol needs: SeqCst when counted in (it pairs with the
/// publisher's load of `waiters`: either it sees the new version or the publisher sees the
/// count), acquire otherwise (a read-only mapping allows only that, see `LoadAcquire`; the
/// futex re-checks the word in the kernel).
pub(crate) fn version_after_arming(region: &Region, armed: &Armed<'_>) -> u64 {
    let version = &region.header().version;
    version_from_word(if armed.counted() {
        version.load(SeqCst)
    } else {
        version.load_acquire()
    })
}

/// How long a wait on several sources may sleep before it re-checks them all: as
/// [`sleep_until`] (at most [`SLEEP_SLICE`], which bounds a lost wake-up), or
/// [`UNNOTIFIED_SLICE`] when a source cannot count this waiter in.
pub(crate) fn slice_for(
    armed: &[Armed<'_>],
    deadline: Option<Instant>,
) -> Result<Duration, TimedOut> {
    let slice = if !armed.iter().all(|a| a.notified) {
        UNNOTIFIED_SLICE
    } else if NO_SAFETY_SLICE.load(Relaxed) {
        Duration::from_secs(3600)
    } else {
        SLEEP_SLICE
    };
    Ok(time_left(deadline)?.map_or(slice, |left| left.min(slice)))
}

/// Set by tests that must see a lost wake-up as a hang rather than a 1 s delay.
static NO_SAFETY_SLICE: AtomicBool = AtomicBool::new(false);

/// Makes every later wait on several sources in this process sleep up to an hour at a time
/// instead of [`SLEEP_SLICE`], for tests: a wake-up the protocol lost then shows as a hang
/// instead of a one-second delay.
pub(crate) fn drop_safety_slice() {
    NO_SAFETY_SLICE.store(true, Relaxed);
}

/// Sleeps until a wake-up on any armed source, at most `slice` (see [`slice_for`]); returns at
/// once when a word already moved. Each word is slept on once: a word armed twice with two
/// values moved in between, and the sleep does not start. Callers keep sets within
/// [`WAIT_ANY_MAX`] words (a counted source takes [`WORDS_PER_COUNTED_SOURCE`]); words
/// beyond are not slept on. [`WaitAny::SleptOnFirst`] where the kernel sleeps on one word
/// only: the caller re-checks every source that often.
pub(crate) fn sleep_on_any(armed: &[Armed<'_>], slice: Duration) -> WaitAny {
    let mut words: Vec<(Word<'_>, u32)> = Vec::with_capacity(armed.len() * 2);
    for (word, expected) in armed
        .iter()
        .flat_map(|a| std::iter::once((a.word, a.expected)).chain(a.count))
    {
        match words.iter().find(|(w, _)| w.same(&word)) {
            Some(&(_, seen)) if seen == expected => {}
            Some(_) => return WaitAny::Returned,
            None => words.push((word, expected)),
        }
    }
    futex::wait_any(&words, Some(slice))
}

impl<'a> Armed<'a> {
    /// Every word a sleeper on this source must sleep on, with the value each must hold: the
    /// event's, and the sleeper count's when counted in (see [`Registration`]).
    pub(crate) fn words(&self) -> impl Iterator<Item = (Word<'a>, u32)> {
        std::iter::once((self.word, self.expected)).chain(self.count)
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
            waiters.load(SeqCst) & COUNT_MASK,
            0,
            "a timed-out waiter stayed registered"
        );
        for (waiter, registers) in [(&region, true), (&reader, false)] {
            let since = region.published_version();
            std::thread::scope(|scope| {
                let waiting = scope.spawn(move || waiter.wait_for_change(since, Some(HANG)));
                let by = Instant::now() + HANG;
                while registers && waiters.load(SeqCst) & COUNT_MASK == 0 && Instant::now() < by {
                    std::thread::yield_now();
                }
                assert_eq!(waiters.load(SeqCst) & COUNT_MASK, u32::from(registers));
                publish_a_write(&region);
                assert_eq!(waiting.join().unwrap(), Ok(since + 1));
            });
            assert_eq!(waiters.load(SeqCst) & COUNT_MASK, 0);
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
        assert!(events.sleepers_seen().is_some());
        sleepers.store(0, SeqCst);
        drop(registration);
        assert_eq!(sleepers.load(SeqCst), 0);
        assert!(events.sleepers_seen().is_none());
    }

    /// A registrant that never deregisters (a process killed while counted in) costs one
    /// publish a wake call for nobody, which clears the count: the next publishes make none.
    /// Before, the count stayed up forever and every publish made a wake call.
    #[test]
    fn regression_a_dead_registrant_kept_every_publish_waking() {
        if !waits_on_many() {
            return;
        }
        let region = scratch_value("wait-dead", 0);
        let waiters = &region.header().waiters;
        std::mem::forget(value_changes(&region).register());
        assert_eq!(waiters.load(SeqCst) & COUNT_MASK, 1);
        publish_a_write(&region);
        assert_eq!(
            waiters.load(SeqCst) & COUNT_MASK,
            0,
            "the dead entry is still counted"
        );
        assert_eq!(waiters.load(SeqCst) >> 16, 1, "one generation on");
    }

    /// A live waiter whose entry a waker cleared does not take out another's entry when it
    /// deregisters, and counts itself in again when it renews.
    #[test]
    fn a_cleared_entry_is_renewed_and_never_taken_out_of_another_generation() {
        let (epoch, sleepers) = (AtomicU32::new(0), AtomicU32::new(0));
        let events = EventCount::new(&epoch, &sleepers);
        let mut cleared = events.register();
        let seen = sleepers.load(SeqCst);
        // What a waker does when its wake call woke nobody.
        let generation_on = (seen & !COUNT_MASK).wrapping_add(GENERATION_ONE);
        sleepers.store(generation_on, SeqCst);
        let other = events.register();
        assert_eq!(sleepers.load(SeqCst), generation_on + 1);
        let renewed = cleared.renew().expect("counted in again");
        assert_eq!(renewed, generation_on + 2);
        drop(cleared);
        drop(other);
        assert_eq!(sleepers.load(SeqCst), generation_on);
        // A deregistration of the old generation after the clear takes nothing.
        let stale = events.register();
        sleepers.store(generation_on.wrapping_add(GENERATION_ONE), SeqCst);
        let _live = events.register();
        drop(stale);
        assert_eq!(
            sleepers.load(SeqCst) & COUNT_MASK,
            1,
            "the live entry stays"
        );
    }

    /// A sleeper counted in an MPMC event is woken by a push however the count was cleared:
    /// the kernel refuses the sleep of a waiter whose count word moved.
    #[test]
    fn a_sleeper_whose_entry_was_cleared_before_it_slept_does_not_sleep() {
        if !waits_on_many() {
            return;
        }
        let (epoch, sleepers) = (AtomicU32::new(0), AtomicU32::new(0));
        let event_word = Word::of(&epoch);
        let mut registration = Registration::count_in(&sleepers);
        let seen = registration.renew().unwrap();
        // Cleared by a waker between this waiter's check and its sleep.
        clear_if_nobody_woke(&sleepers, seen, 0);
        assert_eq!(sleepers.load(SeqCst) & COUNT_MASK, 0);
        let start = Instant::now();
        futex::wait_word(event_word, 0, Some((Word::of(&sleepers), seen)), HANG);
        assert!(start.elapsed() < HANG, "slept with a moved count word");
        assert_eq!(registration.renew(), Some(sleepers.load(SeqCst)));
        assert_eq!(sleepers.load(SeqCst) & COUNT_MASK, 1);
    }
}
