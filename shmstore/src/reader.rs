//! `ShmReader<T>`: a read-only handle.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use std::time::Instant;

use crate::error::{Error, Result};
use crate::format::{check_type, Descriptor, Projection, Refusal};
use crate::layout::ShmType;
use crate::region::{Region, RegionSpec};
use crate::snapshot::{
    read_timed_out, snapshot, snapshot_bytes_until, snapshot_to, snapshot_within,
};
use crate::wait::wait_for_change;
use crate::wait::TimedOut;

/// A read-only handle to a region: the object opened `O_RDONLY` and mapped read-only, so this
/// process cannot write it, lock it, or poison it — for consumers that must not be able to
/// (a region of mode `0o640` read by a group, a monitoring tool).
///
/// It reads snapshots, versions and waits for changes like a [`Shm`](crate::Shm). Because it
/// cannot write the header it cannot register as a waiter: it is woken at once only when the
/// region was created with [`notify_readers(true)`](crate::ShmOptions::notify_readers), and
/// otherwise re-checks the version every 10 ms while it waits.
///
/// It also reads a region whose stored type is another, compatible version of `T` (README,
/// "Changing a region's type"): each read projects one consistent snapshot of the stored
/// value onto `T` — shared fields copied, widened ones converted, fields the region lacks
/// zero ([`is_projected`](Self::is_projected)).
///
/// Mapping read-only does not protect it from a peer with write access that shrinks the
/// object: a later access past the new end raises SIGBUS here as in any mapped handle (the
/// README's threat model; `Inspector` reads with `pread` and is immune).
///
/// ```
/// # use shmstore::Shm;
/// # let name = format!("doc-reader-{}", std::process::id());
/// let writer = Shm::<u64>::options().mode(0o640).unlink_on_drop(true).create(&name, 1)?;
/// let reader = Shm::<u64>::open_reader(&name)?;
/// *writer.lock().unwrap() = 2;
/// assert_eq!(reader.read(), 2);
/// assert_eq!(reader.version(), writer.version());
/// # Ok::<(), shmstore::Error>(())
/// ```
pub struct ShmReader<T: ShmType> {
    region: Region,
    /// `None` for a region of `T` itself (the direct path); the plan that projects the stored
    /// value onto a `T` for a region of a compatible type (README, "Changing a region's type").
    projection: Option<Box<Projection>>,
    _type: PhantomData<fn() -> T>,
}

impl<T: ShmType> ShmReader<T> {
    pub(crate) fn from_region(region: Region) -> Self {
        ShmReader {
            region,
            projection: None,
            _type: PhantomData,
        }
    }

    /// A reader of `region` (opened without comparing its type) through `T`: the direct path
    /// when the region holds `T`, a projection when its stored type is compatible with `T`,
    /// and the `LayoutMismatch` of `Shm::open` otherwise.
    pub(crate) fn through_compatible_layout(region: Region, spec: &RegionSpec) -> Result<Self> {
        let name = region.name();
        if region.info().queue.is_some() {
            return Err(Error::WrongKind {
                name: name.to_string(),
                expected: "a single value",
                found: "a queue",
            });
        }
        let descriptor = region.descriptor_copy();
        let mismatch = match check_type(name, region.info(), || descriptor.clone(), spec.layout) {
            Ok(()) => return Ok(ShmReader::from_region(region)),
            Err(mismatch) => mismatch,
        };
        let stored = Descriptor::decode(&descriptor, region.info().format_version)
            .map_err(|why| Error::corrupt(name, why))?;
        let plan = Projection::plan(
            &stored,
            region.info().layout.payload_size,
            &Descriptor::of(spec.layout),
            std::mem::size_of::<T>(),
        )
        .map_err(|refusal| match refusal {
            Refusal::Incompatible(_) => mismatch,
            // The stored table does not fit the stored value: a forged region.
            Refusal::Forged(why) => Error::corrupt(name, why),
        })?;
        Ok(ShmReader {
            region,
            projection: Some(Box::new(plan)),
            _type: PhantomData,
        })
    }

    /// Whether this reader projects a region of another, compatible type onto `T` (see the
    /// README's "Changing a region's type"); `false` for a region of `T` itself.
    pub fn is_projected(&self) -> bool {
        self.projection.is_some()
    }

    /// A `T` projected from one consistent snapshot of the stored value, copied into a
    /// per-thread buffer (no allocation once it has grown to the stored size).
    #[cold]
    fn read_projected(
        &self,
        projection: &Projection,
        deadline: Option<Instant>,
    ) -> Result<T, TimedOut> {
        thread_local! {
            static STORED: std::cell::RefCell<Vec<u8>> =
                const { std::cell::RefCell::new(Vec::new()) };
        }
        let project = |stored: &mut Vec<u8>| {
            snapshot_bytes_until(&self.region, stored, deadline)?;
            let mut out = T::zeroed();
            projection.apply(stored, bytemuck::bytes_of_mut(&mut out));
            Ok(out)
        };
        // The buffer is only borrowed here, around a copy that calls nothing else: never
        // borrowed twice; a fresh buffer all the same if it were (or during thread exit).
        STORED
            .try_with(|buffer| match buffer.try_borrow_mut() {
                Ok(mut stored) => project(&mut stored),
                Err(_) => project(&mut Vec::new()),
            })
            .unwrap_or_else(|_| project(&mut Vec::new()))
    }

    /// The region's name (for a file or System V region, its location as text).
    pub fn name(&self) -> &str {
        self.region.name()
    }

    /// Where the region lives.
    pub fn location(&self) -> &crate::Location {
        self.region.location()
    }

    /// Whether the location no longer refers to this handle's region (removed, perhaps with a
    /// new one created under it), as [`Shm::is_removed`](crate::Shm::is_removed).
    ///
    /// # Errors
    ///
    /// As [`Shm::is_removed`](crate::Shm::is_removed).
    pub fn is_removed(&self) -> Result<bool> {
        self.region.is_removed()
    }

    /// A consistent snapshot, as [`Shm::read`](crate::Shm::read). In an `in_place` region
    /// whose writer died mid-write, it waits until a writable handle repairs the region; use
    /// [`read_timeout`](Self::read_timeout) to bound that.
    #[inline]
    pub fn read(&self) -> T {
        match &self.projection {
            None => snapshot(&self.region),
            Some(projection) => match self.read_projected(projection, None) {
                Ok(value) => value,
                Err(TimedOut) => unreachable!("a read without a deadline cannot time out"),
            },
        }
    }

    /// Like [`read`](Self::read), but into `out` (saves a copy for large values).
    #[inline]
    pub fn read_into(&self, out: &mut T) {
        match &self.projection {
            None => snapshot_to(&self.region, out),
            Some(_) => *out = self.read(),
        }
    }

    /// A consistent snapshot, waiting at most `timeout` for a write in progress (or a dead
    /// `in_place` writer) to be resolved. Under writers that commit a large value back to back,
    /// the read asks them to hold the value still (see the README's "Readers never starve")
    /// and succeeds within a few copies' time.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`](crate::Error::Timeout) when the timeout passes first.
    pub fn read_timeout(&self, timeout: Duration) -> Result<T> {
        match &self.projection {
            None => snapshot_within(&self.region, timeout),
            Some(projection) => self
                .read_projected(projection, Instant::now().checked_add(timeout))
                .map_err(|TimedOut| read_timed_out(self.region.name(), timeout)),
        }
    }

    /// The last published version, counted as [`Shm::version`](crate::Shm::version) counts
    /// them: the commits since the region was created.
    pub fn version(&self) -> u64 {
        self.region.published_version()
    }

    /// Sleeps until a version other than `since` is published and returns it, as
    /// [`Shm::wait_for_change`](crate::Shm::wait_for_change) — woken at once if the region
    /// notifies readers, otherwise within 10 ms of the change.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`](crate::Error::Timeout) when `timeout` passes first;
    /// [`Error::Removed`](crate::Error::Removed) when the region is removed from its location
    /// (or replaced there) while this waits: at once when shmstore removes it
    /// (`shmstore::unlink`, `shmstore rm`, `unlink_on_drop`), within a second when anything
    /// else does (`rm /dev/shm/NAME`, `ipcrm`).
    pub fn wait_for_change(&self, since: u64, timeout: Option<Duration>) -> Result<u64> {
        wait_for_change(&self.region, since, timeout)
    }

    /// Whether the region is poisoned (an `in_place` region whose writer died mid-write).
    pub fn is_poisoned(&self) -> bool {
        self.region.poisoned()
    }

    /// Whether the region was created in place mode.
    pub fn is_in_place(&self) -> bool {
        self.region.in_place()
    }

    /// The pid of the process that created (or last re-initialised) the region.
    /// Numbered in that process's PID namespace: from another one (another container) it
    /// names another process or none.
    pub fn creator_pid(&self) -> u32 {
        self.region.info().creator_pid
    }
}

impl<T: ShmType + fmt::Debug> fmt::Debug for ShmReader<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmReader")
            .field("name", &self.name())
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}
