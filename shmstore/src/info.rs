//! Listing the regions on this host.

use std::sync::atomic::Ordering::Acquire;

use crate::error::{Error, Result};
use crate::header::{Descriptor, Header, HeaderInfo, HeaderState, HEADER_SIZE};
use crate::location::Location;
use crate::queue::{self, QueueMode};
use crate::region::descriptor_copy;
use crate::sys::object::{self, Access, Mapping};
use crate::sys::sysv;

/// What [`list`] reports about one region.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegionInfo {
    /// The region's name (without the leading `/`); for a System V segment, `sysv:0x…`.
    pub name: String,
    /// Where it lives: a POSIX name or a System V key (files are not searched for).
    pub location: Location,
    /// The stored type's name, from the region's descriptor.
    pub type_name: String,
    /// The size of the stored type: the value's, or one queue element's.
    pub size: usize,
    /// The last published version.
    pub version: u64,
    /// The pid of the process that created (or last re-initialised) it.
    /// Numbered in that process's PID namespace.
    pub creator_pid: u32,
    /// Whether an in-place region is poisoned.
    pub poisoned: bool,
    /// Whether it was created with `in_place(true)`.
    pub in_place: bool,
    /// `Some` for a [`ShmQueue`](crate::ShmQueue).
    pub queue: Option<QueueInfo>,
}

/// What [`list`] reports about a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueInfo {
    /// Its mode.
    pub mode: QueueMode,
    /// Its capacity.
    pub capacity: usize,
    /// How many elements it held when it was looked at.
    pub len: usize,
    /// Whether it is closed.
    pub closed: bool,
}

/// The shmstore regions on this host that this user can read: POSIX regions sorted by name,
/// then System V segments (from `/proc/sysvipc/shm`) sorted by key. Objects and segments of
/// other programs, unfinished regions and unreadable ones are skipped. File regions can be
/// anywhere, so they are not searched for: open one by its path with
/// [`Inspector::open`](crate::Inspector::open).
///
/// ```
/// # use shmstore::Shm;
/// # let name = format!("doc-list-{}", std::process::id());
/// let shm = Shm::<[u32; 4]>::options().unlink_on_drop(true).create(&name, [1, 2, 3, 4])?;
/// let info = shmstore::list()?.into_iter().find(|r| r.name == name).unwrap();
/// assert_eq!((info.type_name.as_str(), info.size), ("[u32; 4]", 16));
/// # Ok::<(), shmstore::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::Io`] if the shared-memory directory cannot be read.
pub fn list() -> Result<Vec<RegionInfo>> {
    let names = object::names().map_err(|e| Error::io("*", "read /dev/shm", e))?;
    let mut found: Vec<RegionInfo> = names
        .iter()
        .filter_map(|name| describe_named(name))
        .collect();
    // A kernel without System V IPC has no table: nothing to add.
    let mut segments = sysv::segments().unwrap_or_default();
    segments.sort_by_key(|segment| segment.key as u32);
    found.extend(
        segments
            .iter()
            .filter_map(|s| describe_segment(s.key, s.id)),
    );
    Ok(found)
}

/// Reads one object's header and descriptor without taking any lock; `None` if it is not a
/// ready shmstore region.
fn describe_named(name: &str) -> Option<RegionInfo> {
    crate::name::validate_name(name).ok()?;
    let file = object::open(&object::shm_path(name), Access::ReadOnly).ok()?;
    let stat = object::stat(&file).ok()?;
    if !stat.regular || stat.size < HEADER_SIZE as u64 {
        return None;
    }
    let map = Mapping::new(&file, usize::try_from(stat.size).ok()?, Access::ReadOnly).ok()?;
    describe(&Location::Named(name.to_string()), &map, stat.size)
}

fn describe_segment(key: i32, id: i32) -> Option<RegionInfo> {
    let stat = sysv::stat(id).ok()?;
    if stat.object.size < HEADER_SIZE as u64 {
        return None;
    }
    let map = sysv::attach(id, Access::ReadOnly).ok()?;
    describe(&Location::SysV(key), &map, stat.object.size)
}

/// Reads a mapped region's header and descriptor; `None` unless it is a ready region.
fn describe(location: &Location, map: &Mapping, size: u64) -> Option<RegionInfo> {
    // SAFETY: page-aligned, at least HEADER_SIZE bytes (callers check), alive for this
    // function; every field of `Header` is atomic.
    let header = unsafe { &*map.ptr().cast::<Header>() };
    let HeaderState::Ready(info) = header.check(size).ok()? else {
        return None;
    };
    let bytes = descriptor_copy(map.ptr(), info.layout.descriptor_len);
    let descriptor = Descriptor::decode(&bytes).ok()?;
    let queue = info.queue.map(|shape| {
        // SAFETY: the header was validated against the mapped size: the payload (64-byte
        // aligned) holds a queue of `shape.capacity` elements, starting with its control block;
        // `map` lives until the end of this function.
        unsafe { queue::peek(map.ptr().add(info.layout.payload_offset), shape.capacity) }
    });
    Some(summarize(
        location,
        descriptor.type_name,
        header,
        &info,
        queue,
    ))
}

/// A [`RegionInfo`] from a validated header; `queue` is a queue's `(len, closed)`.
pub(crate) fn summarize(
    location: &Location,
    type_name: String,
    header: &Header,
    info: &HeaderInfo,
    queue: Option<(usize, bool)>,
) -> RegionInfo {
    let queue = info
        .queue
        .zip(queue)
        .map(|(shape, (len, closed))| QueueInfo {
            mode: QueueMode::from_code(shape.mode),
            capacity: shape.capacity,
            len,
            closed,
        });
    RegionInfo {
        name: location.to_string(),
        location: location.clone(),
        type_name,
        size: info.type_size(),
        version: header.version.load(Acquire) & !1,
        creator_pid: info.creator_pid,
        poisoned: info.in_place() && header.poisoned.load(Acquire) != 0,
        in_place: info.in_place(),
        queue,
    }
}
