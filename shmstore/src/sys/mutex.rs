//! The robust, process-shared, error-checking pthread mutex that guards a region.
//!
//! Robust: when its owner dies, the kernel marks the mutex and the next locker gets
//! `EOWNERDEAD` instead of waiting forever. Error-checking: a relock by the owning thread
//! answers `EDEADLK` instead of deadlocking, and the unlock of a mutex the thread does not own
//! answers `EPERM`.
//!
//! # Across PID namespaces
//!
//! glibc stores the owner's thread id, as the owner's PID namespace numbers it, in the mutex's
//! futex word, and answers `EDEADLK` whenever that number equals the caller's own thread id.
//! Two processes in different PID namespaces (two containers sharing IPC, not pids) can have
//! the same thread id, typically 1: then one would take the other's lock for its own. So this
//! module never lets glibc wait, and never trusts its `EDEADLK` alone:
//!
//! - Every attempt is a `pthread_mutex_trylock`. A contended lock waits here, on the futex
//!   word (the protocol glibc and the kernel use: set `FUTEX_WAITERS`, sleep while the word is
//!   unchanged; the holder's unlock, or the kernel at the holder's death, wakes a sleeper).
//! - Each thread records which regions' mutexes it holds (by object, so a second handle of
//!   the same region counts). An `EDEADLK` for a mutex this thread does not hold means "held by
//!   a thread with my number in another namespace", and is waited for like any other holder.
//!
//! The kernel marks a dead holder's mutex `OWNER_DIED` by comparing the word with the dying
//! thread's id in its own namespace, so recovery after a death works across namespaces too.
//! What remains is the kernel's `list_op_pending` check: a thread killed inside
//! `pthread_mutex_trylock` or `pthread_mutex_unlock` (a few instructions, never while it
//! waits, since waiting happens here) at the moment a thread with the same number in another
//! namespace holds the mutex makes the kernel declare that live holder dead.
//!
//! # An unrecoverable mutex
//!
//! A mutex whose owner unlocked it after `EOWNERDEAD` without `pthread_mutex_consistent` is
//! unrecoverable for good: glibc's unlock stores `PTHREAD_MUTEX_NOTRECOVERABLE` (`INT_MAX - 1`,
//! `sysdeps/nptl/pthreadP.h`) in `__data.__owner`, which only `pthread_mutex_init` resets, and
//! frees the word. Every locker is then meant to take the word, see that mark and answer
//! `ENOTRECOVERABLE`. glibc's blocking and timed locks (`nptl/pthread_mutex_lock.c` and
//! `nptl/pthread_mutex_timedlock.c`, "This mutex is now not recoverable") free the word again
//! before they answer; its trylock does not: in glibc 2.36 (and still on master),
//! `nptl/pthread_mutex_trylock.c` takes the word with `oldval = CAS(__lock, 0 → id)`, which
//! leaves `oldval == 0` on success, and then frees it only `if (oldval == id)`, which is
//! therefore never true. The word keeps the first locker's thread id: every later trylock
//! answers `EBUSY` (`EDEADLK` on that thread), and nobody's unlock or death ever frees it.
//!
//! So after an `ENOTRECOVERABLE` this module frees the word itself (CAS back to 0, wake every
//! sleeper): the next trylock then takes it, sees the mark and answers `ENOTRECOVERABLE`
//! again. And a contended attempt looks at the mark before it answers "busy" or waits: the
//! word of an unrecoverable mutex is never a lock anyone holds, only a locker on its way to
//! the same answer (or a word an older build, or another program's trylock, left behind).

use std::cell::{Cell, RefCell, UnsafeCell};
use std::io;
use std::mem::{align_of, size_of, MaybeUninit};
use std::sync::atomic::Ordering::{Relaxed, Release};
use std::sync::atomic::{AtomicI32, AtomicU32};
use std::time::{Duration, Instant};

use nix::libc;

use super::futex;

/// Bytes reserved for the mutex in the region header (glibc's `pthread_mutex_t` is 40 bytes on
/// 64-bit targets and 24 on 32-bit ones).
pub(crate) const MUTEX_BYTES: usize = 64;

const _: () = assert!(size_of::<libc::pthread_mutex_t>() <= MUTEX_BYTES);
const _: () = assert!(align_of::<libc::pthread_mutex_t>() <= 8);

/// The size of `pthread_mutex_t` this build uses; recorded in the header so that a process
/// built against another C library's mutex refuses the region instead of misreading it.
pub(crate) const PTHREAD_MUTEX_SIZE: usize = size_of::<libc::pthread_mutex_t>();

/// The longest a contended lock sleeps before it looks at the futex word again. The holder's
/// unlock (or its death) wakes the sleeper at once; the slice only bounds what a lost wake-up
/// could cost, such as a holder killed between its unlock and its wake on an old kernel (the
/// kernel's robust-list cleanup wakes a sleeper for it only since Linux 5.5).
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// The bits of glibc's `__lock` word (the kernel's robust-futex ABI, `linux/futex.h`).
const FUTEX_WAITERS: u32 = 0x8000_0000;
const FUTEX_OWNER_DIED: u32 = 0x4000_0000;

/// glibc's `__data.__owner` of a mutex unlocked in the owner-died state without
/// `pthread_mutex_consistent` (`PTHREAD_MUTEX_NOTRECOVERABLE`, `sysdeps/nptl/pthreadP.h`).
const PTHREAD_MUTEX_NOTRECOVERABLE: i32 = i32::MAX - 1;

/// Where `__data.__owner` is in glibc's `pthread_mutex_t`: after the `int __lock` and the
/// `unsigned int __count`, on every glibc target (`bits/struct_mutex.h`).
const OWNER_OFFSET: usize = 2 * size_of::<u32>();

const _: () = assert!(OWNER_OFFSET + size_of::<i32>() <= size_of::<libc::pthread_mutex_t>());

const _: () = assert!(cfg!(target_env = "gnu"), "the mutex layout is glibc's");

/// Storage for a `pthread_mutex_t` inside shared memory.
#[repr(C, align(8))]
pub(crate) struct RobustMutex {
    storage: UnsafeCell<[u8; MUTEX_BYTES]>,
}

// SAFETY: a process-shared pthread mutex is designed to be operated on concurrently by any
// thread of any process; this type only hands its address to the pthread functions and to
// FUTEX_WAIT, and touches its futex word only with atomic operations.
unsafe impl Sync for RobustMutex {}

/// Which region a mutex belongs to, the same through every handle (mapping) of that region in
/// this process: the object's device and inode (a System V segment's id). The record of the
/// mutexes a thread holds is kept by key, so that `EDEADLK` can be told apart from a thread
/// with the same id in another PID namespace (see "Across PID namespaces" in the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MutexKey {
    dev: u64,
    ino: u64,
}

impl MutexKey {
    pub(crate) const fn new(dev: u64, ino: u64) -> MutexKey {
        MutexKey { dev, ino }
    }
}

thread_local! {
    /// The key of one region mutex the calling thread holds (the only one, almost always).
    ///
    /// Kept apart from [`HELD_MORE`] for speed: a `const`-initialised thread-local without
    /// `Drop` is a plain `%fs`-relative access (no registration of a destructor, no state
    /// check, never unavailable), and a `Cell` has no borrow flag. A `RefCell<Vec>` for every
    /// lock and unlock cost about 4 ns of a 19 ns lock+write+unlock (benches/lock.rs).
    static HELD_FIRST: Cell<Option<MutexKey>> = const { Cell::new(None) };
    /// The keys of the other region mutexes the calling thread holds, while it holds more
    /// than one.
    static HELD_MORE: RefCell<Vec<MutexKey>> = const { RefCell::new(Vec::new()) };
}

/// Records that this thread now holds `key`'s mutex. A key that needs [`HELD_MORE`] is not
/// recorded while the thread's locals are being destroyed: [`holds`] then errs towards "held".
#[inline]
fn record_held(key: MutexKey) {
    forget_held_in_fork_children();
    if HELD_FIRST.get().is_none() {
        HELD_FIRST.set(Some(key));
    } else {
        record_held_more(key);
    }
}

#[cold]
#[inline(never)]
fn record_held_more(key: MutexKey) {
    let _ = HELD_MORE.try_with(|held| held.borrow_mut().push(key));
}

/// Makes every `fork` child start with an empty record (once per process, before the first
/// record). A child is a copy of the forking thread, record included, but holds none of its
/// mutexes: the parent's thread does, under its own id. A stale record would make the child
/// take an `EDEADLK` meaning "a thread with my id in another PID namespace holds it" for its
/// own relock, and fail with `Deadlock` instead of waiting.
#[inline]
fn forget_held_in_fork_children() {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| {
        // SAFETY: registers a handler that only empties this module's thread-local record
        // (no lock, no allocation: `clear` keeps the capacity), which is sound in a child of a
        // multi-threaded process; handlers stay registered for the life of the process, and
        // `Once` registers this one once. The only error is ENOMEM, which leaves the record
        // as it was before this fix: ignored.
        let _ = unsafe { libc::pthread_atfork(None, None, Some(clear_held_in_child)) };
    });
}

/// The `pthread_atfork` child handler: runs in the child, in its only thread (the copy of the
/// one that forked).
extern "C" fn clear_held_in_child() {
    HELD_FIRST.set(None);
    let _ = HELD_MORE.try_with(|held| {
        // Not borrowed: fork is never called from inside this module's borrows.
        if let Ok(mut held) = held.try_borrow_mut() {
            held.clear();
        }
    });
}

/// Removes one record of `key` (there is at most one: an error-checking mutex is held once).
#[inline]
fn forget_held(key: MutexKey) {
    if HELD_FIRST.get() == Some(key) {
        HELD_FIRST.set(None);
    } else {
        forget_held_more(key);
    }
}

#[cold]
#[inline(never)]
fn forget_held_more(key: MutexKey) {
    let _ = HELD_MORE.try_with(|held| {
        let mut held = held.borrow_mut();
        if let Some(at) = held.iter().rposition(|k| *k == key) {
            held.swap_remove(at);
        }
    });
}

/// Whether this thread holds `key`'s mutex. `true` if the rest of the record is gone (thread
/// exit), which keeps the old answer to `EDEADLK`: report a self-deadlock rather than wait
/// for ever.
fn holds(key: MutexKey) -> bool {
    HELD_FIRST.get() == Some(key)
        || HELD_MORE
            .try_with(|held| held.borrow().contains(&key))
            .unwrap_or(true)
}

/// How long [`RobustMutex::lock`] waits.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Until {
    /// Not at all (`try_lock`): `WouldBlock` if another thread holds it.
    Now,
    /// Until this instant: `TimedOut` after it.
    Deadline(Instant),
    /// As long as it takes.
    Forever,
}

/// How a lock was acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// The previous owner unlocked it.
    Clean,
    /// The previous owner died holding it. The caller now holds it and must repair whatever
    /// the owner was doing, then call [`RobustMutex::mark_consistent`].
    OwnerDied,
}

/// Why a lock was not acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockFailure {
    /// Held by another thread (`try_lock`).
    WouldBlock,
    /// The deadline passed (`lock_timeout`).
    TimedOut,
    /// The calling thread already holds it.
    Deadlock,
    /// An owner unlocked it after `EOWNERDEAD` without marking it consistent; it cannot be
    /// locked again until re-initialised.
    NotRecoverable,
    /// Any other error number (a corrupt mutex, typically `EINVAL`).
    Other(i32),
}

impl RobustMutex {
    #[inline]
    fn raw(&self) -> *mut libc::pthread_mutex_t {
        self.storage.get().cast()
    }

    /// Initialises the mutex as process-shared, robust and error-checking.
    ///
    /// # Safety
    ///
    /// No thread of any process may use the mutex during the call or hold it: re-initialising a
    /// mutex in use is undefined behaviour.
    pub(crate) unsafe fn init(&self) -> io::Result<()> {
        let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: `attr` is writable storage for an attribute object; `pthread_mutexattr_init`
        // initialises it before any other use.
        check(unsafe { libc::pthread_mutexattr_init(attr.as_mut_ptr()) })?;
        let attr = attr.as_mut_ptr();
        let result = (|| {
            // SAFETY: `attr` was initialised above and is destroyed only after these calls.
            check(unsafe {
                libc::pthread_mutexattr_setpshared(attr, libc::PTHREAD_PROCESS_SHARED)
            })?;
            // SAFETY: as above.
            check(unsafe { libc::pthread_mutexattr_setrobust(attr, libc::PTHREAD_MUTEX_ROBUST) })?;
            // SAFETY: as above.
            check(unsafe {
                libc::pthread_mutexattr_settype(attr, libc::PTHREAD_MUTEX_ERRORCHECK)
            })?;
            // SAFETY: `self.raw()` points at MUTEX_BYTES ≥ size_of::<pthread_mutex_t>() bytes
            // aligned to 8 ≥ its alignment (both asserted above); the caller guarantees nobody
            // uses the mutex meanwhile.
            check(unsafe { libc::pthread_mutex_init(self.raw(), attr) })
        })();
        // SAFETY: `attr` is initialised and no longer needed.
        unsafe { libc::pthread_mutexattr_destroy(attr) };
        result
    }

    /// Takes the mutex, waiting as `until` says. `key` identifies the region (see
    /// [`MutexKey`]); the same key must be passed to [`unlock`](Self::unlock).
    ///
    /// `WouldBlock` (with [`Until::Now`]) or `TimedOut` if another thread, in this or any
    /// process, holds it; `Deadlock` only if the calling thread holds it.
    #[inline]
    pub(crate) fn lock(&self, key: MutexKey, until: Until) -> Result<Acquired, LockFailure> {
        match self.try_lock_once() {
            Ok(acquired) => {
                record_held(key);
                Ok(acquired)
            }
            Err(failure @ (LockFailure::WouldBlock | LockFailure::Deadlock)) => {
                self.lock_slow(key, until, failure)
            }
            Err(failure) => Err(failure),
        }
    }

    /// The contended path: tells a foreign `EDEADLK` from our own, and waits on the futex
    /// word (see "Across PID namespaces" in the module docs).
    #[cold]
    #[inline(never)]
    fn lock_slow(
        &self,
        key: MutexKey,
        until: Until,
        first: LockFailure,
    ) -> Result<Acquired, LockFailure> {
        let deadline = match until {
            Until::Now => None,
            Until::Deadline(deadline) => Some(deadline),
            Until::Forever => None,
        };
        let word = self.futex_word();
        // Whether this thread has slept: then it may have taken the wake-up that an unlock
        // gave to one sleeper, and must leave `FUTEX_WAITERS` set for the others, as glibc's
        // own waiters do (they take the lock as `tid | FUTEX_WAITERS`).
        let mut slept = false;
        let mut attempt = Err(first);
        loop {
            match attempt {
                Ok(acquired) => {
                    if slept {
                        // We hold it: only the other waiters (adding this same bit) and the
                        // kernel at our death write the word until our unlock.
                        word.fetch_or(FUTEX_WAITERS, Relaxed);
                    }
                    record_held(key);
                    return Ok(acquired);
                }
                Err(LockFailure::WouldBlock) => {}
                // The word holds our thread id, but this thread holds no lock of this region:
                // a thread with the same id in another PID namespace does.
                Err(LockFailure::Deadlock) if !holds(key) => {}
                Err(failure) => return Err(failure),
            }
            // Whoever has the word of an unrecoverable mutex holds no lock: it is a locker on
            // its way to the same answer, or glibc's trylock left it (see "An unrecoverable
            // mutex" in the module docs). Neither is worth a wait, or a "busy".
            if self.is_unrecoverable() {
                return Err(self.free_unrecoverable());
            }
            if matches!(until, Until::Now) {
                return Err(LockFailure::WouldBlock);
            }
            let seen = word.load(Relaxed);
            // Free, or its owner just died (the next attempt takes it and says so): try again.
            if seen == 0 || seen & FUTEX_OWNER_DIED != 0 {
                attempt = self.try_lock_once();
                continue;
            }
            let slice = match deadline {
                None => WAIT_SLICE,
                Some(deadline) => deadline
                    .saturating_duration_since(Instant::now())
                    .min(WAIT_SLICE),
            };
            if slice.is_zero() && !slept {
                return Err(LockFailure::TimedOut);
            }
            // Ask the holder's unlock (or the kernel, at its death) to wake a sleeper. Also
            // before giving up after a sleep: the wake-up this thread may have taken is then
            // handed on to the other sleepers, at the holder's unlock.
            let asleep_on = seen | FUTEX_WAITERS;
            if seen != asleep_on
                && word
                    .compare_exchange(seen, asleep_on, Relaxed, Relaxed)
                    .is_err()
            {
                attempt = self.try_lock_once();
                continue;
            }
            if slice.is_zero() {
                return Err(LockFailure::TimedOut);
            }
            futex::wait(word, asleep_on, Some(slice));
            slept = true;
            attempt = self.try_lock_once();
        }
    }

    /// One `pthread_mutex_trylock`: glibc's `EDEADLK` means only "the word holds my thread
    /// id" (see "Across PID namespaces" in the module docs).
    #[inline]
    fn try_lock_once(&self) -> Result<Acquired, LockFailure> {
        // SAFETY:
        // - the storage is MUTEX_BYTES ≥ size_of::<pthread_mutex_t>() bytes, 8-aligned
        //   (asserted above), in a mapping that outlives `&self`;
        // - initialised: the region's creator ran `init` before it published "ready". What the
        //   header check proves is only that the mutex has this libc's size (`mutex_size`), not
        //   what its bytes hold now: any peer with write access may have overwritten them.
        //   POSIX calls a mutex so forged undefined; what glibc does with such bytes is read
        //   them as a mutex of some kind and operate on this storage (inside our mapping),
        //   make futex calls on its address (which the kernel checks), or return an error;
        //   and while this thread holds it, the kernel follows the robust-list links stored in
        //   it when the thread exits.
        //   That is the threat model's trust in writers (README, "What a peer with write
        //   access can do"): not something this call can check.
        let code = unsafe { libc::pthread_mutex_trylock(self.raw()) };
        match classify(code) {
            // glibc's trylock left our thread id in the word (see "An unrecoverable mutex").
            Err(LockFailure::NotRecoverable) => Err(self.free_unrecoverable()),
            result => result,
        }
    }

    /// Whether the mutex is unrecoverable: glibc's mark in `__data.__owner`, which stays until
    /// the mutex is initialised again (see "An unrecoverable mutex" in the module docs).
    #[cold]
    #[inline(never)]
    fn is_unrecoverable(&self) -> bool {
        let owner = self
            .storage
            .get()
            .cast::<u8>()
            .wrapping_add(OWNER_OFFSET)
            .cast::<AtomicI32>();
        // SAFETY: `owner` is OWNER_OFFSET bytes into the storage, with 4 bytes left inside it
        // (asserted above), and 4-aligned (the storage is 8-aligned, OWNER_OFFSET is 8); the
        // borrow of `self` keeps the mapping alive. glibc writes `__owner` with plain stores of
        // an aligned `int`, single-copy atomic on every Linux target, and reads it plainly
        // itself while other threads write it; this atomic load sees some value one of them
        // stored, and answers only when it is the mark that nothing but `init` removes.
        let owner = unsafe { &*owner };
        owner.load(Relaxed) == PTHREAD_MUTEX_NOTRECOVERABLE
    }

    /// Frees the word of an unrecoverable mutex and wakes every sleeper, so that every later
    /// locker (this thread, another thread, another process; trylock, timed or blocking, ours
    /// or glibc's) takes it, sees the mark and answers `ENOTRECOVERABLE` in turn. Returns that
    /// answer.
    ///
    /// Nobody holds such a word (see "An unrecoverable mutex" in the module docs), so freeing
    /// it under another locker's feet is harmless: that locker answers `ENOTRECOVERABLE` all
    /// the same, and its own freeing finds the word changed and leaves it. A word marked
    /// `FUTEX_OWNER_DIED` is left for the next locker, as for any mutex.
    #[cold]
    #[inline(never)]
    fn free_unrecoverable(&self) -> LockFailure {
        let word = self.futex_word();
        let seen = word.load(Relaxed);
        if seen != 0 && seen & FUTEX_OWNER_DIED == 0 {
            // Failing means another locker changed the word meanwhile: it frees it in turn.
            let _ = word.compare_exchange(seen, 0, Release, Relaxed);
        }
        // Also for a word already 0: glibc's own freeing (`lll_unlock`, which wakes only when
        // the old word is > 1 as an `int`) skips the wake when `FUTEX_WAITERS` was set.
        futex::wake_all(word);
        LockFailure::NotRecoverable
    }

    /// glibc's `__lock`, the futex word of the mutex: the first field of `pthread_mutex_t` on
    /// every glibc target.
    fn futex_word(&self) -> &AtomicU32 {
        // SAFETY: the storage is 8-byte aligned and at least 4 bytes long; glibc and the kernel
        // access this word only atomically, so an `AtomicU32` view of it (same size and
        // alignment as `u32`) races with nothing non-atomic; the borrow of `self` keeps the
        // mapping alive.
        unsafe { &*self.raw().cast::<AtomicU32>() }
    }

    /// Marks a mutex acquired with [`Acquired::OwnerDied`] as consistent again, so that later
    /// unlocks leave it usable.
    pub(crate) fn mark_consistent(&self) {
        // SAFETY: as in `try_lock_once`, including what is not proved about the bytes. On a
        // mutex that glibc sees in no owner-died state it returns EINVAL and changes nothing.
        unsafe { libc::pthread_mutex_consistent(self.raw()) };
    }

    /// Releases the mutex.
    ///
    /// # Safety
    ///
    /// The calling thread must hold the mutex, taken with [`lock`](Self::lock) and the same
    /// `key`. (glibc checks only that the word holds the caller's thread id, which a thread
    /// with the same id in another PID namespace also passes.)
    #[inline]
    pub(crate) unsafe fn unlock(&self, key: MutexKey) {
        // SAFETY: the caller holds the mutex, as required; the mapping outlives `&self`.
        unsafe { libc::pthread_mutex_unlock(self.raw()) };
        forget_held(key);
    }
}

#[inline]
fn classify(code: libc::c_int) -> Result<Acquired, LockFailure> {
    match code {
        0 => Ok(Acquired::Clean),
        libc::EOWNERDEAD => Ok(Acquired::OwnerDied),
        libc::EBUSY => Err(LockFailure::WouldBlock),
        libc::ETIMEDOUT => Err(LockFailure::TimedOut),
        libc::EDEADLK => Err(LockFailure::Deadlock),
        libc::ENOTRECOVERABLE => Err(LockFailure::NotRecoverable),
        other => Err(LockFailure::Other(other)),
    }
}

fn check(code: libc::c_int) -> io::Result<()> {
    if code == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::SeqCst;

    /// A fresh, initialised mutex in this process's memory (process-shared works there too).
    fn mutex() -> Box<RobustMutex> {
        let m = Box::new(RobustMutex {
            storage: UnsafeCell::new([0; MUTEX_BYTES]),
        });
        // SAFETY: nobody else can use the fresh mutex.
        unsafe { m.init() }.unwrap();
        m
    }

    fn tid() -> u32 {
        // SAFETY: `gettid` takes nothing and cannot fail.
        (unsafe { libc::gettid() }) as u32
    }

    const KEY: MutexKey = MutexKey::new(1, 2);

    /// A holder with this thread's id in another PID namespace, as this thread sees it: the
    /// futex word holds our id, and glibc answers `EDEADLK`.
    #[test]
    fn a_foreign_holder_with_our_thread_id_is_another_holder() {
        let m = mutex();
        m.futex_word().store(tid(), SeqCst);
        assert_eq!(
            m.try_lock_once(),
            Err(LockFailure::Deadlock),
            "glibc's view"
        );

        assert_eq!(m.lock(KEY, Until::Now), Err(LockFailure::WouldBlock));
        let soon = Instant::now() + Duration::from_millis(20);
        assert_eq!(
            m.lock(KEY, Until::Deadline(soon)),
            Err(LockFailure::TimedOut)
        );

        // The foreign holder dies: the kernel marks the word, and the next locker recovers.
        m.futex_word().store(FUTEX_OWNER_DIED, SeqCst);
        assert_eq!(m.lock(KEY, Until::Forever), Ok(Acquired::OwnerDied));
        m.mark_consistent();
        // Now this thread holds it: a relock is a deadlock, whatever the wait.
        for until in [Until::Now, Until::Forever] {
            assert_eq!(m.lock(KEY, until), Err(LockFailure::Deadlock));
        }
        // SAFETY: this thread holds it, with KEY.
        unsafe { m.unlock(KEY) };
        assert_eq!(m.lock(KEY, Until::Now), Ok(Acquired::Clean));
        // SAFETY: as above.
        unsafe { m.unlock(KEY) };
    }

    /// A mutex made unrecoverable (`EOWNERDEAD`, then an unlock without
    /// `pthread_mutex_consistent`).
    fn unrecoverable() -> Box<RobustMutex> {
        let m = mutex();
        m.futex_word().store(FUTEX_OWNER_DIED, SeqCst);
        assert_eq!(m.lock(KEY, Until::Now), Ok(Acquired::OwnerDied));
        // SAFETY: this thread holds it, with KEY.
        unsafe { m.unlock(KEY) };
        m
    }

    /// glibc's trylock answers `ENOTRECOVERABLE` and leaves the caller's id in the word; the
    /// word is free again afterwards, so that every later attempt gets the same answer.
    #[test]
    fn an_unrecoverable_answer_leaves_the_word_free() {
        let m = unrecoverable();
        assert!(m.is_unrecoverable());
        for until in [Until::Now, Until::Forever, Until::Now] {
            assert_eq!(m.lock(KEY, until), Err(LockFailure::NotRecoverable));
            assert_eq!(m.futex_word().load(SeqCst), 0, "{until:?}");
        }
        // A fresh mutex is not.
        assert!(!mutex().is_unrecoverable());
    }

    /// A word an older build (or another program's trylock) left holding a thread id, ours or
    /// a foreign one, with or without waiters: every wait answers `NotRecoverable` at once
    /// (no `Deadlock`, no "busy", no wait), and frees the word.
    #[test]
    fn a_stale_word_on_an_unrecoverable_mutex_is_not_a_holder() {
        let m = unrecoverable();
        for stale in [tid(), tid() | FUTEX_WAITERS, 1, 1 | FUTEX_WAITERS] {
            for until in [
                Until::Now,
                Until::Deadline(Instant::now() + Duration::from_secs(60)),
                Until::Forever,
            ] {
                m.futex_word().store(stale, SeqCst);
                assert_eq!(
                    m.lock(KEY, until),
                    Err(LockFailure::NotRecoverable),
                    "{stale:#x} {until:?}"
                );
                assert_eq!(m.futex_word().load(SeqCst), 0, "{stale:#x} {until:?}");
            }
        }
    }

    /// A blocked `lock` sleeps until the foreign holder unlocks (glibc's unlock: exchange the
    /// word for 0, then wake one sleeper if `FUTEX_WAITERS` was set).
    #[test]
    fn lock_sleeps_until_a_foreign_holder_unlocks() {
        let m: &'static RobustMutex = Box::leak(mutex());
        let (tell, told) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            // The foreign holder has the waiter's id.
            m.futex_word().store(tid(), SeqCst);
            tell.send(tid()).unwrap();
            let acquired = m.lock(KEY, Until::Forever);
            // SAFETY: acquired by this thread with KEY (checked by the caller below).
            unsafe { m.unlock(KEY) };
            acquired
        });
        let foreign_tid = told.recv().unwrap();
        // The waiter flags the word before it sleeps.
        while m.futex_word().load(SeqCst) != foreign_tid | FUTEX_WAITERS {
            std::thread::yield_now();
        }
        let old = m.futex_word().swap(0, SeqCst);
        assert_ne!(old & FUTEX_WAITERS, 0);
        futex::wake_all(m.futex_word());
        assert_eq!(waiter.join().unwrap(), Ok(Acquired::Clean));
    }

    /// Two handles (mappings) of one region share a key: a thread holding the lock through one
    /// gets `Deadlock` through the other, while other regions' locks are unaffected.
    #[test]
    fn the_record_is_per_region_and_per_thread() {
        let (a, b) = (mutex(), mutex());
        let other_key = MutexKey::new(1, 3);
        assert_eq!(a.lock(KEY, Until::Now), Ok(Acquired::Clean));
        assert!(holds(KEY) && !holds(other_key));
        assert_eq!(b.lock(other_key, Until::Now), Ok(Acquired::Clean));
        assert!(std::thread::spawn(|| !holds(KEY)).join().unwrap());
        // SAFETY: held by this thread with this key.
        unsafe { a.unlock(KEY) };
        // SAFETY: as above.
        unsafe { b.unlock(other_key) };
        assert!(!holds(KEY) && !holds(other_key));
    }

    /// The record keeps one key inline and the others in a list: every mix of lock and
    /// unlock order leaves exactly the held keys recorded, whichever tier holds them.
    #[test]
    fn the_record_survives_any_unlock_order() {
        let mutexes = [mutex(), mutex(), mutex()];
        let keys = [
            MutexKey::new(7, 1),
            MutexKey::new(7, 2),
            MutexKey::new(7, 3),
        ];
        for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2], [0, 2, 1]] {
            for (m, key) in mutexes.iter().zip(keys) {
                assert_eq!(m.lock(key, Until::Now), Ok(Acquired::Clean));
            }
            for (released, &at) in order.iter().enumerate() {
                // SAFETY: held by this thread with this key (locked above, not yet released).
                unsafe { mutexes[at].unlock(keys[at]) };
                for (k, key) in keys.iter().enumerate() {
                    let still_held = !order[..=released].contains(&k);
                    assert_eq!(holds(*key), still_held, "order {order:?}, key {k}");
                }
            }
            // The inline slot is reused while the list may still hold keys.
            assert_eq!(mutexes[1].lock(keys[1], Until::Now), Ok(Acquired::Clean));
            assert!(holds(keys[1]) && !holds(keys[0]) && !holds(keys[2]));
            assert_eq!(
                mutexes[1].lock(keys[1], Until::Now),
                Err(LockFailure::Deadlock)
            );
            // SAFETY: as above.
            unsafe { mutexes[1].unlock(keys[1]) };
        }
    }

    /// A thread that forks while it holds a lock: the child holds nothing (the parent's thread
    /// does), so an `EDEADLK` in the child is a holder with the child's id in another PID
    /// namespace, to wait for, not the child's own relock.
    #[test]
    fn a_fork_child_does_not_inherit_the_record() {
        let m = mutex();
        assert_eq!(m.lock(KEY, Until::Now), Ok(Acquired::Clean));
        // SAFETY: the child only reads this thread's record, writes the mutex's word, tries
        // the lock once (no allocation, no lock of this process) and leaves with `_exit`.
        let child = unsafe { libc::fork() };
        if child == 0 {
            // The word as a holder in another namespace with the child's id would leave it.
            m.futex_word().store(tid(), SeqCst);
            let code = match (holds(KEY), m.lock(KEY, Until::Now)) {
                (false, Err(LockFailure::WouldBlock)) => 0,
                (true, _) => 1,
                _ => 2,
            };
            // SAFETY: ends the child without running the parent's exit handlers.
            unsafe { libc::_exit(code) };
        }
        assert!(child > 0, "fork: {}", io::Error::last_os_error());
        let mut status = 0;
        // SAFETY: waits for the child this test forked.
        let waited = unsafe { libc::waitpid(child, &mut status, 0) };
        assert_eq!(waited, child);
        // SAFETY: held by this thread with KEY.
        unsafe { m.unlock(KEY) };
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the child believed it held the lock (status {status:#x}: exit 1 = recorded, 2 = \
             not WouldBlock)"
        );
    }
}
