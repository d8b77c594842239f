//! Looking at a POSIX object or a file region without mapping it: what [`list`](crate::list)
//! and [`Inspector`](crate::inspect::Inspector) do.
//!
//! A mapping of an object that another process shrinks raises SIGBUS on the next access to a
//! page past the new end, and no check made beforehand can rule that out. So the looking code
//! never maps these objects: it opens them without blocking and without following a link,
//! decides on the `fstat` of the descriptor it got, and copies the header, the descriptor and
//! the payload out with `pread`. An object that shrank makes a read come up short, which is an
//! error; an object swapped for a FIFO or a directory is not a regular file, which is an error
//! too. System V segments cannot shrink (their size is fixed at creation), so they are
//! attached as usual.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::fence;
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::format::{
    Header, HeaderInfo, HeaderState, HEADER_SIZE, INITIALISER_BYTE, LIFECYCLE_CURRENT, MAGIC,
};
use crate::snapshot::version_from_word;
use crate::sys::object::{self, ByteLock, ObjectStat};

/// How often a look re-reads an object: waiting for a creator, or for a new version.
const POLL: Duration = Duration::from_millis(10);

/// How many times a look starts over when the object changed between two reads, before it
/// gives up even without a deadline: a peer that rewrites the object endlessly cannot keep a
/// look-only caller busy for ever.
const MAX_RESTARTS: u32 = 8;

pub(crate) use crate::region::Block256;

/// A ready region, looked at through a read-only descriptor.
pub(crate) struct Looked {
    pub(crate) file: File,
    /// The header as it was read when the region was found ready.
    pub(crate) header: Box<Block256>,
    pub(crate) info: HeaderInfo,
}

/// What one read of an object's header found.
enum Sight {
    Ready(Box<Block256>, HeaderInfo),
    /// Empty, blank or initialising.
    NotReady,
    /// Starts with the magic, but the header is bad (perhaps being rewritten right now).
    Corrupt(String),
    /// Not a regular file, or does not start with the magic: another program's object, never
    /// probed with a lock (that would disturb its own use of locks).
    Foreign(String),
}

fn sight(name: &str, file: &File, stat: &ObjectStat) -> Result<Sight> {
    if !stat.regular {
        return Ok(Sight::Foreign("it is not a regular file".into()));
    }
    if stat.size == 0 {
        return Ok(Sight::NotReady);
    }
    if stat.size < HEADER_SIZE as u64 {
        return Ok(Sight::Corrupt(format!(
            "it is {} bytes long, shorter than its own {HEADER_SIZE}-byte header",
            stat.size
        )));
    }
    let header = Box::new(Block256::read(file, 0).map_err(|e| shrank(name, "its header", e))?);
    let has_magic = header.header().magic.load(Relaxed) == u64::from_ne_bytes(MAGIC);
    Ok(match header.header().check(stat.size) {
        Ok(HeaderState::Ready(info)) => Sight::Ready(header, info),
        Ok(HeaderState::Blank | HeaderState::Initialising) => Sight::NotReady,
        Err(reason) if has_magic => Sight::Corrupt(reason),
        Err(reason) => Sight::Foreign(reason),
    })
}

/// Opens the object at `path` and reads its header once, without waiting or probing any
/// lock: `Ok(None)` unless it is a ready region. For listings, which show ready regions only.
pub(crate) fn look_if_ready(name: &str, path: &Path) -> Result<Option<Looked>> {
    let (file, stat) = object::open_to_look(path).map_err(|e| Error::io(name, "open", e))?;
    Ok(match sight(name, &file, &stat)? {
        Sight::Ready(header, info) => Some(Looked { file, header, info }),
        _ => None,
    })
}

/// The first bytes of the object at `path` (up to [`HEADER_SIZE`]: fewer if it is shorter),
/// read with `pread` from a descriptor opened without blocking or following a link, which
/// must be a regular file.
pub(crate) fn head(name: &str, path: &Path) -> Result<Vec<u8>> {
    let (file, stat) = object::open_to_look(path).map_err(|e| Error::io(name, "open", e))?;
    if !stat.regular {
        return Err(Error::corrupt(name, "it is not a regular file"));
    }
    let len = stat.size.min(HEADER_SIZE as u64) as usize;
    let mut head = vec![0u8; len];
    object::read_exact_at(&file, 0, &mut head).map_err(|e| shrank(name, "its header", e))?;
    Ok(head)
}

/// The error of a `pread` that failed: an object that ends too early shrank under us.
pub(crate) fn shrank(name: &str, what: &str, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        Error::corrupt(
            name,
            format!("it ended before {what} could be read (another process shrank it)"),
        )
    } else {
        Error::io(name, "pread", e)
    }
}

/// Opens the object at `path` read-only and reads its header, waiting at most `wait` for a
/// creator that is still initialising it (none with `Duration::ZERO`: such a region is then
/// [`Error::Timeout`] at once).
///
/// A creator holds the object's initialiser lock (a write lock on [`INITIALISER_BYTE`]) while
/// it writes the header, so a look that finds the header unfinished or bad probes with a read
/// lock there: if it gets it, nobody is at work and a second look decides (abandoned:
/// [`Error::Incomplete`]; bad: [`Error::Corrupt`]).
pub(crate) fn look(name: &str, path: &Path, wait: Duration) -> Result<Looked> {
    let started = Instant::now();
    let mut restarts = 0u32;
    loop {
        let (file, stat) = object::open_to_look(path).map_err(|e| Error::io(name, "open", e))?;
        let first = match sight(name, &file, &stat)? {
            Sight::Ready(header, info) => return Ok(Looked { file, header, info }),
            other => other,
        };
        if let Sight::Foreign(reason) = first {
            // Nothing to probe: no creator of ours is at work on it.
            return Err(Error::corrupt(name, reason));
        }
        // A live initialiser holds the write lock on this byte; a read lock probes for it.
        if object::try_byte_lock(&file, INITIALISER_BYTE, ByteLock::Read)
            .map_err(|e| Error::io(name, "fcntl(F_OFD_SETLK)", e))?
        {
            // Nobody can start initialising while we hold this: look again, then decide.
            let now = object::stat(&file).map_err(|e| Error::io(name, "fstat", e));
            let second = now.and_then(|now| Ok((sight(name, &file, &now)?, now)));
            let _ = object::byte_unlock(&file, INITIALISER_BYTE);
            match second? {
                (Sight::Corrupt(reason) | Sight::Foreign(reason), _) => {
                    return Err(Error::corrupt(name, reason))
                }
                (Sight::NotReady, now) if now == stat => {
                    return Err(Error::Incomplete {
                        name: name.to_string(),
                    })
                }
                // Ready now, or changed between the two looks: start over.
                _ => {
                    restarts += 1;
                    if restarts < MAX_RESTARTS {
                        continue;
                    }
                    return Err(Error::Timeout {
                        name: name.to_string(),
                        waiting_for: "it to stop changing (other processes kept rewriting it)",
                        after: started.elapsed(),
                    });
                }
            }
        }
        let elapsed = started.elapsed();
        if elapsed >= wait {
            return Err(Error::Timeout {
                name: name.to_string(),
                waiting_for: "its creator to finish initialising it",
                after: wait,
            });
        }
        std::thread::sleep((wait - elapsed).min(POLL));
    }
}

impl Looked {
    /// The descriptor's first `min(len, limit)` bytes.
    pub(crate) fn descriptor(&self, name: &str, limit: usize) -> Result<Vec<u8>> {
        let mut bytes = vec![0u8; self.info.layout.descriptor_len.min(limit)];
        object::read_exact_at(&self.file, HEADER_SIZE as u64, &mut bytes)
            .map_err(|e| shrank(name, "its type descriptor", e))?;
        Ok(bytes)
    }

    /// The versions table's bytes (empty for a region without one), as they are now.
    pub(crate) fn versions(&self, name: &str) -> Result<Vec<u8>> {
        let Some((offset, len)) = self.info.layout.versions() else {
            return Ok(Vec::new());
        };
        // The validated header bounds `len` (at most 16 MiB) and places it in the object.
        let mut bytes = vec![0u8; len];
        object::read_exact_at(&self.file, offset as u64, &mut bytes)
            .map_err(|e| shrank(name, "its versions table", e))?;
        Ok(bytes)
    }

    /// The header as it is now.
    pub(crate) fn header_now(&self, name: &str) -> Result<Block256> {
        Block256::read(&self.file, 0).map_err(|e| shrank(name, "its header", e))
    }

    /// The raw version word (odd while a write is under way), as it is now.
    pub(crate) fn version_now(&self, name: &str) -> Result<u64> {
        let mut word = [0u8; 8];
        object::read_exact_at(&self.file, VERSION_OFFSET, &mut word)
            .map_err(|e| shrank(name, "its version", e))?;
        Ok(u64::from_ne_bytes(word))
    }

    /// Whether a migration replaced the object under `path` (FORMAT.md, "Migration"): its
    /// `lifecycle` word is not "current", and `path` now refers to another object, or none.
    /// One `pread` while the word is 0.
    pub(crate) fn has_moved(&self, name: &str, path: &Path) -> Result<bool> {
        let mut word = [0u8; 4];
        object::read_exact_at(&self.file, LIFECYCLE_OFFSET, &mut word)
            .map_err(|e| shrank(name, "its lifecycle word", e))?;
        if u32::from_ne_bytes(word) == LIFECYCLE_CURRENT {
            return Ok(false);
        }
        let mine = object::stat(&self.file).map_err(|e| Error::io(name, "fstat", e))?;
        Ok(object::stat_path(path).map_or(true, |now| !now.same_object(&mine)))
    }

    /// A queue's control block (the first 256 bytes of its payload), as it is now.
    pub(crate) fn queue_control(&self, name: &str) -> Result<Block256> {
        Block256::read(&self.file, self.info.layout.payload_offset as u64)
            .map_err(|e| shrank(name, "its queue's counters", e))
    }

    /// `len` bytes at `offset`, as they are now.
    pub(crate) fn bytes_at(&self, name: &str, offset: usize, len: usize) -> Result<Vec<u8>> {
        let mut out = vec![0u8; len];
        object::read_exact_at(&self.file, offset as u64, &mut out)
            .map_err(|e| shrank(name, "its payload", e))?;
        Ok(out)
    }

    /// A consistent copy of a value's payload (a seqlock read through `pread`): the version
    /// picks the copy to read (FORMAT.md: the working copy at an even version, the second copy
    /// at an odd one; none in place), and a version that moved during the copy throws it away.
    /// `Ok(None)` when the deadline passed first.
    pub(crate) fn snapshot(
        &self,
        name: &str,
        deadline: Option<Instant>,
    ) -> Result<Option<Vec<u8>>> {
        let layout = &self.info.layout;
        loop {
            let before = self.version_now(name)?;
            let source = if before & 1 == 0 {
                Some(layout.payload_offset)
            } else {
                layout.second_copy_offset
            };
            if let Some(offset) = source {
                let bytes = self.bytes_at(name, offset, layout.payload_size)?;
                // The copy (the kernel's, in this thread) comes before the second version
                // read; the first read already came before the copy.
                fence(Acquire);
                if self.version_now(name)? == before {
                    return Ok(Some(bytes));
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            // Not worth spinning on: a look-only reader is not in a hurry, and yields to the
            // writer it waits for.
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// Waits until a version other than `since` is published, polling every 10 ms; `Ok(None)`
    /// when the deadline passed first.
    pub(crate) fn wait_for_change(
        &self,
        name: &str,
        path: &Path,
        since: u64,
        deadline: Option<Instant>,
    ) -> Result<Option<u64>> {
        loop {
            let now = version_from_word(self.version_now(name)?);
            if now != since {
                return Ok(Some(now));
            }
            if self.has_moved(name, path)? {
                // Nothing will be published here again: its successor holds the value.
                return Err(Error::Removed {
                    name: name.to_string(),
                });
            }
            let slice = match deadline {
                None => POLL,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left.min(POLL),
                    _ => return Ok(None),
                },
            };
            std::thread::sleep(slice);
        }
    }
}

/// Where `version` lives in the header (FORMAT.md).
const VERSION_OFFSET: u64 = std::mem::offset_of!(Header, version) as u64;
/// Where `lifecycle` lives in the header (FORMAT.md).
const LIFECYCLE_OFFSET: u64 = std::mem::offset_of!(Header, lifecycle) as u64;
