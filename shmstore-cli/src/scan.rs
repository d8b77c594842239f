//! Finding the objects in `/dev/shm` and telling shmstore regions from everything else.
//!
//! Only an object that starts with the magic `SHMSTORE` is handed to [`Inspector::open`]. The
//! library treats an empty or all-zero object as a region whose creator died before writing
//! it (`Error::Incomplete`), which is right for a name it was asked to open, but `list`, `rm`
//! and `gc` walk objects that other programs own: an empty object there is as likely another
//! program's segment that has not been sized yet. Checking the magic first keeps such objects
//! `foreign`, never probed with `flock`, never mapped, never removed without `--force`.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use shmstore::{Error, Inspector};

use crate::failure::{Failure, Outcome};

/// Where POSIX shared-memory objects live on Linux: `shm_open("/NAME")` is `/dev/shm/NAME`.
pub const SHM_DIR: &str = "/dev/shm";

/// The first 8 bytes of every region (FORMAT.md, header offset 0).
const MAGIC: &[u8; 8] = b"SHMSTORE";
/// FORMAT.md: `creator_pid`, 4 bytes at header offset 80, native byte order.
const CREATOR_PID_OFFSET: usize = 80;

/// What an object in `/dev/shm` is.
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

/// What `stat` says about the object.
#[derive(Debug, Clone, Copy)]
pub struct Object {
    /// Its size in bytes.
    pub size: u64,
    /// Permission bits (`0o600`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Identifies this object, not just its name: `gc` matches mappings by it.
    pub inode: u64,
}

/// One object in `/dev/shm`, classified.
pub struct Entry {
    /// The name, without `/dev/shm/`.
    pub name: String,
    /// What it is.
    pub kind: Kind,
    /// What `stat` said.
    pub object: Object,
    /// An open read-only view, for values and queues.
    pub view: Option<Inspector>,
    /// From the header: for values, queues and incomplete regions.
    pub creator_pid: Option<u32>,
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
    Ok(names.iter().filter_map(|name| classify(name)).collect())
}

/// Classifies one object; `None` if there is no object of that name.
pub fn classify(name: &str) -> Option<Entry> {
    let path = path_of(name);
    let meta = match fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            // Not even `stat` works: report what we can, touch nothing.
            let object = Object {
                size: 0,
                mode: 0,
                uid: 0,
                inode: 0,
            };
            let note = format!("cannot stat {}: {e}", path.display());
            return Some(Entry::other(
                name,
                Kind::Unreadable,
                object,
                e.to_string(),
                note,
            ));
        }
    };
    let object = Object {
        size: meta.len(),
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        inode: meta.ino(),
    };
    let foreign = |why: &str| {
        let note = format!(
            "`{name}` in {SHM_DIR} is not a shmstore region: {why}; `shmstore list` shows it as \
             foreign, and `shmstore rm --force {name}` removes it if no program uses it"
        );
        Some(Entry::other(
            name,
            Kind::Foreign,
            object,
            why.to_string(),
            note,
        ))
    };
    if !meta.file_type().is_file() {
        return foreign("it is not a regular file");
    }
    if shmstore::validate_name(name).is_err() {
        return foreign("its name is not a shmstore region name");
    }
    let head = match read_head(&path) {
        Ok(head) => head,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            let note = format!("cannot read {}: {e}", path.display());
            return Some(Entry::other(
                name,
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
    let mut entry = match Inspector::open(name) {
        Ok(view) => {
            let info = view.info();
            Entry {
                name: name.to_string(),
                kind: if info.queue.is_some() {
                    Kind::Queue
                } else {
                    Kind::Value
                },
                object,
                creator_pid: Some(info.creator_pid),
                view: Some(view),
                reason: None,
                note: None,
            }
        }
        Err(Error::NotFound { .. }) => return None,
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
            Entry::other(name, kind, object, reason, e.to_string())
        }
    };
    if entry.kind == Kind::Incomplete || entry.kind == Kind::Initialising {
        // The library does not say who the creator was; the header we read does.
        entry.creator_pid = creator_pid_from(&head);
    }
    Some(entry)
}

/// The region a command was given by name, or an error that says what is there instead.
pub fn region(name: &str) -> Outcome<(Entry, Inspector)> {
    shmstore::validate_name(name)?;
    let Some(mut entry) = classify(name) else {
        return Err(Error::NotFound {
            name: name.to_string(),
        }
        .into());
    };
    match (entry.kind, entry.view.take()) {
        (Kind::Value | Kind::Queue, Some(view)) => Ok((entry, view)),
        (kind, _) => {
            Err(Failure::Message(entry.note.unwrap_or_else(|| {
                format!("`{name}` is {}", kind.as_str())
            })))
        }
    }
}

impl Entry {
    fn other(name: &str, kind: Kind, object: Object, reason: String, note: String) -> Entry {
        Entry {
            name: name.to_string(),
            kind,
            object,
            view: None,
            creator_pid: None,
            reason: Some(reason),
            note: Some(note),
        }
    }
}

/// The first bytes of the object (up to the 256-byte header), with a plain `read`: it neither
/// maps nor locks anything.
fn read_head(path: &PathBuf) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(256);
    File::open(path)?.take(256).read_to_end(&mut head)?;
    Ok(head)
}

fn creator_pid_from(head: &[u8]) -> Option<u32> {
    let bytes = head.get(CREATOR_PID_OFFSET..CREATOR_PID_OFFSET + 4)?;
    let pid = u32::from_ne_bytes(bytes.try_into().ok()?);
    (pid != 0).then_some(pid)
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
