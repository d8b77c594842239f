//! The untyped region: how a named object is created, opened, validated, mapped and removed.
//!
//! # Creation protocol
//!
//! A creator makes an unnamed object (`O_TMPFILE` in `/dev/shm`), sizes it, writes the header
//! with state "initialising" and a fresh lock, takes `flock(LOCK_EX)` on it and only then links
//! it to its name. If the name is taken (`EEXIST`) another process won the race: the loser drops
//! its object and opens the winner's, so `init` runs exactly once. The winner runs `init`,
//! publishes state "ready" with a release store, wakes waiters and drops the `flock`.
//!
//! An opener that finds "initialising" (or an empty, all-zero object) probes with
//! `flock(LOCK_SH | LOCK_NB)`: refused means a live creator, so it sleeps on the state word and
//! re-checks, up to `open_timeout`; granted means the creator died (the kernel dropped its
//! lock). `open` then reports [`Error::Incomplete`]; `open_or_create` takes the exclusive lock,
//! re-checks that the state is still not ready and that the name still refers to the same
//! object, and initialises it in place.
//!
//! Every object is checked with `fstat` before it is mapped, and the header describes no byte
//! beyond the object's size, so no access can raise SIGBUS.

use std::fs::File;
use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU32, AtomicUsize};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::header::{
    check_type, Descriptor, Header, HeaderInfo, HeaderState, QueueShape, RegionLayout,
    FLAG_IN_PLACE, FLAG_NOTIFY_READERS, HEADER_SIZE, STATE_INITIALISING,
};
use crate::layout::TypeLayout;
use crate::name::validate_name;
use crate::snapshot::copy_atomic;
use crate::sys::object::{self, Access, FileLock, Mapping, ObjectStat};
use crate::sys::{futex, process};

/// How a region is to be created or opened: the type, the mode, and the opener's policies.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RegionSpec {
    pub(crate) layout: &'static TypeLayout,
    pub(crate) in_place: bool,
    pub(crate) notify_readers: bool,
    pub(crate) mode: u32,
    pub(crate) open_timeout: Duration,
    pub(crate) allow_other_owner: bool,
    pub(crate) unlink_on_drop: bool,
    /// `Some` for a queue: its mode and capacity (the element size is `layout`'s).
    pub(crate) queue: Option<QueueSpec>,
}

/// The creation settings of a queue region.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QueueSpec {
    /// `QUEUE_SPSC` or `QUEUE_MPMC`: used when creating, not checked when opening.
    pub(crate) mode: u32,
    pub(crate) capacity: usize,
}

/// Writes the initial payload into the bytes it is given (the working copy).
pub(crate) type Init<'a> = &'a mut dyn FnMut(&mut [u8]);

/// A mapped, validated region. Nothing here knows the payload's Rust type.
pub(crate) struct Region {
    name: String,
    object: ObjectStat,
    map: Option<Mapping>,
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
    // Kept open so the object cannot be replaced under us between checks; closed on drop.
    _file: File,
}

enum Found {
    Ready(Region),
    /// Empty, blank or initialising, and no live creator holds its `flock`.
    Abandoned(File, ObjectStat),
}

impl Region {
    /// Creates the region fully (value included) before naming it: `AlreadyExists` if the name
    /// is taken.
    pub(crate) fn create(name: &str, spec: &RegionSpec, init: Init<'_>) -> Result<Region> {
        validate_name(name)?;
        let (file, map, info) = build_unnamed(name, spec)?;
        let object = object::stat(&file).map_err(|e| Error::io(name, "fstat", e))?;
        let region = Region::assemble(name, file, object, (map, Access::ReadWrite), info, spec);
        region.fill(init);
        region.header().publish_ready();
        object::link(&region._file, name).map_err(|e| Error::io(name, "link the new object", e))?;
        Ok(region)
    }

    /// Opens an existing region, waiting up to `open_timeout` for a live creator to finish.
    pub(crate) fn open(name: &str, spec: &RegionSpec, access: Access) -> Result<Region> {
        validate_name(name)?;
        match find(name, spec, access, Typed::Yes)? {
            Found::Ready(region) => Ok(region),
            Found::Abandoned(..) => Err(Error::Incomplete {
                name: name.to_string(),
            }),
        }
    }

    /// Opens an existing region read-only whatever its kind and type (`spec.layout` is not
    /// compared): for inspection.
    pub(crate) fn open_untyped(name: &str, spec: &RegionSpec) -> Result<Region> {
        validate_name(name)?;
        match find(name, spec, Access::ReadOnly, Typed::No)? {
            Found::Ready(region) => Ok(region),
            Found::Abandoned(..) => Err(Error::Incomplete {
                name: name.to_string(),
            }),
        }
    }

    /// Opens the region, or creates it running `init` — in exactly one process of any number
    /// racing for the same name.
    pub(crate) fn open_or_create(name: &str, spec: &RegionSpec, init: Init<'_>) -> Result<Region> {
        validate_name(name)?;
        // A timeout too large to represent as a deadline means none.
        let deadline = Instant::now().checked_add(spec.open_timeout);
        loop {
            match find(name, spec, Access::ReadWrite, Typed::Yes) {
                Ok(Found::Ready(region)) => return Ok(region),
                Ok(Found::Abandoned(file, stat)) => {
                    if let Some(region) = reinitialise(name, spec, file, stat, init)? {
                        return Ok(region);
                    }
                }
                Err(Error::NotFound { .. }) => {
                    if let Some(region) = create_linked_then_init(name, spec, init)? {
                        return Ok(region);
                    }
                }
                Err(other) => return Err(other),
            }
            // Another process is creating or repairing it right now; look again.
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Err(Error::Timeout {
                    name: name.to_string(),
                    waiting_for: "its creation to settle (other processes kept creating or \
                                  repairing it)",
                    after: spec.open_timeout,
                });
            }
            std::thread::yield_now();
        }
    }

    fn assemble(
        name: &str,
        file: File,
        object: ObjectStat,
        (map, access): (Mapping, Access),
        info: HeaderInfo,
        spec: &RegionSpec,
    ) -> Region {
        Region {
            name: name.to_string(),
            object,
            map: Some(map),
            access,
            info,
            unlink_on_drop: spec.unlink_on_drop,
            holder: AtomicUsize::new(0),
            backed_off_for: AtomicU32::new(0),
            _file: file,
        }
    }

    /// Runs `init` on the working copy and copies it into the second copy, if any. Only for a
    /// region no other process uses yet (unnamed, or "initialising" under our exclusive
    /// `flock`).
    fn fill(&self, init: Init<'_>) {
        let size = self.info.layout.payload_size;
        // SAFETY: the working copy lies within the mapping (the layout was validated against
        // the mapped size) and no other process touches the payload before the region is
        // published (see the caller's contract), so this is the only reference to those bytes.
        let working = unsafe { std::slice::from_raw_parts_mut(self.working_copy(), size) };
        init(working);
        if let Some(second) = self.second_copy() {
            // SAFETY: both copies are `size` bytes within the mapping and do not overlap (the
            // layout places the second after the first); nobody else uses them yet.
            unsafe { std::ptr::copy_nonoverlapping(self.working_copy(), second, size) };
        }
    }

    /// The region's name.
    #[inline]
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The validated fixed fields of the header.
    #[inline]
    pub(crate) fn info(&self) -> &HeaderInfo {
        &self.info
    }

    /// Whether an in-place region is poisoned (never in the default mode).
    pub(crate) fn poisoned(&self) -> bool {
        self.in_place()
            && self
                .header()
                .poisoned
                .load(std::sync::atomic::Ordering::Acquire)
                != 0
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
        match &self.map {
            Some(map) => map.ptr(),
            None => unreachable!("the mapping is only taken in drop"),
        }
    }

    /// The header at offset 0.
    #[inline]
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: the mapping is page-aligned (≥ the header's alignment) and at least
        // HEADER_SIZE bytes long (checked before mapping); it lives as long as `self`; every
        // field of `Header` is an atomic or the pthread mutex's `UnsafeCell`, so shared access
        // concurrent with other processes' writes is sound.
        unsafe { &*self.base().cast::<Header>() }
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

    /// Takes the exclusive byte lock at `offset` of the object for this handle (see
    /// [`object::try_byte_lock`]); `Ok(false)` if another live handle holds it. Released when
    /// the handle is dropped or its process dies.
    pub(crate) fn try_claim_byte(&self, offset: u64) -> Result<bool> {
        object::try_byte_lock(&self._file, offset)
            .map_err(|e| Error::io(&self.name, "fcntl(F_OFD_SETLK)", e))
    }

    /// Whether another handle holds the byte lock at `offset`.
    pub(crate) fn byte_claimed_elsewhere(&self, offset: u64) -> Result<bool> {
        object::byte_locked_elsewhere(&self._file, offset)
            .map_err(|e| Error::io(&self.name, "fcntl(F_OFD_GETLK)", e))
    }

    /// A copy of the stored type descriptor's bytes, taken with atomic loads: a peer may
    /// rewrite them while we read (the decoder tolerates any bytes).
    pub(crate) fn descriptor_copy(&self) -> Vec<u8> {
        descriptor_copy(self.base(), self.info.layout.descriptor_len)
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        if self.unlink_on_drop {
            // Only if the name still refers to this handle's object: another process may have
            // removed it and created a new one meanwhile.
            if let Ok(now) = object::stat_name(&self.name) {
                if now.same_object(&self.object) {
                    let _ = object::unlink(&self.name);
                }
            }
        }
        if let Some(map) = self.map.take() {
            if self.holder.load(Relaxed) != 0 {
                // A guard was forgotten: glibc still lists the held mutex, so its memory must
                // stay mapped.
                map.leak();
            }
        }
    }
}

/// Copies `len` descriptor bytes from a mapping whose header was validated for them.
pub(crate) fn descriptor_copy(base: *const u8, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    // SAFETY: the descriptor starts at HEADER_SIZE (8-byte aligned in the page-aligned
    // mapping) and its `len` bytes lie within the mapping (validated by `Header::check`); the
    // loads are atomic, so a peer writing them concurrently is no data race; `out` has `len`
    // bytes.
    unsafe { copy_atomic(base.add(HEADER_SIZE), out.as_mut_ptr(), len) };
    out
}

/// Removes the region's name. Processes that have it open keep using it; the memory is freed
/// when the last one unmaps it.
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
/// [`Error::InvalidName`], [`Error::NotFound`], [`Error::PermissionDenied`] (the directory's
/// sticky bit: only the owner may remove it), [`Error::Io`].
pub fn unlink(name: &str) -> Result<()> {
    validate_name(name)?;
    object::unlink(name).map_err(|e| Error::io(name, "shm_unlink", e))
}

/// Opens `name`, checks owner and size, maps it and classifies it.
///
/// Only a look taken while no (re)initialiser is at work decides that an object is corrupt or
/// abandoned: a re-initialiser holds the exclusive `flock` while it writes the header, so an
/// opener that sees a bad or unfinished header probes with a shared `flock` and, if it gets
/// it, looks again before it decides.
fn find(name: &str, spec: &RegionSpec, access: Access, typed: Typed) -> Result<Found> {
    let started = Instant::now();
    loop {
        let file = object::open(name, access).map_err(|e| Error::io(name, "shm_open", e))?;
        let stat = object::stat(&file).map_err(|e| Error::io(name, "fstat", e))?;
        check_owner(name, spec, &stat)?;
        let (look, map) = look_at(name, &file, &stat, access)?;
        let look = match look {
            Look::Ready(info) => {
                let map = map.ok_or_else(|| Error::corrupt(name, "it could not be mapped"))?;
                let region = Region::assemble(name, file, stat, (map, access), info, spec);
                if typed == Typed::Yes {
                    check_kind(name, &region.info, spec)?;
                    check_type(name, &region.info, || region.descriptor_copy(), spec.layout)?;
                    check_capacity(name, &region.info, spec)?;
                }
                return Ok(Found::Ready(region));
            }
            other => other,
        };
        // Not ready, or apparently corrupt. A live (re)initialiser holds the exclusive flock.
        if object::try_file_lock(&file, FileLock::Shared)
            .map_err(|e| Error::io(name, "flock", e))?
        {
            // Nobody can start initialising while we hold this: look again, then decide.
            let fresh = object::stat(&file).map_err(|e| Error::io(name, "fstat", e));
            let verdict = fresh.and_then(|now| Ok((look_at(name, &file, &now, access)?.0, now)));
            object::file_unlock(&file);
            match verdict? {
                (Look::Ready(_), _) => continue,
                (Look::Corrupt(reason), _) => return Err(Error::corrupt(name, reason)),
                (Look::NotReady, now) if now == stat => return Ok(Found::Abandoned(file, now)),
                // It changed between the two looks: start over.
                (Look::NotReady, _) => continue,
            }
        }
        let elapsed = started.elapsed();
        if elapsed >= spec.open_timeout {
            return Err(Error::Timeout {
                name: name.to_string(),
                waiting_for: "its creator to finish initialising it",
                after: spec.open_timeout,
            });
        }
        let slice = (spec.open_timeout - elapsed).min(Duration::from_millis(10));
        match (&look, map) {
            (Look::NotReady, Some(map)) => {
                // SAFETY: the mapping is page-aligned, at least HEADER_SIZE bytes (`look_at`
                // maps nothing smaller) and alive in this arm; every `Header` field is atomic.
                let header = unsafe { &*map.ptr().cast::<Header>() };
                futex::wait(&header.state, STATE_INITIALISING, Some(slice));
            }
            _ => std::thread::sleep(slice.min(Duration::from_millis(1))),
        }
        // Start over: the creator may have resized the object.
    }
}

/// Whether `find` checks that the region holds the spec's kind and type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Typed {
    Yes,
    No,
}

/// What one look at an object's header found.
enum Look {
    Ready(HeaderInfo),
    /// Empty, blank or initialising.
    NotReady,
    Corrupt(String),
}

/// Classifies the object as it is now, mapping it when it is large enough to hold a header.
fn look_at(
    name: &str,
    file: &File,
    stat: &ObjectStat,
    access: Access,
) -> Result<(Look, Option<Mapping>)> {
    if !stat.regular {
        return Ok((Look::Corrupt("it is not a regular file".into()), None));
    }
    if stat.size == 0 {
        return Ok((Look::NotReady, None));
    }
    if stat.size < HEADER_SIZE as u64 {
        let reason = format!(
            "it is {} bytes long, shorter than its own {HEADER_SIZE}-byte header",
            stat.size
        );
        return Ok((Look::Corrupt(reason), None));
    }
    let Ok(len) = usize::try_from(stat.size) else {
        let reason = "it is larger than this process's address space".to_string();
        return Ok((Look::Corrupt(reason), None));
    };
    let map = Mapping::new(file, len, access).map_err(|e| Error::io(name, "mmap", e))?;
    // SAFETY: the mapping is page-aligned and at least HEADER_SIZE bytes (checked above); `map`
    // outlives this borrow; every `Header` field is atomic.
    let header = unsafe { &*map.ptr().cast::<Header>() };
    let look = match header.check(stat.size) {
        Ok(HeaderState::Ready(info)) => Look::Ready(info),
        Ok(HeaderState::Blank | HeaderState::Initialising) => Look::NotReady,
        Err(reason) => Look::Corrupt(reason),
    };
    Ok((look, Some(map)))
}

fn check_owner(name: &str, spec: &RegionSpec, stat: &ObjectStat) -> Result<()> {
    let me = process::effective_uid();
    if stat.uid != me && !spec.allow_other_owner {
        return Err(Error::PermissionDenied {
            name: name.to_string(),
            detail: format!(
                "it belongs to uid {} and this process runs as uid {me}; anyone could plant a \
                 region under a name you use, so opening another user's region needs \
                 `allow_other_owner(true)` on the options",
                stat.uid
            ),
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
        (Some(stored), Some(wanted)) if stored.capacity != wanted.capacity => {
            Err(Error::CapacityMismatch {
                name: name.to_string(),
                expected: wanted.capacity,
                found: stored.capacity,
            })
        }
        _ => Ok(()),
    }
}

fn header_info(spec: &RegionSpec, descriptor_len: usize) -> Option<HeaderInfo> {
    let queue = spec.queue.map(|queue| QueueShape {
        mode: queue.mode,
        capacity: queue.capacity,
        element_size: spec.layout.size(),
    });
    let payload_size = match queue {
        None => spec.layout.size(),
        Some(queue) => queue.payload_size(spec.layout.align())?,
    };
    let layout = RegionLayout::new(
        descriptor_len,
        payload_size,
        spec.layout.align(),
        spec.in_place || queue.is_some(),
    )?;
    let mut flags = 0;
    if spec.in_place {
        flags |= FLAG_IN_PLACE;
    }
    if spec.notify_readers {
        flags |= FLAG_NOTIFY_READERS;
    }
    Some(HeaderInfo {
        flags,
        queue,
        fingerprint: spec.layout.fingerprint(),
        layout,
        creator_pid: process::current_pid(),
        boot_id: process::boot_id(),
    })
}

/// Sizes, maps and writes the header and descriptor of `file` (state "initialising").
///
/// The caller guarantees nobody else uses the object's lock: it is unnamed, or the caller holds
/// its exclusive `flock` and it is not ready.
fn write_fresh(name: &str, spec: &RegionSpec, file: &File) -> Result<(Mapping, HeaderInfo)> {
    let descriptor = Descriptor::of(spec.layout).encode();
    let info = header_info(spec, descriptor.len()).ok_or_else(|| Error::Io {
        name: name.to_string(),
        operation: "lay out the region",
        source: io::Error::new(io::ErrorKind::InvalidInput, "the type is too large to map"),
    })?;
    let size = info.layout.region_size;
    object::set_len(file, size as u64).map_err(|e| Error::io(name, "ftruncate", e))?;
    let map =
        Mapping::new(file, size, Access::ReadWrite).map_err(|e| Error::io(name, "mmap", e))?;
    // SAFETY: the mapping is page-aligned and `size ≥ HEADER_SIZE` bytes long; it outlives
    // this borrow; every field of `Header` is atomic.
    let header = unsafe { &*map.ptr().cast::<Header>() };
    // SAFETY: the caller guarantees nobody else uses the lock (see above).
    unsafe { header.initialise(&info) }.map_err(|e| Error::io(name, "pthread_mutex_init", e))?;
    // SAFETY: the descriptor's bytes lie between HEADER_SIZE and the payload offset, inside the
    // mapping; no other process reads them before the region is ready.
    unsafe {
        std::ptr::copy_nonoverlapping(
            descriptor.as_ptr(),
            map.ptr().add(HEADER_SIZE),
            descriptor.len(),
        )
    };
    Ok((map, info))
}

/// A new unnamed object with its header written, with the spec's mode.
fn build_unnamed(name: &str, spec: &RegionSpec) -> Result<(File, Mapping, HeaderInfo)> {
    let file = object::create_unnamed(spec.mode).map_err(|e| Error::io(name, "create", e))?;
    let (map, info) = write_fresh(name, spec, &file)?;
    Ok((file, map, info))
}

/// Creates and names an object in state "initialising" under our `flock`, then runs `init`.
/// `None` if another process took the name first.
fn create_linked_then_init(
    name: &str,
    spec: &RegionSpec,
    init: Init<'_>,
) -> Result<Option<Region>> {
    let (file, map, info) = build_unnamed(name, spec)?;
    if !object::try_file_lock(&file, FileLock::Exclusive)
        .map_err(|e| Error::io(name, "flock", e))?
    {
        unreachable_lock(name)?;
    }
    match object::link(&file, name) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(None),
        Err(e) => return Err(Error::io(name, "link the new object", e)),
    }
    let object = object::stat(&file).map_err(|e| Error::io(name, "fstat", e))?;
    let region = Region::assemble(name, file, object, (map, Access::ReadWrite), info, spec);
    finish(&region, init);
    Ok(Some(region))
}

/// Runs `init`, publishes "ready", wakes openers waiting on the state and drops the `flock`.
fn finish(region: &Region, init: Init<'_>) {
    region.fill(init);
    let header = region.header();
    header.publish_ready();
    futex::wake_all(&header.state);
    object::file_unlock(&region._file);
}

/// Initialises an abandoned object in place, under its exclusive `flock`. `None` if another
/// process got there first or the name now refers to something else.
fn reinitialise(
    name: &str,
    spec: &RegionSpec,
    file: File,
    seen: ObjectStat,
    init: Init<'_>,
) -> Result<Option<Region>> {
    if !object::try_file_lock(&file, FileLock::Exclusive)
        .map_err(|e| Error::io(name, "flock", e))?
    {
        return Ok(None);
    }
    // Under the lock: is it still the object under the name, and still not ready?
    match object::stat_name(name) {
        Ok(now) if now.same_object(&seen) => {}
        _ => return Ok(None),
    }
    let now = object::stat(&file).map_err(|e| Error::io(name, "fstat", e))?;
    // Under the lock nobody else writes the header: only an empty, blank or unfinished object
    // is ours to take over; anything else is left alone.
    match look_at(name, &file, &now, Access::ReadWrite)?.0 {
        Look::NotReady => {}
        Look::Ready(_) => return Ok(None),
        Look::Corrupt(reason) => return Err(Error::corrupt(name, reason)),
    }
    // This process creates the region now: give it the mode asked for, as a new object gets
    // (an abandoned object may have come with any mode). Another user's object (accepted with
    // `allow_other_owner`) keeps its owner's mode.
    if now.uid == process::effective_uid() {
        object::set_mode(&file, spec.mode).map_err(|e| Error::io(name, "fchmod", e))?;
    }
    let (map, info) = write_fresh(name, spec, &file)?;
    let object = object::stat(&file).map_err(|e| Error::io(name, "fstat", e))?;
    let region = Region::assemble(name, file, object, (map, Access::ReadWrite), info, spec);
    finish(&region, init);
    Ok(Some(region))
}

/// A fresh unnamed file cannot be locked by anyone else; report it as an error rather than
/// proceed without the lock if the kernel ever says otherwise.
fn unreachable_lock(name: &str) -> Result<()> {
    Err(Error::Io {
        name: name.to_string(),
        operation: "flock a new object",
        source: io::Error::new(
            io::ErrorKind::WouldBlock,
            "a new unnamed object was already locked",
        ),
    })
}
