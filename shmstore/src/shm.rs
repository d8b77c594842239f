//! `Shm<T>`: a named value in shared memory, and its options builder.

use std::fmt;
use std::marker::PhantomData;
use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};
use std::time::Duration;

use crate::attach::{
    attach_reader, attach_writer, follow_before_unlink, is_removed_following, read_following,
    read_into_following, read_within_following, successor_gone, version_following, wait_following,
    Attached,
};
use crate::error::{Error, Result};
use crate::follow::Chain;
use crate::format::MAX_PAYLOAD_ALIGN;
use crate::guard::ShmGuard;
use crate::layout::ShmType;
use crate::location::Location;
use crate::lock::{NotLocked, Wait};
use crate::options::{common_setters, CommonOptions};
use crate::reader::ShmReader;
use crate::reboot;
use crate::region::{Init, Region, RegionSpec};
use crate::sys::mutex::LockFailure;

/// A named value of type `T` in shared memory: `std::sync::Mutex<T>` across processes.
///
/// Any process that knows the name can open it, [`lock`](Self::lock) it, [`read`](Self::read) a
/// consistent snapshot without locking, and ask for its [`version`](Self::version). Updates are
/// all-or-nothing even when the writer is killed halfway (see [`ShmGuard`]), and opening checks
/// that both processes agree on `T`'s layout ([`Error::LayoutMismatch`](crate::Error)).
///
/// ```
/// use shmstore::{Shm, ShmType};
///
/// #[derive(ShmType, Clone, Copy, Debug, PartialEq)]
/// #[repr(C)]
/// struct Limits { version: u64, rate_per_s: u32, burst: u32, name: [u8; 32] }
///
/// # let name = format!("doc-shm-{}", std::process::id());
/// let limits = Shm::<Limits>::open_or_create(&name, || Limits {
///     version: 1, rate_per_s: 100, burst: 10, name: *b"gateway                         ",
/// })?;
/// let seen = limits.version();
/// {
///     let mut g = limits.lock().unwrap(); // robust, process-shared lock
///     g.rate_per_s = 500;                  // if this process dies here, the write is rolled back
///     g.burst = 50;
/// }                                        // dropping the guard commits both fields at once
/// let now: Limits = limits.read();         // consistent snapshot, never half a write
/// assert_eq!((now.rate_per_s, now.burst), (500, 50));
/// assert!(limits.version() > seen);
/// # shmstore::unlink(&name)?;
/// # Ok::<(), shmstore::Error>(())
/// ```
///
/// Another release of the program may use another, compatible version of `T` on the same
/// region (README, "Changing a region's type"): `open` of such a region reads and writes
/// through the region's type ([`is_projected`](Self::is_projected)), and a writer whose `T`
/// has fields the region lacks migrates it to a type that holds both. Every handle of the old
/// region, in every process, follows on its next operation (lock, read, version, wait).
///
/// A handle is `Send + Sync`: share it between threads with an `Arc`. Dropping it unmaps the
/// region; the name stays (other processes may use it) unless
/// [`unlink_on_drop`](ShmOptions::unlink_on_drop) was set or [`unlink`](crate::unlink) is called.
pub struct Shm<T: ShmType> {
    chain: Chain<Attached>,
    /// How it was opened: how it opens the region that replaces its own after a migration.
    spec: RegionSpec,
    _type: PhantomData<fn() -> T>,
}

impl<T: ShmType> Drop for Shm<T> {
    fn drop(&mut self) {
        follow_before_unlink(self.attached(), self.spec.unlink_on_drop, |moved| {
            self.follow(moved)
        });
    }
}

impl<T: ShmType> Shm<T> {
    /// Creates a new region holding `value` at `location`: a name (`&str`, `String`), a file
    /// (`&Path`, `PathBuf`) or a System V key ([`Location::sysv`]); see
    /// [`ShmOptions`](ShmOptions#where-the-region-lives). [`Error::AlreadyExists`](crate::Error)
    /// if the name is taken. The region is complete before its name appears. Uses the default
    /// [`options`](Self::options). For a value too large for the stack, use
    /// [`ShmOptions::create_with`].
    ///
    /// # Errors
    ///
    /// `InvalidName` or `InvalidLocation`, `AlreadyExists`, `PermissionDenied`, `Io`.
    pub fn create(location: impl Into<Location>, value: T) -> Result<Self> {
        Self::options().create(location, value)
    }

    /// Opens the existing region at `location` (a name, a file or a System V key, as for
    /// [`create`](Self::create)), checking that it holds a `T` or a compatible version of it
    /// (README, "Changing a region's type"). A region whose type lacks fields of `T` is
    /// migrated first to a layout that holds them; every handle of it, in every process,
    /// follows.
    ///
    /// # Errors
    ///
    /// `InvalidName` or `InvalidLocation`; `NotFound` (nothing there yet: `open` does not wait
    /// for a region to appear, and `open_timeout` bounds only the wait for a creator still
    /// initialising one; a process that may start before the creator retries on `NotFound`,
    /// as the README's "Starting order" shows); `LayoutMismatch` (an incompatible type: the
    /// message lists the differing fields); `Corrupt` (not a region, or truncated); `Incomplete`
    /// (its creator died before initialising it); `Timeout` (its creator is still initialising
    /// it after `open_timeout`); `PermissionDenied` (mode, or another owner; a migration by a
    /// user who does not own the region); `NotMigratable` (`T` adds fields to a System V
    /// segment, which is never migrated); `Io` (a migration without room: `fallocate`).
    pub fn open(location: impl Into<Location>) -> Result<Self> {
        Self::options().open(location)
    }

    /// Opens the region at `location` (a name, a file or a System V key, as for
    /// [`create`](Self::create)), or creates it with the value `init` returns. However many
    /// processes race, exactly one runs `init` and the others open what it made; an object left
    /// behind by a creator that died is initialised again.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open) and [`create`](Self::create), except `NotFound`, `AlreadyExists`
    /// and `Incomplete`.
    pub fn open_or_create(location: impl Into<Location>, init: impl FnOnce() -> T) -> Result<Self> {
        Self::options().open_or_create(location, init)
    }

    /// A builder for the less common settings: mode, timeouts, ownership, cleanup and the
    /// in-place mode.
    pub fn options() -> ShmOptions<T> {
        ShmOptions::new()
    }

    fn new(attached: Attached, spec: RegionSpec) -> Self {
        Shm {
            chain: Chain::new(attached.armed(&spec)),
            spec,
            _type: PhantomData,
        }
    }

    /// The attachment this handle uses now: the region its location held when it opened, or
    /// the last region it followed there after a migration.
    #[inline]
    pub(crate) fn attached(&self) -> &Attached {
        self.chain.current()
    }

    /// The region this handle uses now.
    #[inline]
    pub(crate) fn region(&self) -> &Region {
        &self.attached().region
    }

    /// `moved` (this handle's attachment) was migrated: attaches to the region that replaced
    /// it under the location, as `open` would, and returns that attachment.
    #[cold]
    pub(crate) fn follow(&self, moved: &Attached) -> Result<&Attached> {
        self.chain.follow(moved, || {
            attach_writer::<T>(moved.region.location(), &self.spec)
                .map(|next| next.armed(&self.spec))
        })
    }

    /// The region's name; for a file or System V region, its [`location`](Self::location) as
    /// text (`/path/to/file`, `sysv:0x…`).
    pub fn name(&self) -> &str {
        self.region().name()
    }

    /// Where the region lives: a POSIX name, a file or a System V key.
    pub fn location(&self) -> &Location {
        self.region().location()
    }

    /// Whether this handle's [`location`](Self::location) no longer refers to its region:
    /// removed ([`unlink`](crate::unlink), `unlink_on_drop`, `shmstore rm` or `gc`), perhaps
    /// with a new region created under it since. The handle keeps working on the region it
    /// opened, where nothing changes any more once its writers are gone: a consumer that sees
    /// [`wait_for_change`](Self::wait_for_change) time out asks this to learn whether the
    /// writer left, and opens the location again if it wants the new region.
    ///
    /// ```
    /// # use shmstore::Shm;
    /// # let name = format!("doc-removed-{}", std::process::id());
    /// let config = Shm::<u64>::create(&name, 1)?;
    /// let follower = Shm::<u64>::open_reader(&name)?;
    /// assert!(!follower.is_removed()?);
    /// shmstore::unlink(&name)?; // the writer leaves
    /// assert!(follower.is_removed()?);
    /// assert_eq!(follower.read(), 1); // still readable
    /// // A new region under the name is another region:
    /// let _next = Shm::<u64>::options().unlink_on_drop(true).create(&name, 2)?;
    /// assert!(config.is_removed()? && follower.is_removed()?);
    /// # Ok::<(), shmstore::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `Io` when the location cannot be looked at (`fstatat`, `shmget`), with the reason.
    pub fn is_removed(&self) -> Result<bool> {
        is_removed_following(self.attached(), |moved| self.follow(moved))
    }

    /// For a file region, writes the value and header to the file and waits for the disk
    /// (`msync(MS_SYNC)`): what was committed before the call survives a power loss or a kernel
    /// crash. Without it the kernel writes dirty pages back on its own schedule; a process crash
    /// loses nothing either way (the page cache is shared). Does nothing for POSIX and System
    /// V regions, which live in memory only.
    ///
    /// The kernel may write pages back at any moment, so after a power loss a file region that
    /// was written after its last `flush` can hold any mix of older and newer pages: call
    /// `flush` after the commits that must be durable, and treat the file as a cache, not a
    /// database, if every write must be.
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) if the file system reports a write error.
    pub fn flush(&self) -> Result<()> {
        self.region().flush()
    }

    /// Whether this handle works through a compatible layout (README, "Changing a region's
    /// type"): the region holds another version of `T`, and reads project its value onto `T`
    /// while commits write `T`'s fields back into it. `false` for a region of `T` itself,
    /// the direct path. It can change when the region is migrated.
    pub fn is_projected(&self) -> bool {
        self.attached().is_projected()
    }

    /// Whether the region keeps one copy and poisons on a dead writer (created with
    /// [`in_place(true)`](ShmOptions::in_place)) rather than rolling back.
    pub fn is_in_place(&self) -> bool {
        self.region().in_place()
    }

    /// Blocks until this thread holds the region's lock, across every process.
    ///
    /// If the previous holder died (or panicked) in the middle of a write, its write is rolled
    /// back first and this returns `Ok` — in the default mode a region is never poisoned. In an
    /// [`in_place`](ShmOptions::in_place) region the dead holder's partial write stays, the
    /// region is poisoned for every process, and this returns `Err(PoisonError)` carrying the
    /// guard until [`clear_poison`](Self::clear_poison).
    ///
    /// # Panics
    ///
    /// If this thread already holds the lock (it would deadlock), if the mutex in the header
    /// was overwritten with garbage by another process, or if the region was migrated and the
    /// region that replaced it exists but cannot be opened (another user's, an I/O error: the
    /// message says why; a successor removed meanwhile is not followed, as for
    /// [`is_removed`](Self::is_removed)). Through a compatible layout, dropping a guard whose
    /// value the region's type cannot hold panics too: see [`ShmGuard::commit`].
    #[inline]
    pub fn lock(&self) -> LockResult<ShmGuard<'_, T>> {
        let attached = self.attached();
        match attached.region.acquire(Wait::Forever) {
            Ok(poisoned) if !attached.region.has_moved() => self.guard(attached, poisoned),
            // SAFETY: `acquire` succeeded through this attachment's region.
            Ok(_) => match unsafe { self.acquire_after_move(attached, Wait::Forever) } {
                Ok((attached, poisoned)) => self.guard(attached, poisoned),
                Err(not_locked) => self.lock_failed(not_locked),
            },
            Err(failure) => self.lock_failed(attached.region.not_locked(failure, Wait::Forever)),
        }
    }

    /// Takes the lock if no thread of any process holds it; `Err(WouldBlock)` otherwise
    /// (including when this thread holds it).
    ///
    /// # Panics
    ///
    /// If another process overwrote the mutex in the region's header with garbage (the lock
    /// is then unusable; remove the region and create it again).
    #[inline]
    pub fn try_lock(&self) -> TryLockResult<ShmGuard<'_, T>> {
        self.try_acquire(Wait::No)
    }

    /// Like [`lock`](Self::lock), but gives up with `Err(WouldBlock)` after `timeout` on the
    /// monotonic clock.
    ///
    /// # Panics
    ///
    /// As [`lock`](Self::lock): from the thread that holds the lock, or on a mutex another
    /// process overwrote.
    pub fn lock_timeout(&self, timeout: Duration) -> TryLockResult<ShmGuard<'_, T>> {
        self.try_acquire(Wait::For(timeout))
    }

    #[inline]
    fn try_acquire(&self, wait: Wait) -> TryLockResult<ShmGuard<'_, T>> {
        let attached = self.attached();
        let acquired = match attached.region.acquire(wait) {
            Ok(poisoned) if !attached.region.has_moved() => Ok((attached, poisoned)),
            // SAFETY: `acquire` succeeded through this attachment's region.
            Ok(_) => unsafe { self.acquire_after_move(attached, wait) },
            Err(failure) => Err(attached.region.not_locked(failure, wait)),
        };
        match acquired {
            Ok((attached, poisoned)) => self
                .guard(attached, poisoned)
                .map_err(TryLockError::Poisoned),
            // `try_lock` from the holding thread is "not now", as std's is (`NotLocked::Busy`);
            // a blocking wait there would deadlock, and panics below.
            Err(NotLocked::Busy) => Err(TryLockError::WouldBlock),
            Err(other) => self.lock_failed(other),
        }
    }

    /// The lock of `moved` was taken and the region found migrated: takes the lock of the
    /// region that replaced it (following each migration), or of `moved` itself when there is
    /// nothing to follow.
    ///
    /// # Safety
    ///
    /// This thread holds `moved`'s lock, acquired through `moved.region`, and wrote nothing.
    #[cold]
    unsafe fn acquire_after_move<'a>(
        &'a self,
        moved: &'a Attached,
        wait: Wait,
    ) -> std::result::Result<(&'a Attached, bool), NotLocked> {
        // SAFETY: the caller's contract.
        let Some(mut attached) = (unsafe { self.unlock_and_follow(moved) }) else {
            // Nothing to follow: the region is used as it is, as a removed one would be.
            return match moved.region.acquire(wait) {
                Ok(poisoned) => Ok((moved, poisoned)),
                Err(failure) => Err(moved.region.not_locked(failure, wait)),
            };
        };
        loop {
            match attached.region.acquire(wait) {
                Ok(poisoned) if !attached.region.has_moved() => return Ok((attached, poisoned)),
                // SAFETY: `acquire` succeeded through this attachment's region.
                Ok(_) => match unsafe { self.unlock_and_follow(attached) } {
                    Some(next) => attached = next,
                    None => {
                        return match attached.region.acquire(wait) {
                            Ok(poisoned) => Ok((attached, poisoned)),
                            Err(failure) => Err(attached.region.not_locked(failure, wait)),
                        }
                    }
                },
                Err(failure) => return Err(attached.region.not_locked(failure, wait)),
            }
        }
    }

    /// The lock of `moved` was taken, and the region found migrated: nothing may be written
    /// there any more (its successor holds the value). Unlocks it and follows; `None` when
    /// there is nothing to follow (the region that replaced it was removed in turn, or the
    /// name holds another type now): the handle then keeps working on its own region, as a
    /// handle of a removed region does.
    ///
    /// # Safety
    ///
    /// This thread holds `moved`'s lock, acquired through `moved.region`, and wrote nothing.
    #[cold]
    unsafe fn unlock_and_follow(&self, moved: &Attached) -> Option<&Attached> {
        // SAFETY: the caller's contract; nothing was written, so nothing is published.
        unsafe {
            moved
                .region
                .release(false, moved.region.info().layout.payload_size)
        };
        match self.follow(moved) {
            Ok(next) => Some(next),
            Err(error) if successor_gone(&error) => None,
            // `lock`'s result has no room for an error (see `lock_failed`).
            Err(error) => panic!(
                "region `{}` was migrated to a wider type and the region that replaced it \
                 cannot be opened: {error}",
                moved.region.name()
            ),
        }
    }

    #[inline]
    fn guard<'a>(&'a self, attached: &'a Attached, poisoned: bool) -> LockResult<ShmGuard<'a, T>> {
        // SAFETY: `acquire` succeeded, so this thread holds the lock through this region.
        let guard = unsafe { ShmGuard::new(attached) };
        if poisoned {
            Err(PoisonError::new(guard))
        } else {
            Ok(guard)
        }
    }

    /// A lock that cannot be taken: `lock`'s result is std's, which has no room for an error,
    /// so the error the lock protocol reports (the one a queue returns) becomes the panic.
    #[cold]
    fn lock_failed(&self, not_locked: NotLocked) -> ! {
        match not_locked {
            NotLocked::HeldByThisThread => panic!(
                "lock() on region `{}` from the thread that already holds its lock would deadlock",
                self.name()
            ),
            NotLocked::Busy => unreachable!("a wait without a deadline is never busy"),
            NotLocked::Broken(error) => panic!("{error}"),
        }
    }

    /// Whether the region is poisoned: an `in_place` region whose writer died or panicked
    /// mid-write. Visible to every process until [`clear_poison`](Self::clear_poison). Always
    /// `false` in the default mode, which rolls such writes back instead.
    pub fn is_poisoned(&self) -> bool {
        self.region().poisoned()
    }

    /// Clears the poison flag for every process, after the value was checked or repaired.
    pub fn clear_poison(&self) {
        let region = self.region();
        if region.in_place() {
            region
                .header()
                .poisoned
                .store(0, std::sync::atomic::Ordering::Release);
        }
    }

    /// A consistent snapshot of the value, without taking the lock: never half of a write.
    ///
    /// In the default mode a reader never waits for a writer, however long the writer holds
    /// the lock: it reads the last committed value. In an `in_place` region a reader that
    /// meets a write in progress retries, then waits for it (recovering a dead writer itself).
    ///
    /// # Panics
    ///
    /// In an `in_place` region, if this thread holds a guard that has written (the read would
    /// wait for itself). Read through the guard instead.
    #[inline]
    pub fn read(&self) -> T {
        read_following(self.attached(), |moved| self.follow(moved))
    }

    /// Like [`read`](Self::read), but into `out`: for large values, this saves the copy a
    /// return by value may cost.
    ///
    /// ```
    /// # use shmstore::Shm;
    /// # let name = format!("doc-read-into-{}", std::process::id());
    /// let table = Shm::<[u64; 512]>::options().unlink_on_drop(true).create(&name, [7; 512])?;
    /// let mut mine = [0u64; 512];
    /// table.read_into(&mut mine);
    /// assert_eq!(mine, [7; 512]);
    /// # Ok::<(), shmstore::Error>(())
    /// ```
    ///
    /// # Panics
    ///
    /// As [`read`](Self::read).
    #[inline]
    pub fn read_into(&self, out: &mut T) {
        read_into_following(self.attached(), out, |moved| self.follow(moved))
    }

    /// Like [`read`](Self::read), but waits at most `timeout` for a consistent value: for an
    /// `in_place` region, where a reader meeting a write in progress waits for the writer (one
    /// that was stopped, or is slow, holds it up for as long as it writes).
    ///
    /// In the default mode a read never waits for a writer, and this returns the committed
    /// value as `read` does; the timeout only bounds the retries against writers that commit
    /// faster than the value can be copied (rare, and helped along, see the README's
    /// "Guarantees").
    ///
    /// ```
    /// # use shmstore::Shm;
    /// # use std::time::Duration;
    /// # let name = format!("doc-read-timeout-{}", std::process::id());
    /// let table = Shm::<[u32; 64]>::options()
    ///     .in_place(true)
    ///     .unlink_on_drop(true)
    ///     .create(&name, [1; 64])?;
    /// assert_eq!(table.read_timeout(Duration::from_millis(100))?, [1; 64]);
    /// # Ok::<(), shmstore::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`](crate::Error::Timeout) when `timeout` passes first.
    ///
    /// # Panics
    ///
    /// As [`read`](Self::read).
    pub fn read_timeout(&self, timeout: Duration) -> Result<T> {
        read_within_following(self.attached(), timeout, |moved| self.follow(moved))
    }

    /// Sleeps until a version other than `since` is published, and returns it.
    ///
    /// It spins for a few microseconds first, then sleeps on a futex in the region: no
    /// polling. One publish wakes every waiter in every process. Pass the last version you
    /// handled (from [`version`](Self::version) or a previous call); if the region already moved
    /// past it, this returns at once, so no commit is missed between two calls. It returns the
    /// version it saw, counted as [`version`](Self::version) counts: one more than `since`
    /// when a single commit came, more when several were published before it looked (the
    /// value then holds the last). `None` waits forever.
    ///
    /// ```
    /// # use shmstore::Shm;
    /// # use std::time::Duration;
    /// # let name = format!("doc-wait-{}", std::process::id());
    /// let config = Shm::<[u32; 4]>::options().unlink_on_drop(true).create(&name, [0; 4])?;
    /// let seen = config.version();
    /// std::thread::scope(|s| {
    ///     s.spawn(|| config.lock().unwrap()[0] = 42);
    ///     let now = config.wait_for_change(seen, Some(Duration::from_secs(5)))?;
    ///     assert_eq!(now, seen + 1); // one commit, one version
    ///     assert_eq!(config.read()[0], 42);
    ///     Ok::<(), shmstore::Error>(())
    /// })?;
    /// // Nothing changes now:
    /// let last = config.version();
    /// let waited = config.wait_for_change(last, Some(Duration::from_millis(10)));
    /// assert!(matches!(waited, Err(shmstore::Error::Timeout { .. })));
    /// # Ok::<(), shmstore::Error>(())
    /// ```
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

    /// Opens a read-only handle to the existing region at `location` (a name, a file or a
    /// System V key, as for [`create`](Self::create)): see [`ShmReader`]. Unlike
    /// [`open`](Self::open), it also opens a region whose stored type differs from `T` but is
    /// compatible with it (README, "Changing a region's type"): its reads then project the
    /// stored value onto `T` ([`ShmReader::is_projected`]).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open); `LayoutMismatch` only for a stored type incompatible with `T`
    /// (or with no field in common).
    pub fn open_reader(location: impl Into<Location>) -> Result<ShmReader<T>> {
        Self::options().open_reader(location)
    }

    /// The last published version: the number of commits since the region was created. A
    /// region never written since its creation is at version 0; each commit that wrote
    /// through a guard adds exactly one (a guard that wrote nothing publishes nothing), so
    /// `wait_for_change` returning 7 after 5 means exactly two commits came in between and
    /// the value you read is the second's. A write rolled back (its holder died or panicked
    /// mid-write) or poisoned (`in_place`) counts as one too: it publishes the value it left.
    /// A write under way does not count until it is published. The same count in every
    /// process and through every handle: [`ShmReader::version`](crate::ShmReader::version),
    /// [`Inspector::version`](crate::inspect::Inspector::version),
    /// `shmstore inspect`/`watch`/`list`.
    ///
    /// (The region's raw version word steps by two per commit, odd while a write is under way,
    /// as FORMAT.md describes; this is half of it.)
    #[inline]
    pub fn version(&self) -> u64 {
        version_following(self.attached(), |moved| self.follow(moved))
    }

    /// The pid of the process that created (or last re-initialised) the region; after a
    /// migration, of the process that migrated it (it may have exited since).
    /// Numbered in that process's PID namespace: from another one (another container) it
    /// names another process or none.
    pub fn creator_pid(&self) -> u32 {
        self.region().info().creator_pid
    }
}

/// Never panics and never waits for a writer: the value, or `<locked>` (as lock_api's
/// mutexes print it) when no consistent value can be read at once: an `in_place` region whose
/// lock this thread holds, or whose holder is writing.
impl<T: ShmType + fmt::Debug> fmt::Debug for Shm<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Shm");
        s.field("name", &self.name())
            .field("version", &self.version())
            .field("in_place", &self.is_in_place());
        match self.value_for_debug() {
            Some(value) => s.field("value", &value),
            None => s.field("value", &format_args!("<locked>")),
        };
        s.finish()
    }
}

impl<T: ShmType> Shm<T> {
    /// The value if it can be read without waiting for a writer, for `Debug`. `read` could
    /// panic (an `in_place` write by this thread) or wait for as long as a write lasts.
    fn value_for_debug(&self) -> Option<T> {
        let attached = self.attached();
        if !attached.region.in_place() {
            // The default mode's read never waits for a writer and never panics.
            return Some(self.read());
        }
        match attached.region.acquire(Wait::No) {
            // Holding the lock, nobody writes: the working copy is the value (a poisoned one
            // included: `Debug` shows what is there).
            Ok(poisoned) => {
                let guard = self
                    .guard(attached, poisoned)
                    .unwrap_or_else(PoisonError::into_inner);
                Some(*guard)
            }
            // This thread holds the lock, through this handle or another: a read would wait
            // for this thread's own write.
            Err(LockFailure::Deadlock) => None,
            // Another thread or process holds the lock (or it is unusable): a read succeeds at
            // once unless the holder is writing, and then gives up instead of waiting.
            Err(_) => self.read_timeout(Duration::ZERO).ok(),
        }
    }
}

/// How to create or open a [`Shm`]: `Shm::<T>::options()`, then the settings, then a finishing
/// method ([`create`](Self::create), [`open`](Self::open),
/// [`open_or_create`](Self::open_or_create), …) that takes the region's [`Location`].
///
/// ```
/// # use shmstore::Shm;
/// # use std::time::Duration;
/// # let name = format!("doc-options-{}", std::process::id());
/// let counter = Shm::<u64>::options()
///     .mode(0o640)                          // owner writes, group reads
///     .open_timeout(Duration::from_millis(200))
///     .unlink_on_drop(true)                 // remove the name when this handle goes
///     .open_or_create(&name, || 0)?;
/// *counter.lock().unwrap() += 1;
/// assert_eq!(counter.read(), 1);
/// # Ok::<(), shmstore::Error>(())
/// ```
///
/// # Where the region lives
///
/// Every finishing method takes `impl Into<`[`Location`]`>`: a `&str` or `String` is a POSIX
/// name (`/dev/shm/NAME`, never parsed as a path), a `&Path` or `PathBuf` (or
/// [`Location::path`]) a file that persists across reboots, and [`Location::sysv`] a System V
/// segment that C programs open with `shmget` (its key from [`ftok`](crate::ftok), or a
/// constant both programs know). The options and the checks are the same for all three.
///
/// ```
/// use shmstore::{Location, Shm};
/// # let name = format!("doc-options-where-{}", std::process::id());
/// # let dir = std::env::temp_dir().join(format!("doc-options-where-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// # let key = 0x5d00_0000 | (std::process::id() as i32 & 0xffff);
/// // A POSIX name:
/// let named = Shm::<u64>::options().unlink_on_drop(true).create(&name, 1)?;
///
/// // A file: the value survives a reboot.
/// let path = dir.join("counter.shm");
/// let counter = Shm::<u64>::options().open_or_create(&path, || 0)?;
/// *counter.lock().unwrap() += 1;
/// counter.flush()?; // on disk now, not only in the page cache
/// drop(counter);
/// assert_eq!(Shm::<u64>::options().open(Location::path(&path))?.read(), 1);
/// shmstore::unlink(&path)?;
///
/// // A System V segment:
/// let shared = Shm::<[u32; 4]>::options()
///     .unlink_on_drop(true) // IPC_RMID when this handle goes
///     .create(Location::sysv(key), [1, 2, 3, 4])?;
/// assert_eq!(shared.name(), format!("sysv:{:#010x}", key));
/// assert_eq!(Shm::<[u32; 4]>::open(Location::sysv(key))?.read(), [1, 2, 3, 4]);
/// # drop(named);
/// # std::fs::remove_dir(&dir).unwrap();
/// # Ok::<(), shmstore::Error>(())
/// ```
#[must_use = "options do nothing until create, open or open_or_create is called"]
pub struct ShmOptions<T: ShmType> {
    common: CommonOptions,
    in_place: bool,
    notify_readers: bool,
    _type: PhantomData<fn() -> T>,
}

impl<T: ShmType> Clone for ShmOptions<T> {
    fn clone(&self) -> Self {
        ShmOptions { ..*self }
    }
}

impl<T: ShmType> fmt::Debug for ShmOptions<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("ShmOptions");
        self.common.debug_fields(&mut out);
        out.field("in_place", &self.in_place)
            .field("notify_readers", &self.notify_readers)
            .finish()
    }
}

impl<T: ShmType> Default for ShmOptions<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: ShmType> ShmOptions<T> {
    const ALIGN_OK: () = assert!(
        std::mem::align_of::<T>() <= MAX_PAYLOAD_ALIGN,
        "a ShmType aligned to more than 4096 bytes cannot be placed in a page-aligned mapping"
    );

    /// The defaults: mode `0o600`, `open_timeout` 1 s, no unlink on drop, only regions of this
    /// user, crash-atomic (not in place), readers not notified.
    pub fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::ALIGN_OK;
        ShmOptions {
            common: CommonOptions::DEFAULT,
            in_place: false,
            notify_readers: false,
            _type: PhantomData,
        }
    }

    common_setters! {
        what: "region",
        mode_note: "Use `0o640` or `0o644` to let others open it read-only \
                    ([`open_reader`](Self::open_reader))."
    }

    /// Create the region in place mode (default `false`): one copy of the value instead of
    /// two, a seqlock for readers, and std-style poisoning when a writer dies mid-write
    /// instead of a rollback. For values too large to copy on every write. Openers follow
    /// whatever mode the region was created with.
    pub fn in_place(mut self, in_place: bool) -> Self {
        self.in_place = in_place;
        self
    }

    /// Create the region so that every publish wakes sleeping readers, including read-only
    /// ones that cannot register themselves (default `false`).
    ///
    /// Without it, a [`ShmReader`] in `wait_for_change` notices a change within 10 ms (it
    /// re-checks the version); with it, at once. The price is a `FUTEX_WAKE` system call on
    /// every publish, whether or not anyone sleeps (FORMAT.md, the publish step), where a
    /// region without it makes the call only for registered waiters. Choose it when read-only
    /// consumers must react at once.
    pub fn notify_readers(mut self, notify: bool) -> Self {
        self.notify_readers = notify;
        self
    }

    fn spec(&self) -> RegionSpec {
        self.common
            .spec(&T::LAYOUT, self.in_place, self.notify_readers, None)
    }

    /// [`Shm::create`] with these options: a new region at `location` holding `value`.
    ///
    /// # Errors
    ///
    /// As [`Shm::create`].
    pub fn create(self, location: impl Into<Location>, value: T) -> Result<Shm<T>> {
        let spec = self.spec();
        let region = Region::create(&location.into(), &spec, &mut writing(|| value))?;
        Ok(Shm::new(Attached::direct(region), spec))
    }

    /// [`Shm::open`] with these options.
    ///
    /// # Errors
    ///
    /// As [`Shm::open`].
    pub fn open(self, location: impl Into<Location>) -> Result<Shm<T>> {
        let spec = self.spec();
        let attached = attach_writer::<T>(&location.into(), &spec)?;
        Ok(Shm::new(attached, spec))
    }

    /// [`Shm::open_reader`] with these options: `allow_other_owner` and `open_timeout` apply;
    /// the creation settings do not.
    ///
    /// # Errors
    ///
    /// As [`Shm::open`].
    pub fn open_reader(self, location: impl Into<Location>) -> Result<ShmReader<T>> {
        let spec = self.spec();
        let attached = attach_reader::<T>(&location.into(), &spec)?;
        Ok(ShmReader::new(attached, spec))
    }

    /// [`Shm::open_or_create`] with these options.
    ///
    /// # Errors
    ///
    /// As [`Shm::open_or_create`].
    pub fn open_or_create(
        self,
        location: impl Into<Location>,
        init: impl FnOnce() -> T,
    ) -> Result<Shm<T>> {
        self.open_or_create_filling(location.into(), &mut writing(init))
    }

    /// Like [`create`](Self::create), but `init` fills in the value where it lives: it receives
    /// the region's payload as a zeroed `T` (valid, since `T: Pod`). For values too large to
    /// build on the stack.
    ///
    /// ```
    /// # use shmstore::Shm;
    /// # let name = format!("doc-create-with-{}", std::process::id());
    /// // 16 MiB: far too large to pass by value on a thread's stack.
    /// let table = Shm::<[[u64; 1024]; 2048]>::options()
    ///     .in_place(true)
    ///     .unlink_on_drop(true)
    ///     .create_with(&name, |rows| rows[2047][1023] = 42)?;
    /// assert_eq!(table.lock().unwrap()[2047][1023], 42);
    /// # Ok::<(), shmstore::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Shm::create`].
    pub fn create_with(
        self,
        location: impl Into<Location>,
        init: impl FnOnce(&mut T),
    ) -> Result<Shm<T>> {
        let spec = self.spec();
        let region = Region::create(&location.into(), &spec, &mut filling_in_place(init))?;
        Ok(Shm::new(Attached::direct(region), spec))
    }

    /// Like [`open_or_create`](Self::open_or_create), but `init` fills in a zeroed `T` where it
    /// lives (see [`create_with`](Self::create_with)). Exactly one process runs it.
    ///
    /// # Errors
    ///
    /// As [`Shm::open_or_create`].
    pub fn open_or_create_with(
        self,
        location: impl Into<Location>,
        init: impl FnOnce(&mut T),
    ) -> Result<Shm<T>> {
        self.open_or_create_filling(location.into(), &mut filling_in_place(init))
    }

    /// `open_or_create` with the payload initialiser `init`; a region of a compatible type
    /// opens as [`open`](Self::open) opens it.
    fn open_or_create_filling(self, location: Location, init: Init<'_>) -> Result<Shm<T>> {
        let spec = self.spec();
        match reboot::open_or_create(&location, &spec, init) {
            Ok(region) => Ok(Shm::new(Attached::direct(region), spec)),
            Err(Error::LayoutMismatch { .. }) => {
                let attached = attach_writer::<T>(&location, &spec)?;
                Ok(Shm::new(attached, spec))
            }
            Err(other) => Err(other),
        }
    }
}

/// The payload initialiser of `create` and `open_or_create`: writes the value `init` returns.
/// The region calls it at most once; `Option` lets an `FnOnce` serve as its `FnMut`.
fn writing<T: ShmType>(init: impl FnOnce() -> T) -> impl FnMut(&mut [u8]) {
    let mut init = Some(init);
    move |bytes| {
        if let Some(init) = init.take() {
            bytes.copy_from_slice(bytemuck::bytes_of(&init()));
        }
    }
}

/// The payload initialiser of the `…_with` methods: zeroes the payload bytes (an abandoned
/// object being re-initialised may hold old ones) and runs `init` on them as a `T`, once.
fn filling_in_place<T: ShmType>(init: impl FnOnce(&mut T)) -> impl FnMut(&mut [u8]) {
    let mut init = Some(init);
    move |bytes| {
        if let Some(init) = init.take() {
            bytes.fill(0);
            // The region hands over exactly `size_of::<T>()` bytes aligned to at least
            // `align_of::<T>()` (its layout was computed for `T`), so this cast cannot fail.
            init(bytemuck::from_bytes_mut(bytes));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_send_and_sync_guards_are_neither() {
        fn send_sync<X: Send + Sync>() {}
        send_sync::<Shm<u64>>();
        send_sync::<ShmOptions<[u8; 4]>>();
        send_sync::<crate::ShmReader<u64>>();
        // `catch_unwind(|| shm.read())` compiles, as for std's `Mutex`.
        fn unwind_safe<X: std::panic::UnwindSafe + std::panic::RefUnwindSafe>() {}
        unwind_safe::<Shm<u64>>();
        unwind_safe::<crate::ShmReader<u64>>();
        // `ShmGuard: !Send` is checked by the compile-fail test
        // `tests/ui/fail/guard_is_not_send.rs`.
    }

    #[test]
    fn a_path_given_as_text_is_a_name_and_the_error_says_how_to_pass_a_file() {
        let path = "/tmp/shmstore-never-created/state.shm";
        for result in [
            Shm::<u64>::open(path).map(drop),
            Shm::<u64>::create(path, 1).map(drop),
            crate::ShmQueue::<u64, 4>::open(path).map(drop),
        ] {
            match result {
                Err(e @ crate::Error::InvalidName { .. }) => {
                    assert!(e.to_string().contains("Location::path"), "{e}")
                }
                other => panic!("expected InvalidName, got {other:?}"),
            }
        }
        assert!(!std::path::Path::new(path).exists());
    }
}
