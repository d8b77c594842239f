//! The untyped region: how an object is created, opened, validated, mapped and removed, on
//! any backend ([`Location`]). Nothing here knows the payload's Rust type.
//!
//! The create/open protocols live in [`fd`] (POSIX objects and files: unnamed creation, then a
//! link; a write lock on one byte of it to tell a live creator from a dead one) and [`sysv`]
//! (System V segments: exclusive `shmget`, then a claim on the header). Both check every object
//! before mapping it, and the header describes no byte beyond the object's size, so no access
//! raises SIGBUS while the object keeps that size. A peer with write access can still shrink a
//! POSIX object or a file afterwards; accesses past the new end then fault (README, "Threat
//! model"). A System V segment cannot shrink.

mod fd;
mod migrate;
mod sysv;

pub use sysv::ftok;

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::Ordering::{Relaxed, Release, SeqCst};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize};
use std::sync::Mutex;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::{
    descriptor_copy, Control, Descriptor, Header, HeaderInfo, HeaderState, LoadAcquire, QueueShape,
    RegionLayout, SharedBytes, StoredType, FLAG_IN_PLACE, FLAG_NOTIFY_READERS, HEADER_SIZE,
    LIFECYCLE_CURRENT, LIFECYCLE_MIGRATING, LIFECYCLE_MOVED, QUEUE_CONTROL_SIZE,
};
use crate::layout::TypeLayout;
use crate::location::Location;
use crate::sys::mutex::MutexKey;
use crate::sys::object::{self, Access, ByteLock, Mapping, ObjectStat};
use crate::sys::{futex, process, sysv as segment};

/// How a region is to be created or opened: the type, the mode, and the opener's policies.
#[derive(Clone, Debug)]
pub(crate) struct RegionSpec {
    pub(crate) layout: &'static TypeLayout,
    /// `Some`: a region created with this spec stores this type, known at run time (a
    /// migration's target: [`Region::migrate`]), instead of `layout`'s: its descriptor, size,
    /// alignment and fingerprint. Opening compares `layout` as always.
    pub(crate) stored: Option<std::sync::Arc<StoredType>>,
    pub(crate) in_place: bool,
    pub(crate) notify_readers: bool,
    pub(crate) mode: u32,
    pub(crate) open_timeout: Duration,
    pub(crate) allow_other_owner: bool,
    pub(crate) unlink_on_drop: bool,
    /// `Some(patience)`: an open that finds no region waits up to `patience` for its creation
    /// ([`Region::open`]).
    pub(crate) wait_for_creation: Option<Duration>,
    /// `Some` for a queue: its mode and capacity (the element size is `layout`'s).
    pub(crate) queue: Option<QueueSpec>,
    /// A new region's versions table, encoded (`format::versions`): every type that shaped
    /// it, for a region made by a migration; `None` (no table) otherwise. At most
    /// `format::versions::MAX_VERSIONS_LEN` bytes (opening refuses a longer one as corrupt).
    /// Not compared when opening.
    pub(crate) versions: Option<std::sync::Arc<[u8]>>,
}

impl RegionSpec {
    /// The size, alignment and fingerprint of the type a region created with this spec
    /// stores: `stored`'s when set, `layout`'s otherwise.
    fn stored_shape(&self) -> (usize, usize, u64) {
        match &self.stored {
            Some(stored) => (stored.size, stored.align, stored.fingerprint),
            None => (
                self.layout.size(),
                self.layout.align(),
                self.layout.fingerprint(),
            ),
        }
    }
}

/// The creation settings of a queue region.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QueueSpec {
    /// `QUEUE_SPSC` or `QUEUE_MPMC`: used when creating. Not checked here when opening: an
    /// opener that asked for a mode checks it (`ShmQueueOptions::handle`), the others follow it.
    pub(crate) mode: u32,
    pub(crate) capacity: usize,
}

impl QueueSpec {
    /// A capacity that opening does not compare: a byte channel's opener learns the capacity
    /// from the header. No queue is created with it (a `ShmQueue` needs `N >= 1`, a channel a
    /// ring of at least one record).
    pub(crate) const ANY_CAPACITY: usize = 0;
}

/// Writes the initial payload into the bytes it is given (the working copy).
pub(crate) type Init<'a> = &'a mut dyn FnMut(&mut [u8]);

/// A mapped, validated region.
pub(crate) struct Region {
    location: Location,
    /// `location` as text, for messages.
    name: String,
    object: ObjectStat,
    /// Shared with the process's notifier (`notifier`), whose registrations keep the words
    /// they sleep on mapped for as long as they live, even past this handle.
    map: Option<std::sync::Arc<Mapping>>,
    /// `map`'s first byte, cached: the lock path asks for the header and the payload copies
    /// several times per lock, and through `map` each time cost a `None` check and a null
    /// check (~30 of the ~180 instructions the crate added to a raw lock+write+unlock).
    base: MappedBase,
    /// Whether the mapping is writable: a read-only region never locks or registers.
    access: Access,
    info: HeaderInfo,
    unlink_on_drop: bool,
    /// The [`process::thread_token`] of the thread of this process that holds the lock through
    /// this handle, or 0. Written only by the holder (the mutex orders the writes).
    pub(crate) holder: AtomicUsize,
    /// The `read_requests` value this handle last backed off for (lock.rs), so that a reader
    /// that died mid-request costs it one back-off, not one per lock.
    pub(crate) backed_off_for: AtomicU32,
    /// The payload bytes committed through this handle since it last looked, as a writer, for
    /// readers asking for help (snapshot.rs). Only the lock holder touches it.
    pub(crate) reader_help: Mutex<usize>,
    handle: Handle,
}

/// The first byte of a region's mapping (see [`Region::base`]).
struct MappedBase(NonNull<u8>);

// SAFETY: only an address into the mapping that the same `Region` owns (a `Mapping`, which is
// `Send` and `Sync`); the region accesses the bytes through it exactly as it would through
// `map.ptr()`, so moving or sharing it between threads is as sound as for the `Mapping`.
unsafe impl Send for MappedBase {}
// SAFETY: as for `Send`.
unsafe impl Sync for MappedBase {}

/// What keeps the object open.
enum Handle {
    /// Kept open so the object cannot be replaced under us between checks; closed on drop.
    /// With the directory it was found in, to remove it from there (`unlink_on_drop`).
    File {
        file: File,
        dir: object::Dir,
        file_name: OsString,
    },
    /// A System V segment: its key (the id is `object.ino`).
    SysV { key: i32 },
}

/// Which create/open protocol serves a location.
enum Protocol {
    /// A POSIX object or a file: [`fd`].
    Fd(fd::Target),
    /// A System V segment with this key: [`sysv`].
    SysV(i32),
}

impl Protocol {
    /// Validates the location (before any system call) and picks its protocol.
    fn of(location: &Location) -> Result<Protocol> {
        location.validate()?;
        Ok(match location {
            Location::Named(name) => Protocol::Fd(fd::Target::named(name)?),
            Location::File(path) => Protocol::Fd(fd::Target::file(path)?),
            Location::SysV(key) => Protocol::SysV(*key),
        })
    }
}

impl Region {
    /// Creates the region fully (value included) before other processes can use it:
    /// `AlreadyExists` if the location is taken.
    pub(crate) fn create(location: &Location, spec: &RegionSpec, init: Init<'_>) -> Result<Region> {
        let mut region = match Protocol::of(location)? {
            Protocol::Fd(target) => fd::create(&target, spec, init),
            Protocol::SysV(key) => sysv::create(key, location, spec, init),
        }?;
        region.arm_unlink_on_drop(spec);
        Ok(region)
    }

    /// Makes dropping this region remove its location (while it still refers to it) if `spec`
    /// asks for it. Called only once the region is what its handle asked for: a region an
    /// open refuses (another type, kind or capacity, a reset after a reboot that failed, …)
    /// is dropped without removing anything, since the name belongs to whoever created it.
    pub(crate) fn arm_unlink_on_drop(&mut self, spec: &RegionSpec) {
        self.unlink_on_drop = spec.unlink_on_drop;
    }

    /// Opens an existing region, waiting up to `open_timeout` for a live creator to finish.
    ///
    /// With `spec.wait_for_creation`, a location where no region exists yet is waited on
    /// until one is created there (then opened as usual), at most that long
    /// ([`Error::Timeout`] after): a POSIX name or a file by an inotify watch on its directory
    /// (made before each look, so a creation between the look and the sleep wakes it), a
    /// System V key by looking again after sleeps that grow from 1 ms to 100 ms (System V has
    /// no notification).
    pub(crate) fn open(location: &Location, spec: &RegionSpec, access: Access) -> Result<Region> {
        let protocol = Protocol::of(location)?;
        let open_once = || match &protocol {
            Protocol::Fd(target) => fd::open(target, spec, access, Typed::Yes),
            Protocol::SysV(key) => sysv::open(*key, location, spec, access, Typed::Yes),
        };
        let Some(patience) = spec.wait_for_creation else {
            return open_once();
        };
        let deadline = std::time::Instant::now().checked_add(patience);
        let timed_out = || Error::Timeout {
            name: location.to_string(),
            waiting_for: "its creation (wait_for_creation): no region was created there",
            after: patience,
        };
        let mut backoff = Duration::from_millis(1);
        loop {
            let watch = match &protocol {
                Protocol::Fd(target) => Some(
                    target
                        .dir
                        .watch_for_entries()
                        .map_err(|e| Error::io(&location.to_string(), "inotify_add_watch", e))?,
                ),
                Protocol::SysV(_) => None,
            };
            match open_once() {
                Err(Error::NotFound { .. }) => {}
                other => return other,
            }
            let left = match deadline {
                None => None,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return Err(timed_out());
                    }
                    Some(left)
                }
            };
            match watch {
                Some(watch) => watch
                    .wait(left)
                    .map_err(|e| Error::io(&location.to_string(), "poll(inotify)", e))?,
                None => {
                    std::thread::sleep(left.map_or(backoff, |left| left.min(backoff)));
                    backoff = (backoff * 2).min(Duration::from_millis(100));
                }
            }
        }
    }

    /// Opens an existing region read-only whatever its kind and type (`spec.layout` is not
    /// compared): for inspection.
    pub(crate) fn open_untyped(location: &Location, spec: &RegionSpec) -> Result<Region> {
        match Protocol::of(location)? {
            Protocol::Fd(target) => fd::open(&target, spec, Access::ReadOnly, Typed::No),
            Protocol::SysV(key) => sysv::open(key, location, spec, Access::ReadOnly, Typed::No),
        }
    }

    /// Opens an existing region read-write whatever its kind and type (`spec.layout` is not
    /// compared): for an untyped editor, which checks the kind and decodes the stored
    /// descriptor itself.
    pub(crate) fn open_untyped_writable(location: &Location, spec: &RegionSpec) -> Result<Region> {
        match Protocol::of(location)? {
            Protocol::Fd(target) => fd::open(&target, spec, Access::ReadWrite, Typed::No),
            Protocol::SysV(key) => sysv::open(key, location, spec, Access::ReadWrite, Typed::No),
        }
    }

    /// Opens the region, or creates it running `init` — in exactly one process of any number
    /// racing for the same location.
    pub(crate) fn open_or_create(
        location: &Location,
        spec: &RegionSpec,
        init: Init<'_>,
    ) -> Result<Region> {
        match Protocol::of(location)? {
            Protocol::Fd(target) => fd::open_or_create(&target, spec, init),
            Protocol::SysV(key) => sysv::open_or_create(key, location, spec, init),
        }
    }

    fn assemble(
        location: &Location,
        handle: Handle,
        object: ObjectStat,
        (map, access): (Mapping, Access),
        info: HeaderInfo,
    ) -> Region {
        // Checked once here, so that `header()`, several times on every lock, need not.
        assert!(
            SharedBytes::of_mapping(&map).header().is_some(),
            "a region's mapping holds its header"
        );
        let base = match NonNull::new(map.ptr()) {
            Some(base) => MappedBase(base),
            None => unreachable!("a mapping that holds a header starts at a non-null address"),
        };
        Region {
            location: location.clone(),
            name: location.to_string(),
            object,
            map: Some(std::sync::Arc::new(map)),
            base,
            access,
            info,
            // Armed by `arm_unlink_on_drop` once the region is accepted.
            unlink_on_drop: false,
            holder: AtomicUsize::new(0),
            backed_off_for: AtomicU32::new(0),
            reader_help: Mutex::default(),
            handle,
        }
    }

    /// Runs `init` on the working copy and copies it into the second copy, if any.
    ///
    /// # Safety
    ///
    /// Nothing else reads or writes the payload during the call, in this process or another:
    /// the region is unnamed, or its state is "initialising" and the caller holds its
    /// initialiser lock (or, for a System V segment, its claim), so openers wait for "ready";
    /// and no other handle of this process refers to its payload yet.
    pub(crate) unsafe fn fill(&self, init: Init<'_>) {
        let size = self.info.layout.payload_size;
        // SAFETY:
        // - in bounds: the working copy's `size` bytes lie within the mapping (the layout was
        //   validated against the mapped size), which `self` keeps alive during the call;
        // - initialised: mapped bytes always hold some value;
        // - unique: nothing else accesses the payload during the call (caller's contract), so
        //   this is the only reference to those bytes while `init` runs.
        let working = unsafe { std::slice::from_raw_parts_mut(self.working_copy(), size) };
        init(working);
        if let Some(second) = self.second_copy() {
            // SAFETY: both copies are `size` bytes within the mapping and do not overlap (the
            // layout places the second after the first); nothing else accesses them during the
            // call (caller's contract), and `working` is no longer used.
            unsafe { std::ptr::copy_nonoverlapping(self.working_copy(), second, size) };
        }
    }

    /// The region's location as text (the name of a POSIX region).
    #[inline]
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Where the region lives.
    pub(crate) fn location(&self) -> &Location {
        &self.location
    }

    /// The validated fixed fields of the header.
    #[inline]
    pub(crate) fn info(&self) -> &HeaderInfo {
        &self.info
    }

    /// Whether an in-place region is poisoned (never in the default mode).
    pub(crate) fn poisoned(&self) -> bool {
        self.in_place()
            // Read-only handles ask too: see `LoadAcquire`.
            && self.header().poisoned.load_acquire() != 0
    }

    /// Whether this handle may write the header (lock, register as a waiter).
    #[inline]
    pub(crate) fn writable(&self) -> bool {
        self.access == Access::ReadWrite
    }

    #[inline]
    pub(crate) fn in_place(&self) -> bool {
        self.info.in_place()
    }

    #[inline]
    fn base(&self) -> *mut u8 {
        self.base.0.as_ptr()
    }

    /// The mapped bytes, for as long as `self` is borrowed.
    #[inline]
    pub(crate) fn bytes(&self) -> SharedBytes<'_> {
        match &self.map {
            Some(map) => SharedBytes::of_mapping(map),
            None => unreachable!("the mapping is only taken in drop"),
        }
    }

    /// The header at offset 0.
    #[inline]
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: `base` is the first byte of `map`, whose bytes are `SharedBytes` for as long
        // as `self` is borrowed (see `bytes`: the region keeps its mapping until drop), and
        // `assemble` asserted that those bytes hold a header.
        unsafe { SharedBytes::header_at(self.base.0) }
    }

    /// The payload's working copy as shared bytes (`payload_size` of them), for typed views
    /// of its start (a queue's control block).
    #[inline]
    pub(crate) fn payload(&self) -> Option<SharedBytes<'_>> {
        let layout = &self.info.layout;
        self.bytes()
            .range(layout.payload_offset, layout.payload_size)
    }

    /// The working copy: the payload the lock holder writes in place (the only copy in
    /// `in_place` mode). Aligned to `max(64, align_of::<T>())`, `payload_size` bytes long.
    #[inline]
    pub(crate) fn working_copy(&self) -> *mut u8 {
        // SAFETY: `payload_offset + payload_size ≤ region_size ≤` the mapped length (validated
        // by `Header::check` or computed by us), so the offset stays within the mapping.
        unsafe { self.base().add(self.info.layout.payload_offset) }
    }

    /// The untouched copy readers use while the working copy is being written (default mode).
    #[inline]
    pub(crate) fn second_copy(&self) -> Option<*mut u8> {
        self.info.layout.second_copy_offset.map(|offset| {
            // SAFETY: as in `working_copy`; the second copy ends at `region_size`.
            unsafe { self.base().add(offset) }
        })
    }

    /// Takes a byte lock of `kind` at `offset` of the object for this handle (see
    /// [`object::try_byte_lock`] and [`ByteLock`] for what each kind proves); `Ok(false)` if
    /// another handle holds a conflicting one. Released when the handle is dropped or its
    /// process dies. `None` for a System V segment, which has no descriptor to lock (see
    /// [`Region::is_segment`]).
    pub(crate) fn try_claim_byte(&self, offset: u64, kind: ByteLock) -> Result<Option<bool>> {
        match &self.handle {
            Handle::File { file, .. } => object::try_byte_lock(file, offset, kind)
                .map(Some)
                .map_err(|e| Error::io(&self.name, "fcntl(F_OFD_SETLK)", e)),
            Handle::SysV { .. } => Ok(None),
        }
    }

    /// Releases this handle's byte lock at `offset`, if it holds one (nothing for a segment).
    pub(crate) fn release_byte(&self, offset: u64) {
        if let Handle::File { file, .. } = &self.handle {
            let _ = object::byte_unlock(file, offset);
        }
    }

    /// The key of this region's mutex, the same through every handle of the region.
    #[inline]
    pub(crate) fn mutex_key(&self) -> MutexKey {
        MutexKey::new(self.object.dev, self.object.ino)
    }

    /// Records that the header's boot id is now `boot_id` (after the reset after a reboot, or
    /// another process's).
    pub(crate) fn note_boot_id(&mut self, boot_id: [u8; 16]) {
        self.info.boot_id = boot_id;
    }

    /// Whether the region is a System V segment: no descriptor, so no byte locks.
    pub(crate) fn is_segment(&self) -> bool {
        matches!(self.handle, Handle::SysV { .. })
    }

    /// Whether another handle holds a byte lock of any kind at `offset`; `None` for a System V
    /// segment.
    pub(crate) fn byte_claimed_elsewhere(&self, offset: u64) -> Result<Option<bool>> {
        self.ask_byte_lock(offset, object::byte_locked_elsewhere)
    }

    /// Whether another handle holds a *write* lock at `offset`, which only a handle with write
    /// access can (read locks are not reported); `None` for a System V segment.
    pub(crate) fn byte_write_claimed_elsewhere(&self, offset: u64) -> Result<Option<bool>> {
        self.ask_byte_lock(offset, object::byte_write_locked_elsewhere)
    }

    /// Asks `query` (one of the `sys::object` lock tests) about the byte lock at `offset`
    /// through this handle's descriptor; `None` for a System V segment, which has none.
    fn ask_byte_lock(
        &self,
        offset: u64,
        query: fn(&File, u64) -> io::Result<bool>,
    ) -> Result<Option<bool>> {
        match &self.handle {
            Handle::File { file, .. } => query(file, offset)
                .map(Some)
                .map_err(|e| Error::io(&self.name, "fcntl(F_OFD_GETLK)", e)),
            Handle::SysV { .. } => Ok(None),
        }
    }

    /// A copy of the stored type descriptor's bytes, taken with atomic loads: a peer may
    /// rewrite them while we read (the decoder tolerates any bytes).
    pub(crate) fn descriptor_copy(&self) -> Vec<u8> {
        // The validated layout places the descriptor inside the mapping, so this is never
        // `None`; an empty descriptor would only fail to decode.
        descriptor_copy(self.bytes(), self.info.layout.descriptor_len).unwrap_or_default()
    }

    /// A copy of the versions table's bytes (empty for a region without one), taken with
    /// atomic loads: a peer may rewrite them while we read (the decoder tolerates any bytes).
    pub(crate) fn versions_copy(&self) -> Vec<u8> {
        // The validated layout places the table inside the mapping, so this is never `None`.
        let Some((offset, len)) = self.info.layout.versions() else {
            return Vec::new();
        };
        self.bytes()
            .range(offset, len)
            .map(SharedBytes::load_bytes)
            .unwrap_or_default()
    }

    /// Whether the location no longer refers to this handle's object: the name, file or key
    /// was removed, or removed and given to another region. `fstatat` of the name in the
    /// directory opened with the handle (no symbolic link followed), or `shmget` of the key.
    pub(crate) fn is_removed(&self) -> Result<bool> {
        let found = match &self.handle {
            Handle::File { dir, file_name, .. } => dir
                .stat(file_name)
                .map(|now| now.same_object(&self.object))
                .map_err(|e| (e, "fstatat")),
            Handle::SysV { key } => segment::get(*key)
                .map(|id| id as u64 == self.object.ino)
                .map_err(|e| (e, "shmget")),
        };
        match found {
            Ok(same) => Ok(!same),
            Err((e, _)) if e.kind() == io::ErrorKind::NotFound => Ok(true),
            Err((e, operation)) => Err(Error::io(&self.name, operation, e)),
        }
    }

    /// Wakes every thread of every process asleep on one of the region's futexes for an event:
    /// a change of the value (its version), a queue's `not_empty` and `not_full`. Called by
    /// shmstore's own removals, right after the location stopped referring to the region: a
    /// sleeper woken without its event looks at the location and ends its wait with
    /// `Error::Removed` (wait.rs). Only wakes, writes nothing, so a read-only handle can do it.
    /// Lock waiters are not woken: a lock on a removed region still works.
    pub(crate) fn wake_every_sleeper(&self) {
        futex::wake_low_half(&self.header().version);
        if self.info.queue.is_some() {
            if let Some(control) = self.payload().and_then(SharedBytes::view::<Control>) {
                futex::wake_all(&control.not_empty.epoch);
                futex::wake_all(&control.not_full.epoch);
            }
        }
    }

    /// Whether the region moved: a migration ([`Region::migrate`]) replaced it under its
    /// location by a region of a wider type, which holds every write committed here; handles
    /// reopen the location and go on there. Asked by handles on every operation: one load of
    /// the header's `lifecycle` word (sound through a read-only mapping) while it is
    /// `LIFECYCLE_CURRENT`, no system call.
    #[inline]
    pub(crate) fn has_moved(&self) -> bool {
        let lifecycle = self.header().lifecycle.load_acquire();
        lifecycle != LIFECYCLE_CURRENT && self.has_moved_slow(lifecycle)
    }

    /// [`has_moved`](Self::has_moved) past the fast path. `LIFECYCLE_MIGRATING`: a migrator
    /// is at work, or died; the region moved exactly when the location now refers to another
    /// object (its rename happened), and then a writable handle records it
    /// (`LIFECYCLE_MOVED`, by a compare-and-swap) so that the next look is fast again. Any
    /// other value is no state of the protocol (a peer's stray write): the location decides
    /// too, and nothing is written. `LIFECYCLE_MOVED` is a move unless the location still
    /// refers to this region: a peer's forged word (or an old object put back under the name)
    /// must not make every operation reopen the location, get this same region again, and
    /// follow it once more, a descriptor and a mapping each time. When the location cannot
    /// be looked at, the word is believed.
    #[cold]
    fn has_moved_slow(&self, lifecycle: u32) -> bool {
        match lifecycle {
            LIFECYCLE_MOVED => !matches!(self.is_removed(), Ok(false)),
            LIFECYCLE_MIGRATING => {
                let moved = matches!(self.is_removed(), Ok(true));
                if moved && self.writable() {
                    let _ = self.header().lifecycle.compare_exchange(
                        LIFECYCLE_MIGRATING,
                        LIFECYCLE_MOVED,
                        SeqCst,
                        Relaxed,
                    );
                }
                moved
            }
            _ => matches!(self.is_removed(), Ok(true)),
        }
    }

    /// Settles a migration whose migrator died holding the lock (called by the next locker,
    /// which got `EOWNERDEAD`): a `LIFECYCLE_MIGRATING` region becomes `LIFECYCLE_MOVED` if the
    /// migrator's rename happened (the location refers to another object; its sleepers are
    /// woken to follow it), `LIFECYCLE_CURRENT` otherwise (the region stays what its name
    /// refers to). Left as it is if the location cannot be looked at: handles keep asking it.
    /// Whenever the word is not `LIFECYCLE_CURRENT`, the migrator's temporary name, if it left
    /// one, is removed: a handle may have recorded `LIFECYCLE_MOVED` already (the name was
    /// removed under a migrator that died before its rename).
    ///
    /// # Safety
    ///
    /// This thread holds the region's lock (taken through `self`), so no migrator is at work.
    #[cold]
    pub(crate) unsafe fn settle_dead_migration(&self) {
        let lifecycle = &self.header().lifecycle;
        let word = lifecycle.load(Relaxed);
        if word == LIFECYCLE_CURRENT {
            return;
        }
        migrate::remove_temporary_name(self);
        if word != LIFECYCLE_MIGRATING {
            return;
        }
        match self.is_removed() {
            Ok(true) => {
                lifecycle.store(LIFECYCLE_MOVED, Release);
                self.wake_every_sleeper();
            }
            Ok(false) => lifecycle.store(LIFECYCLE_CURRENT, Release),
            Err(_) => {}
        }
    }

    /// Writes the region's pages to its file and waits for the disk (`msync(MS_SYNC)`); does
    /// nothing for POSIX objects and System V segments, which live in memory only.
    pub(crate) fn flush(&self) -> Result<()> {
        match &self.map {
            Some(map) => map.flush().map_err(|e| Error::io(&self.name, "msync", e)),
            None => Ok(()),
        }
    }
}

impl Region {
    /// The region's mapping, shared: what a notifier registration holds so that the words it
    /// sleeps on stay mapped while it lives (`notifier::Source`).
    pub(crate) fn shared_mapping(&self) -> std::sync::Arc<Mapping> {
        match &self.map {
            Some(map) => std::sync::Arc::clone(map),
            // Taken only when the region drops.
            None => unreachable!("a live region is mapped"),
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // Only if the location still refers to this handle's object: another process may have
        // removed it and created a new one meanwhile.
        if self.unlink_on_drop && matches!(self.is_removed(), Ok(false)) {
            let removed = match &self.handle {
                Handle::File { dir, file_name, .. } => dir.unlink(file_name),
                Handle::SysV { .. } => segment::remove(id_of(&self.object)),
            };
            if removed.is_ok() {
                self.wake_every_sleeper();
            }
        }
        if let Some(map) = self.map.take() {
            if self.holder.load(Relaxed) != 0 {
                // A guard was forgotten: glibc still lists the held mutex (on a per-thread list
                // it walks later), so its memory must never disappear: a leaked reference keeps
                // it mapped for the rest of the process's life, whoever else shares it.
                std::mem::forget(map);
            }
        }
    }
}

/// The System V id recorded in a segment's [`ObjectStat`].
fn id_of(object: &ObjectStat) -> i32 {
    object.ino as i32
}

/// Removes a region: the name of a POSIX region, the file of a file region (`unlink`), or the
/// key of a System V segment (`IPC_RMID`). Processes that have it open keep using it; the
/// memory is freed when the last one unmaps it (a file's data when the last one closes it).
///
/// Handles waiting on it (`wait_for_change`, a blocked queue `push` or `pop`) are woken and
/// get [`Error::Removed`]: when the location holds a ready region, its futex words are found
/// before its removal and woken after. A POSIX object or a file is read with `pread` and
/// mapped read-only only to name the words to the kernel, never loaded or stored through the
/// mapping, so a peer that shrinks it meanwhile cannot raise SIGBUS here; a System V segment
/// (which cannot shrink) is opened read-only. Locks keep working on the removed region.
///
/// A `&str` is a region name; pass a [`Location`] (or a `Path`) for a file or a System V
/// segment.
///
/// ```
/// # use shmstore::{Shm, ShmType};
/// # let name = format!("doc-unlink-{}", std::process::id());
/// let shm = Shm::<u64>::create(&name, 7)?;
/// shmstore::unlink(&name)?;
/// assert_eq!(shm.read(), 7); // still mapped here
/// assert!(matches!(Shm::<u64>::open(&name), Err(shmstore::Error::NotFound { .. })));
/// # Ok::<(), shmstore::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::InvalidName`] or [`Error::InvalidLocation`], [`Error::NotFound`],
/// [`Error::PermissionDenied`] (the directory's sticky bit, or a segment of another user: only
/// its owner may remove it), [`Error::Io`].
pub fn unlink(location: impl Into<Location>) -> Result<()> {
    let location = location.into();
    let name = location.to_string();
    let protocol = Protocol::of(&location)?;
    // Best effort: what is not a ready region has no shmstore sleepers to wake.
    match protocol {
        Protocol::Fd(target) => {
            unlink_waking(&target).map_err(|e| Error::io(&name, "unlink", e))?
        }
        Protocol::SysV(key) => {
            // A segment cannot shrink: a read-only handle of it is safe to read.
            let sleepers = Region::open_untyped(&location, &to_wake_sleepers()).ok();
            let id = segment::get(key).map_err(|e| Error::io(&name, "shmget", e))?;
            segment::remove(id).map_err(|e| Error::io(&name, "shmctl(IPC_RMID)", e))?;
            if let Some(region) = sleepers {
                region.wake_every_sleeper();
            }
        }
    }
    Ok(())
}

/// Removes the object of a POSIX or file region from its directory and wakes the sleepers of
/// the region it held, if it was a ready one (see [`unlink`]).
fn unlink_waking(target: &fd::Target) -> io::Result<()> {
    let sleepers = fd::sleepers(target);
    target.dir.unlink(&target.file_name)?;
    if let Some(sleepers) = sleepers {
        sleepers.wake();
    }
    Ok(())
}

/// Removes the POSIX object `name` (a valid region name) as [`unlink`] does, waking the
/// sleepers of the region it held, with the system's error: for removals that report their
/// own ([`Store::remove_all`](crate::Store::remove_all)).
pub(crate) fn unlink_named(name: &str) -> io::Result<()> {
    let target = fd::Target::named(name).map_err(|e| io::Error::other(e.to_string()))?;
    unlink_waking(&target)
}

/// How [`unlink`] opens a region to wake its sleepers: any kind and type, read-only, another
/// user's too, and without waiting for a creator still initialising it (it has no sleepers).
fn to_wake_sleepers() -> RegionSpec {
    use crate::layout::ShmType;
    RegionSpec {
        layout: &<u8 as ShmType>::LAYOUT,
        stored: None,
        in_place: false,
        notify_readers: false,
        mode: 0,
        open_timeout: Duration::ZERO,
        allow_other_owner: true,
        unlink_on_drop: false,
        wait_for_creation: None,
        queue: None,
        versions: None,
    }
}

/// A private copy of 256 bytes, aligned as a mapping's start: a header, or a queue's control
/// block, read with `pread`. Held in atomic words so that the typed views of it
/// ([`SharedBytes::view`]) are over memory that permits their interior mutability. Also how
/// [`unlink`] reads the header of the region it wakes.
#[repr(C, align(64))]
pub(crate) struct Block256 {
    words: [AtomicU64; 32],
}

const _: () = assert!(HEADER_SIZE == 256 && QUEUE_CONTROL_SIZE == 256);
const _: () = assert!(std::mem::size_of::<Block256>() == 256);
const _: () = assert!(std::mem::align_of::<Header>() <= std::mem::align_of::<Block256>());

impl Block256 {
    /// The 256 bytes at `offset` of the object; an error if it ends before.
    pub(crate) fn read(file: &File, offset: u64) -> io::Result<Block256> {
        let mut bytes = [0u8; 256];
        object::read_exact_at(file, offset, &mut bytes)?;
        let mut words = bytes
            .chunks_exact(8)
            .map(|word| AtomicU64::new(u64::from_ne_bytes(word.try_into().unwrap_or_default())));
        Ok(Block256 {
            words: std::array::from_fn(|_| words.next().unwrap_or_default()),
        })
    }

    /// The copy as a header, to validate with [`Header::check`] and read field by field.
    pub(crate) fn header(&self) -> &Header {
        match self.bytes().header() {
            Some(header) => header,
            None => unreachable!("256 bytes aligned to 64 hold a header (asserted above)"),
        }
    }

    /// The copy as shared bytes, for a typed view of a queue's control block.
    pub(crate) fn bytes(&self) -> SharedBytes<'_> {
        SharedBytes::of_words(&self.words)
    }
}

/// Whether a protocol checks that the region holds the spec's kind and type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Typed {
    Yes,
    No,
}

/// What one look at an object's header found.
enum Look {
    Ready(HeaderInfo),
    /// Initialising: a creator wrote the header and has not published it.
    NotReady,
    /// Empty, or its header is zeros so far. Blank only if [`blank_problem`] says so: a
    /// zero header may begin someone's data.
    Blank,
    Corrupt(String),
}

/// The header at the start of a mapping of the region `name`; [`Error::Corrupt`] if the
/// mapping is shorter than a header (callers check the size before mapping, so it is not).
fn header_of<'a>(name: &str, map: &'a Mapping) -> Result<&'a Header> {
    SharedBytes::of_mapping(map).header().ok_or_else(|| {
        Error::corrupt(
            name,
            format!(
                "it is {} bytes long, shorter than its own {HEADER_SIZE}-byte header",
                map.len()
            ),
        )
    })
}

/// Classifies a header over an object of `size` bytes.
fn classify(header: &Header, size: u64) -> Look {
    match header.check(size) {
        Ok(HeaderState::Ready(info)) => Look::Ready(info),
        Ok(HeaderState::Blank) => Look::Blank,
        Ok(HeaderState::Initialising) => Look::NotReady,
        Err(reason) => Look::Corrupt(reason),
    }
}

/// Why an object that looks blank (empty, or a zero header) is not, or `None` if it is.
///
/// Blank is only what an interrupted creation leaves: nothing, or `expected` bytes that are
/// all zero (`zeros` reads them; a System V claim may have stored its pid). Anything else
/// starting with zeros is someone's data, which nobody may take over. `expected` is `None`
/// when the type is not known (inspection): then any size of zeros is blank.
fn blank_problem(
    size: u64,
    expected: Option<u64>,
    zeros: impl FnOnce() -> io::Result<bool>,
) -> io::Result<Option<String>> {
    if size == 0 {
        return Ok(None);
    }
    if let Some(expected) = expected.filter(|&expected| expected != size) {
        return Ok(Some(format!(
            "its header is zeros, but it is {size} bytes long and an unfinished creation of \
             this type leaves {expected}: it holds something else, which shmstore leaves alone"
        )));
    }
    if !zeros()? {
        return Ok(Some(
            "its header is zeros, but bytes after it are not, as they are in an unfinished \
             creation: it holds something else, which shmstore leaves alone"
                .to_string(),
        ));
    }
    Ok(None)
}

/// The size an interrupted creation of `spec` leaves (see [`blank_problem`]); `None` when the
/// type is not compared.
fn blank_size(name: &str, spec: &RegionSpec, typed: Typed) -> Result<Option<u64>> {
    Ok(match typed {
        // A channel opened at any capacity does not know the size its creation leaves.
        Typed::Yes
            if spec
                .queue
                .is_some_and(|q| q.capacity == QueueSpec::ANY_CAPACITY) =>
        {
            None
        }
        Typed::Yes => Some(fresh_layout(name, spec)?.0.layout.region_size as u64),
        Typed::No => None,
    })
}

/// The typed checks of an opened region: kind, type and capacity.
fn check_typed(region: &Region, spec: &RegionSpec, typed: Typed) -> Result<()> {
    if typed == Typed::Yes {
        let name = region.name();
        check_kind(name, &region.info, spec)?;
        crate::format::check_type(name, &region.info, || region.descriptor_copy(), spec.layout)?;
        check_capacity(name, &region.info, spec)?;
    }
    Ok(())
}

fn check_owner(name: &str, spec: &RegionSpec, stat: &ObjectStat) -> Result<()> {
    refuse_other_user(name, spec, stat.uid, |me| {
        format!(
            "it belongs to uid {} and this process runs as uid {me}; anyone could plant a \
             region under a name you use, so opening another user's region needs \
             `allow_other_owner(true)` on the options",
            stat.uid
        )
    })
}

/// [`Error::PermissionDenied`] if `uid` is not this process's user and the options do not
/// allow other owners; `detail`, given this process's uid, says why and what to change.
fn refuse_other_user(
    name: &str,
    spec: &RegionSpec,
    uid: u32,
    detail: impl FnOnce(u32) -> String,
) -> Result<()> {
    let me = process::effective_uid();
    if uid != me && !spec.allow_other_owner {
        return Err(Error::PermissionDenied {
            name: name.to_string(),
            detail: detail(me),
        });
    }
    Ok(())
}

/// Whether the region is the kind of object asked for: a value or a queue.
fn check_kind(name: &str, info: &HeaderInfo, spec: &RegionSpec) -> Result<()> {
    let kind = |queue: bool| if queue { "a queue" } else { "a single value" };
    if info.queue.is_some() != spec.queue.is_some() {
        return Err(Error::WrongKind {
            name: name.to_string(),
            expected: kind(spec.queue.is_some()),
            found: kind(info.queue.is_some()),
        });
    }
    Ok(())
}

/// Whether a queue has the capacity asked for (after its element type matched).
fn check_capacity(name: &str, info: &HeaderInfo, spec: &RegionSpec) -> Result<()> {
    match (info.queue, spec.queue) {
        (Some(stored), Some(wanted))
            if wanted.capacity != QueueSpec::ANY_CAPACITY && stored.capacity != wanted.capacity =>
        {
            Err(Error::CapacityMismatch {
                name: name.to_string(),
                expected: wanted.capacity,
                found: stored.capacity,
            })
        }
        _ => Ok(()),
    }
}

/// The header fields of a new region of `spec` and the bytes that follow its header: the
/// encoded descriptor and, if `spec` has one, the versions table after it (where the layout
/// puts it, the gap zero).
fn header_info(spec: &RegionSpec, descriptor: &Descriptor) -> Option<(HeaderInfo, Vec<u8>)> {
    let mut encoded = descriptor.encode();
    let descriptor_len = encoded.len();
    let (size, align, fingerprint) = spec.stored_shape();
    let versions = spec.versions.as_deref().unwrap_or_default();
    let queue = spec.queue.map(|queue| QueueShape {
        mode: queue.mode,
        capacity: queue.capacity,
        element_size: size,
    });
    let payload_size = match queue {
        None => size,
        Some(queue) => queue.payload_size(align)?,
    };
    let layout = RegionLayout::with_versions(
        descriptor_len,
        versions.len(),
        payload_size,
        align,
        spec.in_place || queue.is_some(),
    )?;
    let mut flags = 0;
    if spec.in_place {
        flags |= FLAG_IN_PLACE;
    }
    if spec.notify_readers {
        flags |= FLAG_NOTIFY_READERS;
    }
    let info = HeaderInfo {
        format_version: descriptor.format_version(),
        flags,
        queue,
        fingerprint,
        layout,
        creator_pid: process::current_pid(),
        boot_id: process::boot_id(),
    };
    if let Some((offset, _)) = layout.versions() {
        encoded.resize(offset - HEADER_SIZE, 0);
        encoded.extend_from_slice(versions);
    }
    Some((info, encoded))
}

/// The header fields a new region of `spec` gets, and the bytes after its header (the encoded
/// descriptor, then the versions table if any: see [`header_info`]).
fn fresh_layout(name: &str, spec: &RegionSpec) -> Result<(HeaderInfo, Vec<u8>)> {
    let info = match &spec.stored {
        Some(stored) => header_info(spec, &stored.descriptor),
        None => header_info(spec, &Descriptor::of(spec.layout)),
    };
    info.ok_or_else(|| Error::Io {
        name: name.to_string(),
        operation: "lay out the region",
        source: io::Error::new(io::ErrorKind::InvalidInput, "the type is too large to map"),
    })
}

/// Writes the header (state "initialising", a fresh lock) and the descriptor (with the versions
/// table after it, if any: `descriptor` is [`fresh_layout`]'s bytes) into a mapping of at least
/// `info.layout.region_size` bytes.
///
/// # Safety
///
/// Nobody else uses the region's lock meanwhile, and no other process reads the descriptor
/// before the region is ready: the object is unnamed, or the caller holds its initialiser lock
/// (or a System V claim) and it is not ready.
unsafe fn write_header(
    name: &str,
    map: &Mapping,
    info: &HeaderInfo,
    descriptor: &[u8],
) -> Result<()> {
    let header = header_of(name, map)?;
    // SAFETY: the caller guarantees nobody else uses the lock.
    unsafe { header.initialise(info) }.map_err(|e| Error::io(name, "pthread_mutex_init", e))?;
    // SAFETY: HEADER_SIZE < region_size ≤ the mapped length (caller): within the mapping.
    let target = unsafe { map.ptr().add(HEADER_SIZE) };
    // SAFETY: the descriptor's bytes (and the versions table's after them) lie between
    // HEADER_SIZE and the payload offset, inside the mapping, so they do not overlap
    // `descriptor` (our own memory); no other process reads them before the region is ready
    // (caller); bytes need no alignment.
    unsafe { std::ptr::copy_nonoverlapping(descriptor.as_ptr(), target, descriptor.len()) };
    Ok(())
}

/// The location and settings of a unit test's scratch region: a name unique to the test and
/// this process, mode 0600, no queue.
#[cfg(test)]
pub(crate) fn scratch_spec(
    test: &str,
    layout: &'static TypeLayout,
    in_place: bool,
) -> (Location, RegionSpec) {
    let location = Location::Named(format!("unit-{test}-{}", std::process::id()));
    let spec = RegionSpec {
        layout,
        stored: None,
        in_place,
        notify_readers: false,
        mode: 0o600,
        open_timeout: Duration::from_secs(1),
        allow_other_owner: false,
        unlink_on_drop: false,
        wait_for_creation: None,
        queue: None,
        versions: None,
    };
    (location, spec)
}

/// Runs `init`, publishes "ready" and wakes openers waiting on the state.
///
/// # Safety
///
/// As [`Region::fill`]: nothing else uses the payload until this publishes it.
unsafe fn fill_and_publish_ready(region: &Region, init: Init<'_>) {
    // SAFETY: the caller's contract is `fill`'s.
    unsafe { region.fill(init) };
    let header = region.header();
    header.publish_ready();
    futex::wake_all(&header.state);
}

/// A fresh value region of `[u64; 32]`, every payload byte `fill`, unlinked at once: a fixture
/// for the unit tests of the layers above, which need a mapped region but no typed handle.
#[cfg(test)]
pub(crate) fn scratch_value(test: &str, fill: u8) -> Region {
    use crate::layout::ShmType;
    let (location, spec) = scratch_spec(test, &<[u64; 32]>::LAYOUT, false);
    let region = Region::create(&location, &spec, &mut |payload| payload.fill(fill)).unwrap();
    unlink(&location).unwrap();
    region
}

/// A fresh value region of `layout` whose versions table is `table` (encoded, or any bytes: a
/// forged table), every payload byte zero, named uniquely for the test and removed when the
/// handle is dropped: what a migration makes, for the tests of what reads the table.
#[cfg(test)]
pub(crate) fn scratch_with_versions(
    test: &str,
    layout: &'static TypeLayout,
    table: &[u8],
) -> Region {
    let (location, mut spec) = scratch_spec(test, layout, false);
    spec.unlink_on_drop = true;
    spec.versions = Some(table.into());
    Region::create(&location, &spec, &mut |payload| payload.fill(0)).unwrap()
}

/// Two handles (two mappings, one lock) of a fresh region of `layout`, in place or not, every
/// payload byte zero, unlinked at once (also when the second open fails): a read-write one and
/// one with `second` access. For the protocol tests that need a large payload, the in-place
/// mode, a read-only reader, or a second handle of the lock held by the same thread.
#[cfg(test)]
pub(crate) fn scratch_handles(
    test: &str,
    layout: &'static TypeLayout,
    in_place: bool,
    second: Access,
) -> (Region, Region) {
    let (location, spec) = scratch_spec(test, layout, in_place);
    let region = Region::create(&location, &spec, &mut |payload| payload.fill(0)).unwrap();
    let opened = Region::open(&location, &spec, second);
    unlink(&location).unwrap();
    (region, opened.unwrap())
}
