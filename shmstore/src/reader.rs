//! `ShmReader<T>`: a read-only handle.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use crate::attach::{
    attach_reader, follow_before_unlink, is_removed_following, read_following, read_into_following,
    read_within_following, version_following, wait_following, Attached,
};
use crate::error::Result;
use crate::follow::Chain;
use crate::layout::ShmType;
use crate::region::{Region, RegionSpec};

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
    chain: Chain<Attached>,
    /// How it was opened: how it opens the region that replaces its own after a migration.
    spec: RegionSpec,
    _type: PhantomData<fn() -> T>,
}

impl<T: ShmType> Drop for ShmReader<T> {
    fn drop(&mut self) {
        follow_before_unlink(self.attached(), self.spec.unlink_on_drop, |moved| {
            self.follow(moved)
        });
    }
}

impl<T: ShmType> ShmReader<T> {
    pub(crate) fn new(attached: Attached, spec: RegionSpec) -> Self {
        ShmReader {
            chain: Chain::new(attached.armed(&spec)),
            spec,
            _type: PhantomData,
        }
    }

    /// The attachment this reader uses now (see [`Shm`](crate::Shm)'s).
    #[inline]
    pub(crate) fn attached(&self) -> &Attached {
        self.chain.current()
    }

    /// The region this reader uses now.
    #[inline]
    pub(crate) fn region(&self) -> &Region {
        &self.attached().region
    }

    /// `moved` was migrated: attaches to the region that replaced it, as `open_reader` would.
    #[cold]
    pub(crate) fn follow(&self, moved: &Attached) -> Result<&Attached> {
        self.chain.follow(moved, || {
            attach_reader::<T>(moved.region.location(), &self.spec)
                .map(|next| next.armed(&self.spec))
        })
    }

    /// Whether this reader projects a region of another, compatible type onto `T` (see the
    /// README's "Changing a region's type"); `false` for a region of `T` itself.
    pub fn is_projected(&self) -> bool {
        self.attached().is_projected()
    }

    /// The region's name (for a file or System V region, its location as text).
    pub fn name(&self) -> &str {
        self.region().name()
    }

    /// Where the region lives.
    pub fn location(&self) -> &crate::Location {
        self.region().location()
    }

    /// Whether the location no longer refers to this handle's region (removed, perhaps with a
    /// new one created under it), as [`Shm::is_removed`](crate::Shm::is_removed).
    ///
    /// # Errors
    ///
    /// As [`Shm::is_removed`](crate::Shm::is_removed).
    pub fn is_removed(&self) -> Result<bool> {
        is_removed_following(self.attached(), |moved| self.follow(moved))
    }

    /// A consistent snapshot, as [`Shm::read`](crate::Shm::read). In an `in_place` region
    /// whose writer died mid-write, it waits until a writable handle repairs the region; use
    /// [`read_timeout`](Self::read_timeout) to bound that.
    #[inline]
    pub fn read(&self) -> T {
        read_following(self.attached(), |moved| self.follow(moved))
    }

    /// Like [`read`](Self::read), but into `out` (saves a copy for large values).
    #[inline]
    pub fn read_into(&self, out: &mut T) {
        read_into_following(self.attached(), out, |moved| self.follow(moved))
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
        read_within_following(self.attached(), timeout, |moved| self.follow(moved))
    }

    /// The last published version, counted as [`Shm::version`](crate::Shm::version) counts
    /// them: the commits since the region was created.
    pub fn version(&self) -> u64 {
        version_following(self.attached(), |moved| self.follow(moved))
    }

    /// Sleeps until a version other than `since` is published and returns it, as
    /// [`Shm::wait_for_change`](crate::Shm::wait_for_change) — woken at once if the region
    /// notifies readers, otherwise within 10 ms of the change.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`](crate::Error::Timeout) when `timeout` passes first;
    /// [`Error::Removed`](crate::Error::Removed) when the region is removed from its location
    /// (or replaced there by a region this handle does not follow) while this waits: at once
    /// when shmstore removes it (`shmstore::unlink`, `shmstore rm`, `unlink_on_drop`), within
    /// a second when anything else does (`rm /dev/shm/NAME`, `ipcrm`). A migration is not a
    /// removal: the wait goes on in the region that replaced this one, where versions continue
    /// (README, "Changing a region's type").
    pub fn wait_for_change(&self, since: u64, timeout: Option<Duration>) -> Result<u64> {
        wait_following(self.attached(), since, timeout, |moved| self.follow(moved))
    }

    /// Whether the region is poisoned (an `in_place` region whose writer died mid-write).
    pub fn is_poisoned(&self) -> bool {
        self.region().poisoned()
    }

    /// Whether the region was created in place mode.
    pub fn is_in_place(&self) -> bool {
        self.region().in_place()
    }

    /// The pid of the process that created (or last re-initialised) the region; after a
    /// migration, of the process that migrated it (it may have exited since).
    /// Numbered in that process's PID namespace: from another one (another container) it
    /// names another process or none.
    pub fn creator_pid(&self) -> u32 {
        self.region().info().creator_pid
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
