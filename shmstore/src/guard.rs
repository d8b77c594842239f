//! `ShmGuard`: the typed view of a locked region.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use crate::attach::Attached;
use crate::layout::ShmType;

/// Exclusive access to a region's value, across every process, until dropped.
///
/// Reading through the guard costs nothing extra. The first write marks the value as being
/// written; dropping the guard commits every write at once — or, if the process dies first,
/// the next locker rolls it back (default mode) or sees the region poisoned (`in_place`).
///
/// The guard is not `Send`: a pthread mutex must be unlocked by the thread that locked it.
/// For the same reason it must not cross `fork`: a child holds none of its parent's locks, and
/// must `std::mem::forget` an inherited guard rather than write through it or drop it
/// (README, "Known limits").
///
/// ```
/// # use shmstore::{Shm, ShmType};
/// # #[derive(ShmType, Clone, Copy, Debug, PartialEq)]
/// # #[repr(C)]
/// # struct Limits { rate_per_s: u32, burst: u32 }
/// # let name = format!("doc-guard-{}", std::process::id());
/// let limits = Shm::<Limits>::options().unlink_on_drop(true)
///     .create(&name, Limits { rate_per_s: 100, burst: 10 })?;
/// {
///     let mut g = limits.lock().unwrap();
///     g.rate_per_s = 500;
///     g.burst = 50;
///     assert_eq!(limits.read().rate_per_s, 100); // readers still see the committed value
/// } // both fields are published here, together
/// assert_eq!(limits.read(), Limits { rate_per_s: 500, burst: 50 });
/// # Ok::<(), shmstore::Error>(())
/// ```
#[must_use = "if unused the lock is released immediately"]
pub struct ShmGuard<'a, T: ShmType> {
    /// The attachment whose region's lock this thread holds.
    attached: &'a Attached,
    wrote: bool,
    _type: PhantomData<fn() -> T>,
    _not_send: PhantomData<*const ()>,
}

impl<'a, T: ShmType> ShmGuard<'a, T> {
    /// # Safety
    ///
    /// The calling thread holds the lock of `attached.region`, acquired through it, and the
    /// region holds a `T` (it was opened and validated for `T`).
    #[inline]
    pub(crate) unsafe fn new(attached: &'a Attached) -> Self {
        ShmGuard {
            attached,
            wrote: false,
            _type: PhantomData,
            _not_send: PhantomData,
        }
    }
}

impl<T: ShmType> Deref for ShmGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the working copy is `size_of::<T>()` bytes aligned to at least
        // `align_of::<T>()` (the region was validated for `T`), any bytes are a valid `T`
        // (`Pod`), and while this thread holds the lock no process writes it (the protocol:
        // only the holder writes the working copy).
        unsafe { &*self.attached.region.working_copy().cast::<T>() }
    }
}

impl<T: ShmType> DerefMut for ShmGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        if !self.wrote {
            self.attached.region.begin_write();
            self.wrote = true;
        }
        // SAFETY: as in `deref`; the holder is the only writer, and `&mut self` makes this the
        // only reference in this process. Concurrent lock-free readers only ever load these
        // bytes atomically and discard what they read (the version is odd).
        unsafe { &mut *self.attached.region.working_copy().cast::<T>() }
    }
}

impl<T: ShmType> Drop for ShmGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard exists only while this thread holds the lock (see `new`), and the
        // region was validated to hold a `T`, so its payload is `size_of::<T>()` bytes.
        unsafe {
            self.attached
                .region
                .release(self.wrote, std::mem::size_of::<T>())
        };
    }
}

impl<T: ShmType + fmt::Debug> fmt::Debug for ShmGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
