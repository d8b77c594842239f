//! Finding regions and telling shmstore regions from everything else, in the three places a
//! region can live: `/dev/shm` (POSIX names), regular files, and System V segments.
//!
//! Only an object that starts with the magic `SHMSTORE` is handed to [`Inspector::open`]. The
//! library treats an empty or all-zero object as a region whose creator died before writing
//! it (`Error::Incomplete`), which is right for a name it was asked to open, but `list`, `rm`
//! and `gc` walk objects that other programs own: an empty object there is as likely another
//! program's segment that has not been sized yet. Checking the magic first keeps such objects
//! `foreign`, never probed with a lock, never mapped, never removed without `--force`. The
//! same holds for a file given by its path.
//!
//! Looking never crashes or hangs, whatever other processes do to the objects: each object is
//! opened without blocking or following a link, judged on the descriptor that was opened, and
//! read with `pread` ([`Inspector::read_head`], then [`Inspector`], which never maps a POSIX
//! object or a file), so one that another process shrinks, swaps for a FIFO or forges is
//! reported, not a SIGBUS or a hang. Walking many objects ([`Look::Quick`]) bounds the work per
//! object: no waiting for a creator that is still initialising, and no descriptor larger than
//! [`LISTED_DESCRIPTOR_LIMIT`] is read.
//!
//! A System V segment cannot be read without attaching it, which only the library does: a
//! segment is classified by what [`Inspector::open`] says (another program's header is
//! `Error::Corrupt`, so foreign). A segment that is not ready yet is `incomplete` when the
//! process that should initialise it is gone and `initialising` while it lives; `rm` removes
//! the first (the library's verdict: an abandoned region) and refuses the second without
//! `--force`, since a live program's freshly created, still all-zero segment looks the same.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use shmstore::inspect::Inspector;
use shmstore::{Error, Location};

use crate::failure::{Failure, Outcome};

/// Where POSIX shared-memory objects live on Linux: `shm_open("/NAME")` is `/dev/shm/NAME`.
pub const SHM_DIR: &str = "/dev/shm";

/// The kernel's table of System V shared-memory segments.
const SYSV_TABLE: &str = "/proc/sysvipc/shm";

/// The first 8 bytes of every region (FORMAT.md, header offset 0).
const MAGIC: &[u8; 8] = b"SHMSTORE";
/// FORMAT.md: `creator_pid`, 4 bytes at header offset 80, native byte order.
const CREATOR_PID_OFFSET: usize = 80;
/// FORMAT.md: `descriptor_len`, 8 bytes at header offset 72, native byte order.
const DESCRIPTOR_LEN_OFFSET: usize = 72;

/// The largest type descriptor a walk over many objects reads (a real type's is a few KiB; a
/// forged header can claim 16 MiB, and fifty of those must not make `list` slow).
pub const LISTED_DESCRIPTOR_LIMIT: u64 = 1 << 20;

/// How much work classifying one object may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// Walking many objects (`list`, `gc`): a region whose creator is still initialising it
    /// is reported at once, and a descriptor over [`LISTED_DESCRIPTOR_LIMIT`] is not read.
    Quick,
    /// One object the user named: wait up to a second for its creator, read it whole.
    Thorough,
}

/// What an object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A single value (`Shm`).
    Value,
    /// A queue (`ShmQueue`).
    Queue,
    /// Not a shmstore region: another program's object (or an unreadable format).
    Foreign,
    /// A region whose creator died before finishing it.
    Incomplete,
    /// A region whose creator is still initialising it.
    Initialising,
    /// This user may not read it.
    Unreadable,
}

impl Kind {
    /// The word `list` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Value => "value",
            Kind::Queue => "queue",
            Kind::Foreign => "foreign",
            Kind::Incomplete => "incomplete",
            Kind::Initialising => "initialising",
            Kind::Unreadable => "unreadable",
        }
    }

    /// Whether the object is a shmstore region (finished or not).
    pub fn is_region(self) -> bool {
        matches!(
            self,
            Kind::Value | Kind::Queue | Kind::Incomplete | Kind::Initialising
        )
    }
}

/// Which kind of shared memory a region lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A POSIX shared-memory object, `/dev/shm/NAME`.
    Posix,
    /// A regular file.
    File,
    /// A System V segment.
    SysV,
}

impl Backend {
    /// The backend of a location.
    pub fn of(location: &Location) -> Backend {
        match location {
            Location::Named(_) => Backend::Posix,
            Location::File(_) => Backend::File,
            Location::SysV(_) => Backend::SysV,
        }
    }

    /// The word `list` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Posix => "posix",
            Backend::File => "file",
            Backend::SysV => "sysv",
        }
    }
}

/// What `stat` (or, for a segment, the kernel's segment table) says about the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Object {
    /// Its size in bytes.
    pub size: u64,
    /// Permission bits (`0o600`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Identifies this object, not just its name (`gc` and `rm` check it has not been
    /// replaced): the device and inode of a file, the id of a System V segment.
    pub identity: (u64, u64),
}

impl Object {
    /// What is shown for an object that could not even be looked at.
    const UNKNOWN: Object = Object {
        size: 0,
        mode: 0,
        uid: 0,
        identity: (0, 0),
    };
}

/// One object, classified.
pub struct Entry {
    /// The location as the command writes it: the name (without `/dev/shm/`), the path, or
    /// `sysv:0x…`.
    pub name: String,
    /// Where it is.
    pub location: Location,
    /// What it is.
    pub kind: Kind,
    /// What `stat` said.
    pub object: Object,
    /// An open read-only view, for values and queues.
    pub view: Option<Inspector>,
    /// From the header: for values, queues and incomplete regions (for a segment that is not
    /// ready, the process that created the segment).
    pub creator_pid: Option<u32>,
    /// For a System V segment, the user that created it (`cuid`), which `IPC_SET` cannot
    /// change, unlike the owner; `None` for a file (its owner created it).
    pub creator_uid: Option<u32>,
    /// Why it is foreign, incomplete, initialising or unreadable, in a few words.
    pub reason: Option<String>,
    /// The same as a whole message for stderr: what it is and what to do.
    pub note: Option<String>,
}

/// The path of a region's object.
pub fn path_of(name: &str) -> PathBuf {
    PathBuf::from(SHM_DIR).join(name)
}

/// Every object in `/dev/shm`, sorted by name. Objects that disappear while we look are left
/// out.
pub fn all() -> Outcome<Vec<Entry>> {
    let dir = fs::read_dir(SHM_DIR)
        .map_err(|e| Failure::Message(format!("cannot read {SHM_DIR}: {e}")))?;
    let mut names: Vec<String> = dir
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names
        .iter()
        .filter_map(|name| classify(name, Look::Quick))
        .collect())
}

/// The System V segments that are ready shmstore regions (those [`shmstore::list`] reports),
/// sorted by key. Segments of other programs and unfinished ones are not listed: unlike a
/// file in `/dev/shm`, a segment cannot be told apart without attaching it.
pub fn segment_regions() -> Outcome<Vec<Entry>> {
    let found = shmstore::list()?;
    Ok(found
        .iter()
        .filter(|info| matches!(info.location, Location::SysV(_)))
        .filter_map(|info| classify_at(&info.location, Look::Quick))
        .filter(|entry| entry.kind.is_region())
        .collect())
}

/// Classifies the object at any location; `None` if there is none.
pub fn classify_at(location: &Location, look: Look) -> Option<Entry> {
    match location {
        Location::Named(name) => classify(name, look),
        Location::File(path) => classify_object(location, path, look),
        Location::SysV(key) => classify_segment(location, *key, look),
    }
}

/// Classifies the object `/dev/shm/NAME`; `None` if there is no object of that name.
pub fn classify(name: &str, look: Look) -> Option<Entry> {
    classify_object(&Location::Named(name.to_string()), &path_of(name), look)
}

/// Classifies a POSIX object or a file at `path`.
fn classify_object(location: &Location, path: &Path, look: Look) -> Option<Entry> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            // Not even `stat` works: report what we can, touch nothing.
            let note = format!("cannot stat {}: {e}", path.display());
            return Some(Entry::other(
                location,
                Kind::Unreadable,
                Object::UNKNOWN,
                e.to_string(),
                note,
            ));
        }
    };
    let object = Object {
        size: meta.len(),
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        identity: (meta.dev(), meta.ino()),
    };
    let foreign = |why: &str| {
        Some(Entry::other(
            location,
            Kind::Foreign,
            object,
            why.to_string(),
            foreign_note(location, why),
        ))
    };
    if !meta.file_type().is_file() {
        return foreign("it is not a regular file");
    }
    if let Location::Named(name) = location {
        if shmstore::validate_name(name).is_err() {
            return foreign("its name is not a shmstore region name");
        }
    }
    // Read from the descriptor that was opened, which may no longer be what `stat` saw.
    let head = match Inspector::read_head(location) {
        Ok(head) => head,
        Err(Error::NotFound { .. }) => return None,
        Err(Error::Corrupt { reason, .. }) => return foreign(&reason),
        Err(e) => {
            let note = format!("cannot read {}: {e}", path.display());
            return Some(Entry::other(
                location,
                Kind::Unreadable,
                object,
                e.to_string(),
                note,
            ));
        }
    };
    if head.get(..MAGIC.len()) != Some(MAGIC.as_slice()) {
        return foreign("it does not start with the magic SHMSTORE");
    }
    if look == Look::Quick {
        if let Some(len) = descriptor_len_from(&head).filter(|&n| n > LISTED_DESCRIPTOR_LIMIT) {
            let why = format!(
                "its type descriptor is {len} bytes, more than a listing reads \
                 ({LISTED_DESCRIPTOR_LIMIT})"
            );
            let note = format!("`{location}`: {why}; `shmstore inspect {location}` reads it");
            return Some(Entry::other(location, Kind::Unreadable, object, why, note));
        }
    }
    let mut entry = opened(location, object, look)?;
    if entry.kind == Kind::Incomplete || entry.kind == Kind::Initialising {
        // The library does not say who the creator was; the header we read does.
        entry.creator_pid = creator_pid_from(&head);
    }
    Some(entry)
}

/// Classifies the System V segment with `key`; `None` if there is none.
fn classify_segment(location: &Location, key: i32, look: Look) -> Option<Entry> {
    // The table may hide segments this user cannot read: the library then says why.
    let segment = segments().into_iter().find(|s| s.key == key);
    let object = segment.as_ref().map_or(Object::UNKNOWN, |s| s.object);
    let mut entry = opened(location, object, look)?;
    entry.creator_uid = segment.as_ref().map(|s| s.creator_uid);
    if entry.kind == Kind::Incomplete || entry.kind == Kind::Initialising {
        // Its header is not readable here: the segment's creator is the best guess.
        entry.creator_pid = segment.map(|s| s.creator_pid).filter(|&pid| pid != 0);
    }
    Some(entry)
}

/// Opens a location read-only with the library and classifies it by what that says; `None`
/// if it does not exist (any more).
fn opened(location: &Location, object: Object, look: Look) -> Option<Entry> {
    let view = match look {
        Look::Quick => Inspector::open_now(location.clone()),
        Look::Thorough => Inspector::open(location.clone()),
    };
    match view {
        Ok(view) => {
            let info = view.info();
            Some(Entry {
                name: location.to_string(),
                location: location.clone(),
                kind: if info.queue.is_some() {
                    Kind::Queue
                } else {
                    Kind::Value
                },
                object,
                creator_pid: Some(info.creator_pid),
                creator_uid: None,
                view: Some(view),
                reason: None,
                note: None,
            })
        }
        Err(Error::NotFound { .. }) => None,
        Err(e) => {
            let (kind, reason) = match &e {
                Error::Corrupt { reason, .. } => (Kind::Foreign, reason.clone()),
                Error::Incomplete { .. } => (
                    Kind::Incomplete,
                    "its creator died before initialising it".to_string(),
                ),
                Error::Timeout { .. } => (
                    Kind::Initialising,
                    "its creator is still initialising it".to_string(),
                ),
                _ => (Kind::Unreadable, e.to_string()),
            };
            let note = match (&e, location) {
                // The library's message suggests `shmstore rm`, which refuses a foreign
                // segment without --force: say what does remove it.
                (Error::Corrupt { .. }, Location::SysV(_)) => foreign_note(location, &reason),
                _ => e.to_string(),
            };
            Some(Entry::other(location, kind, object, reason, note))
        }
    }
}

/// What to tell the user about an object that is not a region.
fn foreign_note(location: &Location, why: &str) -> String {
    match location {
        Location::Named(name) => format!(
            "`{name}` in {SHM_DIR} is not a shmstore region: {why}; `shmstore list` shows it as \
             foreign, and `shmstore rm --force {name}` removes it if no program uses it"
        ),
        Location::SysV(_) => format!(
            "`{location}` is not a shmstore region: {why}; `shmstore rm --force {location}` \
             removes the segment if no program uses it"
        ),
        Location::File(_) => format!("`{location}` is not a shmstore region: {why}"),
    }
}

/// The region a command was given (a location as [`Location::parse`] reads it), or an
/// error that says what is there instead.
pub fn region(text: &str) -> Outcome<(Entry, Inspector)> {
    let location = Location::parse(text);
    location.validate()?;
    let Some(mut entry) = classify_at(&location, Look::Thorough) else {
        return Err(Error::NotFound {
            name: location.to_string(),
        }
        .into());
    };
    match (entry.kind, entry.view.take()) {
        (Kind::Value | Kind::Queue, Some(view)) => Ok((entry, view)),
        (kind, _) => {
            Err(Failure::Message(entry.note.unwrap_or_else(|| {
                format!("`{location}` is {}", kind.as_str())
            })))
        }
    }
}

impl Entry {
    fn other(
        location: &Location,
        kind: Kind,
        object: Object,
        reason: String,
        note: String,
    ) -> Entry {
        Entry {
            name: location.to_string(),
            location: location.clone(),
            kind,
            object,
            view: None,
            creator_pid: None,
            creator_uid: None,
            reason: Some(reason),
            note: Some(note),
        }
    }

    /// Which kind of shared memory it is in.
    pub fn backend(&self) -> Backend {
        Backend::of(&self.location)
    }
}

/// What identifies the object at `location` now (see [`Object::identity`]); `None` if there
/// is none.
pub fn identity_of(location: &Location) -> Option<(u64, u64)> {
    match location {
        Location::Named(name) => metadata_identity(&path_of(name)),
        Location::File(path) => metadata_identity(path),
        Location::SysV(key) => Some(
            segments()
                .into_iter()
                .find(|s| s.key == *key)
                .map_or(Object::UNKNOWN.identity, |s| s.object.identity),
        ),
    }
}

fn metadata_identity(path: &Path) -> Option<(u64, u64)> {
    match fs::symlink_metadata(path) {
        Ok(meta) => Some((meta.dev(), meta.ino())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(_) => Some(Object::UNKNOWN.identity),
    }
}

fn descriptor_len_from(head: &[u8]) -> Option<u64> {
    let bytes = head.get(DESCRIPTOR_LEN_OFFSET..DESCRIPTOR_LEN_OFFSET + 8)?;
    Some(u64::from_ne_bytes(bytes.try_into().ok()?))
}

fn creator_pid_from(head: &[u8]) -> Option<u32> {
    let bytes = head.get(CREATOR_PID_OFFSET..CREATOR_PID_OFFSET + 4)?;
    let pid = u32::from_ne_bytes(bytes.try_into().ok()?);
    (pid != 0).then_some(pid)
}

/// One row of the kernel's System V segment table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Its key (`sysv:0x…`).
    pub key: i32,
    /// Its size, mode, owner and id.
    pub object: Object,
    /// The process that created the segment (`shm_cpid`).
    pub creator_pid: u32,
    /// The user that created the segment (`cuid`).
    pub creator_uid: u32,
    /// How many attachments it has (`shm_nattch`).
    pub attached: u64,
}

/// Every System V segment the kernel shows this user in `/proc/sysvipc/shm`; none if the
/// table cannot be read (a kernel without System V IPC).
pub fn segments() -> Vec<Segment> {
    fs::read_to_string(SYSV_TABLE)
        .map(|text| parse_segments(&text))
        .unwrap_or_default()
}

/// Parses `/proc/sysvipc/shm`: a title line, then `key shmid perms size cpid lpid nattch uid
/// …` per segment, the key and ids in decimal and the permissions in octal.
fn parse_segments(text: &str) -> Vec<Segment> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let key = cols.first()?.parse::<i32>().ok()?;
            let id = cols.get(1)?.parse::<u64>().ok()?;
            let perms = u32::from_str_radix(cols.get(2)?, 8).ok()?;
            let size = cols.get(3)?.parse::<u64>().ok()?;
            let creator_pid = cols.get(4)?.parse::<u32>().ok()?;
            let attached = cols.get(6)?.parse::<u64>().ok()?;
            let uid = cols.get(7)?.parse::<u32>().ok()?;
            let creator_uid = cols.get(9)?.parse::<u32>().ok()?;
            Some(Segment {
                key,
                object: Object {
                    size,
                    // Beside the permission bits the kernel shows SHM_DEST and SHM_LOCKED.
                    mode: perms & 0o777,
                    uid,
                    identity: (u64::MAX, id),
                },
                creator_pid,
                creator_uid,
                attached,
            })
        })
        .collect()
}

/// User names from `/etc/passwd`, looked up once.
pub struct Users {
    names: HashMap<u32, String>,
}

impl Users {
    /// Reads `/etc/passwd`; without it every owner shows as a uid.
    pub fn load() -> Users {
        let text = fs::read_to_string("/etc/passwd").unwrap_or_default();
        let names = text
            .lines()
            .filter_map(|line| {
                let mut parts = line.split(':');
                let name = parts.next()?;
                let uid = parts.nth(1)?.parse().ok()?;
                Some((uid, name.to_string()))
            })
            .collect();
        Users { names }
    }

    /// The user's name, or the uid as text.
    pub fn name(&self, uid: u32) -> String {
        self.names
            .get(&uid)
            .cloned()
            .unwrap_or_else(|| uid.to_string())
    }
}

/// `0600`.
pub fn mode_text(mode: u32) -> String {
    format!("{mode:04o}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kernels_segment_table() {
        // As Linux 6.x prints it: key and ids in decimal, permissions in octal.
        let text = "       key      shmid perms                  size  cpid  lpid nattch   uid   \
                    gid  cuid  cgid      atime      dtime      ctime                   rss       \
                    swap\n 1592590337         12  1600                  4096   811   812      1  \
                    1000  1000  1000  1000 1700000000          0 1700000000                  4096 \
                    0\n-559038737 13 644 712 900 0 0 0 0 0 0 0 0 0 0 0\nnot a row\n";
        let segments = parse_segments(text);
        assert_eq!(segments.len(), 2);
        assert_eq!(segments[0].key, 0x5eed0001);
        assert_eq!(segments[0].object.identity, (u64::MAX, 12));
        // SHM_DEST (01000) is not a permission bit.
        assert_eq!(segments[0].object.mode, 0o600);
        assert_eq!(segments[0].object.size, 4096);
        assert_eq!(segments[0].object.uid, 1000);
        assert_eq!(segments[0].creator_uid, 1000);
        assert_eq!((segments[0].creator_pid, segments[0].attached), (811, 1));
        assert_eq!(segments[1].key, 0xdeadbeef_u32 as i32);
        assert_eq!(segments[1].object.mode, 0o644);
    }

    #[test]
    fn every_location_has_its_backend() {
        assert_eq!(Backend::of(&Location::parse("a.b")).as_str(), "posix");
        assert_eq!(Backend::of(&Location::parse("./a")).as_str(), "file");
        assert_eq!(
            Backend::of(&Location::parse("sysv:0x5eed0001")).as_str(),
            "sysv"
        );
    }
}
