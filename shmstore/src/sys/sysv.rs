//! System V shared-memory segments: `ftok`, `shmget`, `shmat`/`shmdt`, `shmctl(IPC_STAT,
//! IPC_RMID)`, and the kernel's table of segments in `/proc/sysvipc/shm`.
//!
//! A segment is named by a 32-bit key and identified, while it exists, by the id `shmget`
//! returns. Its size is fixed at creation (nobody can shrink it under a mapping), and the kernel
//! keeps an attached segment alive after `IPC_RMID` until the last process detaches, when the
//! key is already free for a new segment: the same lifetime as an unlinked POSIX object.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::libc;

use super::object::{Access, Mapping, ObjectStat};

/// The `dev` of a segment's [`ObjectStat`]: no file system has it, so a segment never compares
/// equal to a file, and two segments compare by id (`ino`).
const SEGMENT_DEV: u64 = u64::MAX;

/// What `shmctl(IPC_STAT)` says about a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentStat {
    /// Size, owner and mode, as for a file; `ino` is the segment id.
    pub(crate) object: ObjectStat,
    /// The process that created the segment (`shm_cpid`).
    pub(crate) creator_pid: u32,
    /// The user that created the segment (`shm_perm.cuid`). Unlike the owner (`uid`), nobody
    /// can change it: `shmctl(IPC_SET)` lets the creator give a segment to another user.
    pub(crate) creator_uid: u32,
    /// How many mappings of it exist (`shm_nattch`).
    pub(crate) attached: u64,
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// `ftok(path, id)`: the key C programs derive from an existing file and a project id. The
/// path must exist (its inode and device make the key), and `id` must not be zero.
pub(crate) fn ftok(path: &Path, id: u8) -> io::Result<i32> {
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `path` is a NUL-terminated string that outlives the call; `ftok` only reads it.
    check(unsafe { libc::ftok(path.as_ptr(), libc::c_int::from(id)) })
}

/// `shmget(key, 0, 0)`: the id of the existing segment with `key` (`NotFound` if none).
pub(crate) fn get(key: i32) -> io::Result<i32> {
    // SAFETY: `shmget` takes plain integers.
    check(unsafe { libc::shmget(key, 0, 0) })
}

/// `shmget(key, size, IPC_CREAT | IPC_EXCL | mode)`: a new, zero-filled segment
/// (`AlreadyExists` if the key is taken). The umask does not apply to System V modes.
pub(crate) fn create(key: i32, size: usize, mode: u32) -> io::Result<i32> {
    let flags = libc::IPC_CREAT | libc::IPC_EXCL | (mode & 0o777) as libc::c_int;
    // SAFETY: `shmget` takes plain integers.
    check(unsafe { libc::shmget(key, size, flags) })
}

/// `shmctl(id, IPC_STAT)`. Needs read permission on the segment.
pub(crate) fn stat(id: i32) -> io::Result<SegmentStat> {
    // SAFETY: `shmid_ds` is a plain C struct of integers, for which all zeros is valid.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: IPC_STAT writes one `shmid_ds` into the struct we pass, nothing else.
    check(unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) })?;
    Ok(SegmentStat {
        object: ObjectStat {
            size: ds.shm_segsz as u64,
            uid: ds.shm_perm.uid,
            mode: u32::from(ds.shm_perm.mode) & 0o777,
            dev: SEGMENT_DEV,
            ino: id as u64,
            regular: true,
        },
        creator_pid: ds.shm_cpid as u32,
        creator_uid: ds.shm_perm.cuid,
        attached: ds.shm_nattch as u64,
    })
}

/// `shmctl(id, IPC_RMID)`: the key is free at once; the memory goes with the last detach.
pub(crate) fn remove(id: i32) -> io::Result<()> {
    // SAFETY: IPC_RMID reads no buffer; a null pointer is what it expects.
    check(unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) })?;
    Ok(())
}

/// An attached segment: `shmdt` on drop.
pub(crate) struct Attachment {
    addr: *mut u8,
}

// SAFETY: an attachment is an address range valid in every thread of the process until
// `shmdt`, which only `Drop` calls (with `&mut self`).
unsafe impl Send for Attachment {}
// SAFETY: as above; `&Attachment` only hands out the address.
unsafe impl Sync for Attachment {}

impl Attachment {
    #[inline]
    pub(crate) fn ptr(&self) -> *mut u8 {
        self.addr
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        // SAFETY: `addr` is what `shmat` returned and has not been detached: this is the only
        // place that detaches, and it runs once. No reference into the segment outlives the
        // `Mapping` that owns this attachment (the region hands out borrows of itself only).
        unsafe { libc::shmdt(self.addr.cast()) };
    }
}

/// `shmat`: maps the whole segment (its size rounded up to pages) at an address the kernel
/// picks, page-aligned, writable or read-only (`SHM_RDONLY`).
pub(crate) fn attach(id: i32, access: Access) -> io::Result<Mapping> {
    let flags = match access {
        Access::ReadWrite => 0,
        Access::ReadOnly => libc::SHM_RDONLY,
    };
    // SAFETY: a null address lets the kernel choose a free range, so no existing mapping of
    // this process is replaced; the result is checked before use.
    let addr = unsafe { libc::shmat(id, std::ptr::null(), flags) };
    if addr as isize == -1 {
        return Err(io::Error::last_os_error());
    }
    let attachment = Attachment { addr: addr.cast() };
    // The size of the segment now attached: a segment never changes size, and the id names
    // the attached segment until it is removed (then `stat` fails, and we detach on return).
    let len = usize::try_from(stat(id)?.object.size)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "segment larger than memory"))?;
    Ok(Mapping::from_attachment(attachment, len))
}

/// One line of `/proc/sysvipc/shm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentEntry {
    pub(crate) key: i32,
    pub(crate) id: i32,
}

/// Every System V segment of this IPC namespace that has a key (private segments have none and
/// cannot be opened by key).
pub(crate) fn segments() -> io::Result<Vec<SegmentEntry>> {
    let table = std::fs::read_to_string("/proc/sysvipc/shm")?;
    Ok(parse_segments(&table))
}

fn parse_segments(table: &str) -> Vec<SegmentEntry> {
    // Columns: key shmid perms size cpid lpid nattch uid gid cuid cgid atime dtime ctime ...
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut columns = line.split_whitespace();
            let key = columns.next()?.parse::<i32>().ok()?;
            let id = columns.next()?.parse::<i32>().ok()?;
            (key != libc::IPC_PRIVATE).then_some(SegmentEntry { key, id })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_kernel_table_and_skips_private_segments() {
        let table = concat!(
            "       key      shmid perms                  size  cpid  lpid nattch   uid   gid",
            "  cuid  cgid      atime      dtime      ctime                   rss",
            "                  swap\n",
            "1234567890          5   600                  4096   100   100      1     0     0",
            "     0     0          0          0 1700000000                  4096",
            "                     0\n",
            "0          6   600                  4096   100   100      1     0     0     0",
            "     0          0          0 1700000000                  4096",
            "                     0\n",
            "-559038737          7   644                  8192   100   100      0     0     0",
            "     0     0          0          0 1700000000                     0",
            "                     0\n",
        );
        assert_eq!(
            parse_segments(table),
            vec![
                SegmentEntry {
                    key: 1234567890,
                    id: 5
                },
                SegmentEntry {
                    key: -559038737,
                    id: 7
                },
            ]
        );
    }
}
