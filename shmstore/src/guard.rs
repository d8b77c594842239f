//! `ShmGuard`: the typed view of a locked region.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use crate::attach::Attached;
use crate::error::Result;
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
    /// For a region of another, compatible type (README, "Changing a region's type"): `T`
    /// projected from the value when the lock was taken, and that value (the region's type),
    /// into which the guard's commit writes `T`'s fields back. `None` on the direct path,
    /// which works in the region.
    projected: Option<(Box<T>, Vec<u8>)>,
    wrote: bool,
    _type: PhantomData<fn() -> T>,
    _not_send: PhantomData<*const ()>,
}

impl<'a, T: ShmType> ShmGuard<'a, T> {
    /// # Safety
    ///
    /// The calling thread holds the lock of `attached.region`, acquired through it, and the
    /// region holds a `T` (it was opened and validated for `T`) or `attached` projects it.
    #[inline]
    pub(crate) unsafe fn new(attached: &'a Attached) -> Self {
        ShmGuard {
            attached,
            projected: attached.is_projected().then(|| attached.begin_projected()),
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
        if let Some((value, _)) = &self.projected {
            return value;
        }
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
        if let Some((value, _)) = &mut self.projected {
            self.wrote = true;
            return value;
        }
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

impl<T: ShmType> ShmGuard<'_, T> {
    /// Commits now, like dropping the guard, and says whether the value could be written.
    ///
    /// On a region of `T` itself this is always `Ok`. Through a compatible layout (README,
    /// "Changing a region's type"), a value that a field of the region's type cannot hold
    /// (a `u64` above `u32::MAX` for a region whose field is still a `u32`, a new enum
    /// variant, text longer than the region's capacity) is refused whole: nothing is
    /// committed, and the error names the field. Dropping such a guard panics instead, with
    /// the same message; call `commit` where a wider value may be written while a binary of
    /// the narrower type still shares the region.
    ///
    /// ```
    /// # use shmstore::Shm;
    /// # let name = format!("doc-commit-{}", std::process::id());
    /// let counter = Shm::<u64>::options().unlink_on_drop(true).create(&name, 1)?;
    /// let mut guard = counter.lock().unwrap();
    /// *guard += 1;
    /// guard.commit()?;
    /// assert_eq!(counter.read(), 2);
    /// # Ok::<(), shmstore::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidField`](crate::Error::InvalidField) naming the field whose value the
    /// region's type cannot hold.
    pub fn commit(self) -> Result<()> {
        let mut this = std::mem::ManuallyDrop::new(self);
        let projected = this.projected.take();
        this.finish(projected)
    }

    /// Publishes what was written (the projected value written back, if any) and unlocks.
    #[inline]
    fn finish(&mut self, projected: Option<(Box<T>, Vec<u8>)>) -> Result<()> {
        let region = &self.attached.region;
        let Some((value, mut stored)) = projected else {
            // SAFETY: the guard exists only while this thread holds the lock (see `new`), and
            // the region was validated to hold a `T`, so its payload is `size_of::<T>()` bytes.
            unsafe { region.release(self.wrote, std::mem::size_of::<T>()) };
            return Ok(());
        };
        // Nothing written, or a panic mid-write: the region was never touched, so there is
        // nothing to roll back (nor to poison, in place).
        let commit = self.wrote && !std::thread::panicking();
        let written = if commit {
            self.attached.write_back(&*value, &mut stored)
        } else {
            Ok(())
        };
        let payload_size = region.info().layout.payload_size;
        if commit && written.is_ok() {
            region.begin_write();
            // SAFETY: this thread holds the lock (see `new`) and began the write; `stored` is
            // the region's whole value.
            unsafe { region.overwrite_working_copy(&stored) };
            // SAFETY: as above; the size is the region's own payload size.
            unsafe { region.release(true, payload_size) };
        } else {
            // SAFETY: as above; nothing was written.
            unsafe { region.release(false, payload_size) };
        }
        written
    }
}

impl<T: ShmType> Drop for ShmGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        let projected = self.projected.take();
        if let Err(refused) = self.finish(projected) {
            // `Drop` has no room for the error; `commit` returns it.
            panic!("{refused} (use ShmGuard::commit to handle this as an error)");
        }
    }
}

impl<T: ShmType + fmt::Debug> fmt::Debug for ShmGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
