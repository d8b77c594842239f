//! The robust, process-shared, error-checking pthread mutex that guards a region.
//!
//! Robust: when its owner dies, the kernel marks the mutex and the next locker gets
//! `EOWNERDEAD` instead of waiting forever. Error-checking: a relock by the owning thread
//! answers `EDEADLK` instead of deadlocking, and the unlock of a mutex the thread does not own
//! answers `EPERM`.

use std::cell::UnsafeCell;
use std::io;
use std::mem::{align_of, size_of, MaybeUninit};
use std::time::Duration;

use nix::libc;

/// Bytes reserved for the mutex in the region header (glibc's `pthread_mutex_t` is 40 bytes on
/// 64-bit targets and 24 on 32-bit ones).
pub(crate) const MUTEX_BYTES: usize = 64;

const _: () = assert!(size_of::<libc::pthread_mutex_t>() <= MUTEX_BYTES);
const _: () = assert!(align_of::<libc::pthread_mutex_t>() <= 8);

/// The size of `pthread_mutex_t` this build uses; recorded in the header so that a process
/// built against another C library's mutex refuses the region instead of misreading it.
pub(crate) const PTHREAD_MUTEX_SIZE: usize = size_of::<libc::pthread_mutex_t>();

unsafe extern "C" {
    // glibc ≥ 2.30; the `libc` crate does not declare it yet. Like `pthread_mutex_timedlock`,
    // but the deadline is on the given clock, so a wall-clock jump cannot stretch a timeout.
    fn pthread_mutex_clocklock(
        mutex: *mut libc::pthread_mutex_t,
        clockid: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
}

/// Storage for a `pthread_mutex_t` inside shared memory.
#[repr(C, align(8))]
pub(crate) struct RobustMutex {
    storage: UnsafeCell<[u8; MUTEX_BYTES]>,
}

// SAFETY: a process-shared pthread mutex is designed to be operated on concurrently by any
// thread of any process; this type only hands its address to the pthread functions.
unsafe impl Sync for RobustMutex {}

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

    /// Blocks until the calling thread holds the mutex.
    #[inline]
    pub(crate) fn lock(&self) -> Result<Acquired, LockFailure> {
        // SAFETY: the mutex lives in a mapping that outlives `&self`; it was initialised by the
        // region's creator before the region was published (the header validation proved it).
        classify(unsafe { libc::pthread_mutex_lock(self.raw()) })
    }

    /// Takes the mutex if no thread holds it: `WouldBlock` if another thread does, `Deadlock`
    /// if the calling thread does.
    #[inline]
    pub(crate) fn try_lock(&self) -> Result<Acquired, LockFailure> {
        // SAFETY: as in `lock`.
        // glibc's robust error-checking trylock answers EDEADLK to its owner (kept as
        // `Deadlock`, so callers can tell "I hold it" from "someone else holds it").
        classify(unsafe { libc::pthread_mutex_trylock(self.raw()) })
    }

    /// Blocks until the calling thread holds the mutex or `timeout` has passed on the
    /// monotonic clock.
    pub(crate) fn lock_timeout(&self, timeout: Duration) -> Result<Acquired, LockFailure> {
        let deadline = monotonic_deadline(timeout);
        // SAFETY: as in `lock`; `deadline` is a valid absolute CLOCK_MONOTONIC time.
        classify(unsafe { pthread_mutex_clocklock(self.raw(), libc::CLOCK_MONOTONIC, &deadline) })
    }

    /// Marks a mutex acquired with [`Acquired::OwnerDied`] as consistent again, so that later
    /// unlocks leave it usable.
    pub(crate) fn mark_consistent(&self) {
        // SAFETY: as in `lock`. Calling it on a mutex that is not in the owner-died state
        // returns EINVAL and changes nothing, so a wrong call cannot corrupt it.
        unsafe { libc::pthread_mutex_consistent(self.raw()) };
    }

    /// Releases the mutex.
    ///
    /// # Safety
    ///
    /// The calling thread must hold the mutex (the error-checking kind would refuse otherwise,
    /// but the callers' own state — guards, latches — assumes a held lock).
    #[inline]
    pub(crate) unsafe fn unlock(&self) {
        // SAFETY: the caller holds the mutex, as required; the mapping outlives `&self`.
        unsafe { libc::pthread_mutex_unlock(self.raw()) };
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

/// `now + timeout` on CLOCK_MONOTONIC, saturating far in the future.
fn monotonic_deadline(timeout: Duration) -> libc::timespec {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32))
        .unwrap_or_default();
    let at = now.saturating_add(timeout);
    libc::timespec {
        tv_sec: at.as_secs().min(i64::MAX as u64 / 2) as libc::time_t,
        tv_nsec: at.subsec_nanos() as libc::c_long,
    }
}
