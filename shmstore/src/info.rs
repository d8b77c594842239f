//! Listing the regions on this host.

use crate::error::{Error, Result};
use crate::format::{
    self, descriptor_copy, Descriptor, Header, HeaderInfo, HeaderState, LoadAcquire, QueueMode,
    SharedBytes, HEADER_SIZE,
};
use crate::location::Location;
use crate::look;
use crate::name::validate_name;
use crate::snapshot::version_from_word;
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
    /// The last published version: the number of commits (and rollbacks) since the region
    /// was created, as [`Shm::version`](crate::Shm::version) counts them; 0 for a queue.
    pub version: u64,
    /// The pid of the process that created (or last re-initialised, or migrated) it.
    /// Numbered in that process's PID namespace.
    pub creator_pid: u32,
    /// For a System V segment, the user that created the segment (`cuid`), which can differ
    /// from its owner: the owner can be changed with `shmctl(IPC_SET)`, the creator cannot.
    /// `None` for a POSIX region (a file's owner is its creator).
    pub creator_uid: Option<u32>,
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
    /// Whether it is a [`ShmChannel`](crate::ShmChannel): then `capacity` is its ring's size
    /// and `len` the bytes its messages take (record headers and padding included).
    pub byte_channel: bool,
}

/// The shmstore regions on this host that this user can read: POSIX regions sorted by name,
/// then System V segments (from `/proc/sysvipc/shm`) sorted by key. Objects and segments of
/// other programs, unfinished regions and unreadable ones are skipped. File regions can be
/// anywhere, so they are not searched for: open one by its path with
/// [`Inspector::open`](crate::inspect::Inspector::open).
///
/// Listing never waits and never crashes, whatever other processes do to the objects it
/// looks at: POSIX objects are opened without blocking or following links and read with
/// `pread`, never mapped, so one that another process shrinks, swaps for a FIFO or forges is
/// skipped, not a SIGBUS or a hang. A region whose creator is still initialising it is skipped
/// at once, and only the type name is read from a descriptor (at most
/// 64 KiB of it), so the work per object is bounded. System V segments cannot shrink: they are
/// attached read-only after `IPC_STAT` checked their size.
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
    let mut found = list_named(|_| true)?;
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

/// The POSIX regions whose name `wanted` accepts, sorted by name. The name is checked before
/// anything is opened: objects of other names are never touched.
pub(crate) fn list_named(wanted: impl Fn(&str) -> bool) -> Result<Vec<RegionInfo>> {
    let names = object::names().map_err(|e| Error::io("*", "read /dev/shm", e))?;
    Ok(names
        .iter()
        .filter(|name| wanted(name) && validate_name(name).is_ok())
        .filter_map(|name| describe_named(name))
        .collect())
}

/// How much of a descriptor a listing reads: only the type name is needed, which comes first.
const LISTED_DESCRIPTOR_BYTES: usize = 64 << 10;

/// Reads one object's header and type name with `pread`, without waiting or locking
/// anything; `None` if it is not a ready shmstore region (or stopped being one meanwhile).
fn describe_named(name: &str) -> Option<RegionInfo> {
    let looked = look::look_if_ready(name, &object::shm_path(name)).ok()??;
    let prefix = looked.descriptor(name, LISTED_DESCRIPTOR_BYTES).ok()?;
    let type_name = Descriptor::decode_type_name(&prefix).ok()?;
    let queue = match looked.info.queue {
        None => None,
        Some(shape) => {
            let control = looked.queue_control(name).ok()?;
            format::peek(
                control.bytes(),
                format::counted_capacity(&type_name, shape.capacity),
            )
        }
    };
    let location = Location::Named(name.to_string());
    Some(summarize(
        &location,
        type_name,
        looked.header.header(),
        &looked.info,
        queue,
        None,
    ))
}

/// A System V segment cannot shrink (its size is fixed at creation, and checked here with
/// `IPC_STAT` before `shmat`), so it is attached read-only and read in place.
fn describe_segment(key: i32, id: i32) -> Option<RegionInfo> {
    let stat = sysv::stat(id).ok()?;
    if stat.object.size < HEADER_SIZE as u64 {
        return None;
    }
    let map = sysv::attach(id, Access::ReadOnly).ok()?;
    let mut info = describe(&Location::SysV(key), &map, stat.object.size)?;
    info.creator_uid = Some(stat.creator_uid);
    Some(info)
}

/// Reads a mapped region's header and descriptor; `None` unless it is a ready region.
fn describe(location: &Location, map: &Mapping, size: u64) -> Option<RegionInfo> {
    let bytes = SharedBytes::of_mapping(map);
    let header = bytes.header()?;
    let HeaderState::Ready(info) = header.check(size).ok()? else {
        return None;
    };
    let prefix_len = info.layout.descriptor_len.min(LISTED_DESCRIPTOR_BYTES);
    let prefix = descriptor_copy(bytes, prefix_len)?;
    let type_name = Descriptor::decode_type_name(&prefix).ok()?;
    let queue = match info.queue {
        None => None,
        Some(shape) => {
            let payload = bytes.range(info.layout.payload_offset, info.layout.payload_size)?;
            let capacity = format::counted_capacity(&type_name, shape.capacity);
            Some(format::peek(payload, capacity)?)
        }
    };
    Some(summarize(location, type_name, header, &info, queue, None))
}

/// A [`RegionInfo`] from a validated header; `queue` is a queue's `(len, closed)`,
/// `creator_uid` a System V segment's `cuid`.
pub(crate) fn summarize(
    location: &Location,
    type_name: String,
    header: &Header,
    info: &HeaderInfo,
    queue: Option<(usize, bool)>,
    creator_uid: Option<u32>,
) -> RegionInfo {
    let queue = info
        .queue
        .zip(queue)
        .map(|(shape, (len, closed))| QueueInfo {
            mode: QueueMode::from_code(shape.mode),
            capacity: format::counted_capacity(&type_name, shape.capacity),
            len,
            closed,
            byte_channel: format::is_channel_type(&type_name),
        });
    RegionInfo {
        name: location.to_string(),
        location: location.clone(),
        type_name,
        size: info.type_size(),
        version: version_from_word(header.version.load_acquire()),
        creator_pid: info.creator_pid,
        creator_uid,
        poisoned: info.in_place() && header.poisoned.load_acquire() != 0,
        in_place: info.in_place(),
        queue,
    }
}
