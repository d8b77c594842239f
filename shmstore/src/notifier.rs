//! The process's notifier: background threads that sleep on the futex words of every source
//! that an async future ([`Shm::changed`](crate::Shm::changed), [`ShmQueue::pop_async`]…)
//! or a [`ShmEvents`](crate::ShmEvents) descriptor waits on, and wake that future's `Waker`
//! (or signal that descriptor) when a word moves.
//!
//! # How it sleeps
//!
//! A *shard* is one thread and a registry of at most [`PER_SHARD`] registrations behind a
//! `parking_lot::Mutex`, shared by every thread of the process that registers. Its thread
//! sleeps with [`futex::wait_any`] on the futex word of each armed registration plus a private
//! word of its own (`control`) that a registration change bumps and wakes, so that it sleeps
//! on the new set. `futex_waitv` takes at most 128 words: a process with more registrations
//! at once starts another shard (thread), and so on; shards start lazily, on the first
//! registration that finds no room, and stay for the process's life (idle, one sleeping thread
//! each).
//!
//! A registration holds an [`Armed`] source (its entry in the source's sleeper count, so that
//! publishers wake it; the protocol of the `wait` module: arm, then check, then sleep) and a
//! share of the region's mapping (`Arc`), so the words it names stay mapped for as long as it
//! lives, even past the handle, and even if the registration is leaked. A registration removed
//! while the thread sleeps on its word hands its mapping to the shard, which drops it once it
//! is awake: no futex word is ever slept on unmapped.
//!
//! When a word moves (or the kernel wakes it, or the registration's slice runs out) the shard
//! marks the registration *fired* and stops sleeping on it until its owner re-arms it: the
//! owner re-checks its condition on its own thread. The slice is the blocking calls' own
//! (`SLEEP_SLICE`, 1 s; 10 ms for a read-only handle that cannot count itself in): it bounds a
//! lost wake-up and how late a removal by another program is noticed, exactly as for them.
//!
//! Where the kernel has no `futex_waitv` (before Linux 5.16), [`futex::wait_any`] sleeps on the
//! first word, `control`, for at most a millisecond: a shard with registrations then looks at
//! their words every millisecond (a shard without any sleeps on `control` alone, untimed).

use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::sys::eventfd::EventFd;
use crate::sys::futex::{self, WaitAny, Word};
use crate::sys::object::Mapping;
use crate::wait::{slice_for, Armed, WAIT_ANY_MAX, WORDS_PER_COUNTED_SOURCE};

/// The most registrations one shard (one thread) sleeps on, within `futex_waitv`'s 128 words.
/// Each takes up to [`WORDS_PER_COUNTED_SOURCE`] words (its event's, and its sleeper count's
/// when counted in, which it must sleep on too: see `wait::Registration`); the thread's own
/// word is one more.
pub(crate) const PER_SHARD: usize = (WAIT_ANY_MAX - 1) / WORDS_PER_COUNTED_SOURCE;

/// An armed source and the mapping its words live in.
pub(crate) struct Source {
    // Declared first, so dropped first: its sleeper-count entry is taken out while `_map`
    // still keeps the words mapped.
    /// `None` once disarmed ([`Watch::disarm`]).
    armed: Option<Armed<'static>>,
    _map: Arc<Mapping>,
}

// SAFETY: an `Armed` holds addresses of atomics in a shared mapping (a futex word, a sleeper
// count) and touches them only atomically, from whichever thread drops it: nothing about it is
// tied to a thread. `_map` keeps them mapped (a `Mapping` is `Send`).
unsafe impl Send for Source {}

impl Source {
    /// Takes `armed` in, with `map` keeping its words mapped.
    ///
    /// # Safety
    ///
    /// Every word `armed` refers to (its futex word, its sleeper count or flag) lies in `map`.
    pub(crate) unsafe fn new(armed: Armed<'_>, map: Arc<Mapping>) -> Source {
        // SAFETY: only the lifetime changes. The words `armed` borrows lie in `map` (the
        // caller's promise), which this `Source` keeps mapped for as long as it holds `armed`:
        // `armed` is dropped first (field order) and never handed out.
        let armed = unsafe { std::mem::transmute::<Armed<'_>, Armed<'static>>(armed) };
        Source {
            armed: Some(armed),
            _map: map,
        }
    }

    /// The same source, re-checked every 10 ms (`wait::UNNOTIFIED_SLICE`) as well as when its
    /// word moves (see [`Armed::recheck_soon`]).
    #[cfg(feature = "tokio")]
    pub(crate) fn recheck_soon(mut self) -> Source {
        if let Some(armed) = &mut self.armed {
            armed.recheck_soon();
        }
        self
    }

    /// Takes the `Armed` out, keeping only the mapping (for a removal while the shard may
    /// still be sleeping on the word).
    fn disarm(self) -> Arc<Mapping> {
        let Source { armed, _map } = self;
        drop(armed);
        _map
    }
}

/// Whom a fired registration tells.
pub(crate) enum Target {
    /// A future: its task is woken.
    #[cfg_attr(not(any(test, feature = "tokio")), allow(dead_code))]
    Waker(Waker),
    /// A descriptor: its eventfd is signalled.
    Descriptor(Arc<EventFd>),
}

impl Target {
    fn notify(self) {
        match self {
            Target::Waker(waker) => waker.wake(),
            Target::Descriptor(fd) => fd.signal(),
        }
    }

    fn share(&self) -> Target {
        match self {
            Target::Waker(waker) => Target::Waker(waker.clone()),
            Target::Descriptor(fd) => Target::Descriptor(Arc::clone(fd)),
        }
    }
}

/// How a fired registration fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fired {
    /// Its word moved: its source had an event.
    Moved,
    /// Its word did not move: its slice ran out, or something woke every sleeper without an
    /// event (a region's remover does): the owner looks for a removal if its condition still
    /// does not hold.
    Quiet,
}

struct Entry {
    source: Source,
    target: Target,
    slice_end: Instant,
    fired: Option<Fired>,
    /// Whether the shard's thread is asleep with this entry's word in its set.
    in_sleep: bool,
}

#[derive(Default)]
struct Registry {
    slots: Vec<Option<Entry>>,
    live: usize,
    /// Whether the thread is asleep (or about to be) on the words of the entries marked
    /// `in_sleep`.
    asleep: bool,
    /// Mappings of entries removed while the thread slept on their words: dropped when it
    /// wakes.
    retired: Vec<Arc<Mapping>>,
}

struct Shard {
    /// The shard's own futex word: bumped and woken when its set of words changes.
    control: AtomicU32,
    registry: Mutex<Registry>,
    /// The process whose thread serves it: a child forked from that process inherits the
    /// shard but not its thread, so it starts shards of its own.
    pid: u32,
}

impl Shard {
    /// Makes the thread sleep on the registry's new set, if it sleeps now (the caller holds the
    /// registry's lock: a thread not asleep reads the set again before it sleeps).
    fn kick(&self, registry: &Registry) {
        if registry.asleep {
            self.control.fetch_add(1, SeqCst);
            futex::wake_all(&self.control);
        }
    }
}

/// Every shard the process started.
static SHARDS: Mutex<Vec<&'static Shard>> = Mutex::new(Vec::new());

/// A registration with the notifier, removed (with its entry in the source's sleeper count)
/// when dropped.
pub(crate) struct Watch {
    shard: &'static Shard,
    slot: usize,
}

impl Watch {
    /// Registers `source`, armed: `target` hears when its word moves.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when a new shard's thread cannot be started.
    pub(crate) fn new(source: Source, target: Target) -> Result<Watch> {
        let mut shards = SHARDS.lock();
        let mut entry = Some(Entry::new(source, target));
        let me = std::process::id();
        for &shard in shards.iter().filter(|shard| shard.pid == me) {
            if let Some(slot) = shard.insert(&mut entry) {
                return Ok(Watch { shard, slot });
            }
        }
        let shard: &'static Shard = Box::leak(Box::new(Shard {
            control: AtomicU32::new(0),
            registry: Mutex::new(Registry::default()),
            pid: me,
        }));
        std::thread::Builder::new()
            .name("shmstore-notifier".into())
            .spawn(move || run(shard))
            .map_err(|e| Error::io("the process's notifier", "spawn a thread", e))?;
        shards.push(shard);
        let slot = shard
            .insert(&mut entry)
            .unwrap_or_else(|| unreachable!("a new shard has room"));
        Ok(Watch { shard, slot })
    }

    /// Whether the registration fired, and how; if it did not, `target` replaces whom it
    /// tells (a future's latest `Waker`).
    pub(crate) fn fired(&self, target: Option<&Waker>) -> Option<Fired> {
        let mut registry = self.shard.registry.lock();
        let entry = registry.slots[self.slot].as_mut()?;
        if entry.fired.is_none() {
            if let (Some(waker), Target::Waker(current)) = (target, &mut entry.target) {
                if !current.will_wake(waker) {
                    *current = waker.clone();
                }
            }
        }
        entry.fired
    }

    /// Takes the registration's entry out of its source's sleeper count, before its owner
    /// arms the source again: an SPSC event's flag must be set by the new arming, not cleared
    /// after it by the old one's (which clears it when the epoch did not move). The
    /// registration stays, fired (slept on no more), until [`rearm`](Self::rearm).
    pub(crate) fn disarm(&self) {
        let mut registry = self.shard.registry.lock();
        if let Some(entry) = registry.slots[self.slot].as_mut() {
            entry.fired.get_or_insert(Fired::Quiet);
            // The mapping stays (`_map`): the thread may still sleep on the word.
            drop(entry.source.armed.take());
        }
    }

    /// Arms the registration again on `source` (a fired one, whose owner re-checked).
    pub(crate) fn rearm(&self, source: Source, waker: Option<&Waker>) {
        let mut registry = self.shard.registry.lock();
        let Some(entry) = registry.slots[self.slot].as_mut() else {
            return;
        };
        let old = std::mem::replace(&mut entry.source, source);
        entry.slice_end = Instant::now() + slice_of(&entry.source);
        entry.fired = None;
        if let (Some(waker), Target::Waker(current)) = (waker, &mut entry.target) {
            if !current.will_wake(waker) {
                *current = waker.clone();
            }
        }
        let was_in_sleep = std::mem::take(&mut entry.in_sleep);
        let map = old.disarm();
        if was_in_sleep && registry.asleep {
            registry.retired.push(map);
        } else {
            drop(map);
        }
        self.shard.kick(&registry);
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut registry = self.shard.registry.lock();
        let Some(entry) = registry.slots[self.slot].take() else {
            return;
        };
        registry.live -= 1;
        let map = entry.source.disarm();
        if entry.in_sleep && registry.asleep {
            // The thread may be asleep on this word: it drops the mapping once awake, and it
            // wakes now so that it stops sleeping on a word nobody waits on.
            registry.retired.push(map);
            self.shard.kick(&registry);
        } else {
            drop(registry);
            drop(map);
        }
    }
}

impl Entry {
    fn new(source: Source, target: Target) -> Entry {
        Entry {
            slice_end: Instant::now() + slice_of(&source),
            source,
            target,
            fired: None,
            in_sleep: false,
        }
    }
}

/// How long a registration may sleep before its owner re-checks (see the module docs).
fn slice_of(source: &Source) -> std::time::Duration {
    slice_for(source.armed.as_slice(), None)
        .unwrap_or_else(|_| unreachable!("no deadline, no timeout"))
}

impl Shard {
    /// Places `entry` in a free slot, if there is one.
    fn insert(&self, entry: &mut Option<Entry>) -> Option<usize> {
        let mut registry = self.registry.lock();
        if registry.live >= PER_SHARD {
            return None;
        }
        let slot = match registry.slots.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                registry.slots.push(None);
                registry.slots.len() - 1
            }
        };
        registry.slots[slot] = entry.take();
        registry.live += 1;
        self.kick(&registry);
        Some(slot)
    }
}

/// A shard's thread: sleeps on its armed registrations' words and its own, fires those whose
/// word moved or whose slice ran out, and tells their targets.
fn run(shard: &'static Shard) {
    let mut registry = shard.registry.lock();
    loop {
        // Awake: it sleeps on no removed entry's word any more.
        registry.retired.clear();
        let seen = shard.control.load(SeqCst);
        let mut words: Vec<(Word<'static>, u32)> = vec![(Word::of(&shard.control), seen)];
        // Which of `slots` each word after the first belongs to.
        let mut owners = Vec::new();
        let mut slots = Vec::new();
        let mut until: Option<Instant> = None;
        for (slot, entry) in registry.slots.iter_mut().enumerate() {
            let armed = entry
                .as_mut()
                .filter(|e| e.fired.is_none())
                .and_then(|e| Some((e.source.armed.as_ref()?.words(), e)));
            if let Some((entry_words, entry)) = armed {
                for word in entry_words {
                    words.push(word);
                    owners.push(slots.len());
                }
                entry.in_sleep = true;
                slots.push(slot);
                until = Some(until.map_or(entry.slice_end, |u| u.min(entry.slice_end)));
            }
        }
        registry.asleep = true;
        let woken = parking_lot::MutexGuard::unlocked(&mut registry, || {
            if words.len() == 1 {
                // Nothing registered: only a registration wakes it (no slice to look at).
                futex::wait(&shard.control, seen, None);
                None
            } else {
                let left = until.map(|u| u.saturating_duration_since(Instant::now()));
                if left.is_some_and(|l| l.is_zero()) {
                    return None;
                }
                // Every word but `control` is an armed entry's, whose mapping its `Source`
                // (or `retired`, once removed) keeps until this thread is awake again.
                match futex::wait_any(&words, left) {
                    WaitAny::Woken(0) | WaitAny::Returned | WaitAny::SleptOnFirst => None,
                    WaitAny::Woken(i) => owners.get(i - 1).copied(),
                }
            }
        });
        registry.asleep = false;
        let now = Instant::now();
        let mut tell = Vec::new();
        for (index, &slot) in slots.iter().enumerate() {
            let Some(entry) = registry.slots[slot].as_mut() else {
                continue;
            };
            if !std::mem::take(&mut entry.in_sleep) || entry.fired.is_some() {
                // Re-armed meanwhile: it is slept on afresh.
                continue;
            }
            let Some(armed) = entry.source.armed.as_ref() else {
                continue;
            };
            // The event's word, or the sleeper count's (a waker cleared it: re-armed, the
            // registration counts itself in again).
            let moved = armed
                .words()
                .any(|(word, expected)| word.load() != expected);
            if moved || woken == Some(index) || now >= entry.slice_end {
                entry.fired = Some(if moved { Fired::Moved } else { Fired::Quiet });
                tell.push(entry.target.share());
            }
        }
        if !tell.is_empty() {
            // A waker may run the task at once (an executor that polls inline), which may
            // register or drop a registration: not under the lock.
            parking_lot::MutexGuard::unlocked(&mut registry, || {
                tell.into_iter().for_each(Target::notify)
            });
        }
    }
}

/// How many registrations the process's notifier holds now (every shard). For tests: a
/// dropped future or descriptor must leave none behind.
pub(crate) fn registrations() -> usize {
    SHARDS
        .lock()
        .iter()
        .map(|shard| shard.registry.lock().live)
        .sum()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::task::Wake;
    use std::time::Duration;

    use super::*;
    use crate::region::scratch_value;

    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, SeqCst);
        }
    }

    fn value_source(region: &crate::region::Region) -> Source {
        // SAFETY: a value's words (its version, its `waiters`) lie in its header, in its
        // mapping.
        unsafe { Source::new(Armed::value_change(region), region.shared_mapping()) }
    }

    /// A registration fires when its word moves, counts itself in while it lives, and more
    /// registrations than one shard holds start another.
    #[test]
    fn a_registration_fires_when_its_word_moves_and_leaves_nothing_behind() {
        let region = scratch_value("notifier-fires", 0);
        let waiters = &region.header().waiters;
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        let watches: Vec<Watch> = (0..PER_SHARD + 3)
            .map(|_| {
                Watch::new(
                    value_source(&region),
                    Target::Waker(Waker::from(Arc::clone(&flag))),
                )
                .expect("watch")
            })
            .collect();
        // The count bits (FORMAT.md, "Sleeper counts": the high half is a generation).
        let count = || waiters.load(SeqCst) & crate::wait::COUNT_MASK;
        assert_eq!(count() as usize, PER_SHARD + 3);
        assert!(registrations() >= PER_SHARD + 3);
        region.header().version.fetch_add(2, SeqCst);
        crate::wait::wake_value_waiters(&region);
        let by = Instant::now() + Duration::from_secs(20);
        while watches.iter().any(|w| w.fired(None).is_none()) && Instant::now() < by {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(watches.iter().all(|w| w.fired(None) == Some(Fired::Moved)));
        assert!(flag.0.load(SeqCst));
        drop(watches);
        assert_eq!(count(), 0);
    }
}
