//! `ShmGuard`: the typed view of a locked region.

use std::any::Any;
use std::cell::UnsafeCell;
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
    /// The attachment whose region's lock this thread holds. Through a compatible layout
    /// (README, "Changing a region's type") the guard's `T` lives in its [`GuardScratch`]; the
    /// guard itself stays two words, as on the direct path.
    attached: &'a Attached,
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
        if attached.is_projected() {
            // SAFETY: the caller's contract.
            unsafe { begin_projected::<T>(attached) };
        }
        ShmGuard {
            attached,
            wrote: false,
            _type: PhantomData,
            _not_send: PhantomData,
        }
    }

    /// The projected `T` of a guard through a compatible layout.
    #[cold]
    fn projected(&self) -> &Projected<T> {
        // SAFETY: this thread holds the lock of the attachment's region for as long as the
        // guard lives, and `new` stored a `Projected<T>` there.
        match unsafe { self.attached.scratch.get::<Projected<T>>() } {
            Some(projected) => projected,
            None => unreachable!("a projected guard's value is in its attachment's scratch"),
        }
    }

    /// [`projected`](Self::projected), to write.
    #[cold]
    fn projected_mut(&mut self) -> &mut Projected<T> {
        // SAFETY: as in `projected`; `&mut self` makes this the only reference.
        match unsafe { self.attached.scratch.get_mut::<Projected<T>>() } {
            Some(projected) => projected,
            None => unreachable!("a projected guard's value is in its attachment's scratch"),
        }
    }
}

/// Projects the committed value into `attached`'s scratch, for a guard through a compatible
/// layout.
///
/// # Safety
///
/// This thread holds the lock of `attached.region`, acquired through it.
#[cold]
unsafe fn begin_projected<T: ShmType>(attached: &Attached) {
    let (value, stored) = attached.begin_projected::<T>();
    // SAFETY: the caller holds the lock, so no other guard uses the scratch.
    unsafe { attached.scratch.put(Projected { value, stored }) };
}

impl<T: ShmType> Deref for ShmGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        if self.attached.is_projected() {
            return &self.projected().value;
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
        if self.attached.is_projected() {
            // Through a compatible layout the region is written only at the commit.
            self.wrote = true;
            return &mut self.projected_mut().value;
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
    /// the same message; call `commit` where a wider value may be written while the region
    /// keeps the narrower type.
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
        if !this.attached.is_projected() {
            this.release_direct();
            return Ok(());
        }
        this.finish_projected()
    }

    /// Publishes what was written in the region and unlocks: the direct path.
    #[inline]
    fn release_direct(&self) {
        // SAFETY: the guard exists only while this thread holds the lock (see `new`), and the
        // region was validated to hold a `T`, so its payload is `size_of::<T>()` bytes.
        unsafe {
            self.attached
                .region
                .release(self.wrote, std::mem::size_of::<T>())
        };
    }

    /// Writes the projected value back (if it was written), publishes it and unlocks.
    #[cold]
    fn finish_projected(&mut self) -> Result<()> {
        let attached = self.attached;
        let region = &attached.region;
        // SAFETY: this thread still holds the lock (see `new`).
        let projected = unsafe { attached.scratch.take::<Projected<T>>() };
        // Nothing written, or a panic mid-write: the region was never touched, so there is
        // nothing to roll back (nor to poison, in place).
        let commit = self.wrote && !std::thread::panicking();
        let (written, stored) = match projected {
            Some(Projected { value, mut stored }) if commit => {
                let written = attached.write_back(&*value, &mut stored);
                (written, stored)
            }
            _ => (Ok(()), Vec::new()),
        };
        let payload_size = region.info().layout.payload_size;
        if commit && written.is_ok() && stored.len() == payload_size {
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
        if !self.attached.is_projected() {
            return self.release_direct();
        }
        if let Err(refused) = self.finish_projected() {
            // `Drop` has no room for the error; `commit` returns it.
            panic!("{refused} (use ShmGuard::commit to handle this as an error)");
        }
    }
}

/// A projected guard's value, and the committed value of the region's type it came from.
struct Projected<T> {
    value: Box<T>,
    stored: Vec<u8>,
}

/// Where a guard through a compatible layout keeps its `T` (a [`Projected`]) while it lives:
/// one per attachment of a writable handle, used only by the thread that holds the lock of
/// the attachment's region. The region's robust mutex is what orders one holder's accesses
/// before the next's, so the cell needs no lock of its own, and the guard stays two words.
pub(crate) struct GuardScratch {
    cell: UnsafeCell<Option<Box<dyn Any>>>,
}

// SAFETY: every access goes through the `unsafe fn`s below, whose callers hold the lock of the
// attachment's region: one thread at a time, with the mutex's acquire and release ordering
// each holder's accesses after the previous holder's. What it holds is a `Projected<T>` of a
// `T: ShmType`, plain bytes (`Pod`) that any thread may own and drop.
unsafe impl Send for GuardScratch {}
// SAFETY: as for `Send`: shared references only reach the cell under the region's lock.
unsafe impl Sync for GuardScratch {}
// A panic while a guard uses the scratch leaves at most a `Projected` that the guard's drop
// takes, or the next guard replaces: nothing a caught panic could observe half-written.
impl std::panic::RefUnwindSafe for GuardScratch {}
impl std::panic::UnwindSafe for GuardScratch {}

impl GuardScratch {
    /// Empty.
    pub(crate) fn new() -> Self {
        GuardScratch {
            cell: UnsafeCell::new(None),
        }
    }

    /// Keeps `value` (replacing one a forgotten guard left).
    ///
    /// # Safety
    ///
    /// This thread holds the lock of the attachment's region, and no reference returned by
    /// `get` or `get_mut` is alive.
    unsafe fn put<V: Any>(&self, value: V) {
        // SAFETY: the caller's contract: exclusive access.
        unsafe { *self.cell.get() = Some(Box::new(value)) };
    }

    /// What `put` kept, if it is a `V`.
    ///
    /// # Safety
    ///
    /// This thread holds the lock of the attachment's region for as long as the reference
    /// lives, and no `get_mut` reference is alive.
    unsafe fn get<V: Any>(&self) -> Option<&V> {
        // SAFETY: the caller's contract: no writer meanwhile.
        unsafe { (*self.cell.get()).as_ref()?.downcast_ref() }
    }

    /// What `put` kept, if it is a `V`, to write.
    ///
    /// # Safety
    ///
    /// As `get`, and no other reference into the scratch is alive.
    // Exclusive access comes from the region's lock (the caller's contract), not from `&mut`.
    #[allow(clippy::mut_from_ref)]
    unsafe fn get_mut<V: Any>(&self) -> Option<&mut V> {
        // SAFETY: the caller's contract: exclusive access.
        unsafe { (*self.cell.get()).as_mut()?.downcast_mut() }
    }

    /// Takes what `put` kept, if it is a `V`.
    ///
    /// # Safety
    ///
    /// As `get_mut`.
    unsafe fn take<V: Any>(&self) -> Option<V> {
        // SAFETY: the caller's contract: exclusive access.
        let kept = unsafe { (*self.cell.get()).take()? };
        kept.downcast().ok().map(|value| *value)
    }
}

impl<T: ShmType + fmt::Debug> fmt::Debug for ShmGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
