//! Named POSIX shared-memory objects: create (unnamed, then linked), open, inspect, lock,
//! map and unlink.
//!
//! On Linux, `shm_open("/name")` opens `/dev/shm/name` on a tmpfs. Creating through the
//! directory instead (`O_TMPFILE`, then `linkat`) lets a creator build and lock an object
//! before any other process can see it under its name.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use memmap2::{MmapOptions, MmapRaw};
use nix::fcntl::{AtFlags, OFlag};
use nix::libc;
use nix::sys::stat::Mode;

/// The tmpfs mount behind `shm_open`.
pub(crate) const SHM_DIR: &str = "/dev/shm";

/// Whether an object is opened and mapped for writing or only for reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    ReadWrite,
    ReadOnly,
}

/// What `fstat` says about an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ObjectStat {
    pub(crate) size: u64,
    pub(crate) uid: u32,
    pub(crate) mode: u32,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    /// A regular file: never a FIFO, socket, device or directory someone put under the name.
    pub(crate) regular: bool,
}

impl ObjectStat {
    /// Whether two stats describe the same object.
    pub(crate) fn same_object(&self, other: &ObjectStat) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

fn os_name(name: &str) -> io::Result<CString> {
    CString::new(format!("/{name}")).map_err(|_| io::ErrorKind::InvalidInput.into())
}

fn dir_path(name: &str) -> io::Result<CString> {
    CString::new(format!("{SHM_DIR}/{name}")).map_err(|_| io::ErrorKind::InvalidInput.into())
}

/// Opens an existing object by name (`shm_open` without `O_CREAT`, close-on-exec, never
/// following a symbolic link, never blocking: a FIFO planted under the name would otherwise
/// block a read-only open until some writer opened it).
pub(crate) fn open(name: &str, access: Access) -> io::Result<File> {
    let flags = match access {
        Access::ReadWrite => OFlag::O_RDWR,
        Access::ReadOnly => OFlag::O_RDONLY,
    } | OFlag::O_CLOEXEC
        | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK;
    let fd: OwnedFd = nix::sys::mman::shm_open(os_name(name)?.as_c_str(), flags, Mode::empty())?;
    Ok(File::from(fd))
}

/// Creates an unnamed object in the shared-memory directory with exactly `mode` (applied with
/// `fchmod`, so the umask cannot change it). Nobody else can open it until [`link`] names it.
pub(crate) fn create_unnamed(mode: u32) -> io::Result<File> {
    let fd = nix::fcntl::open(
        SHM_DIR,
        OFlag::O_TMPFILE | OFlag::O_RDWR | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )?;
    let file = File::from(fd);
    set_mode(&file, mode)?;
    Ok(file)
}

/// `fchmod`: sets the object's permission bits to exactly `mode` (the umask does not apply).
pub(crate) fn set_mode(file: &File, mode: u32) -> io::Result<()> {
    nix::sys::stat::fchmod(
        file,
        Mode::from_bits_truncate(mode as libc::mode_t & 0o7777),
    )?;
    Ok(())
}

/// Gives an unnamed object its name. Fails with `AlreadyExists` if the name is taken: exactly
/// one of several racing creators wins.
pub(crate) fn link(file: &File, name: &str) -> io::Result<()> {
    // `linkat(fd, "", .., AT_EMPTY_PATH)` needs CAP_DAC_READ_SEARCH; the /proc form needs none.
    let source = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let cwd = nix::fcntl::AT_FDCWD;
    nix::unistd::linkat(
        cwd,
        source.as_c_str(),
        cwd,
        dir_path(name)?.as_c_str(),
        AtFlags::AT_SYMLINK_FOLLOW,
    )?;
    Ok(())
}

/// `fstat` of an open object.
pub(crate) fn stat(file: &File) -> io::Result<ObjectStat> {
    file.metadata().map(|meta| ObjectStat::from(&meta))
}

/// `lstat` of a name, without opening it.
pub(crate) fn stat_name(name: &str) -> io::Result<ObjectStat> {
    std::fs::symlink_metadata(format!("{SHM_DIR}/{name}")).map(|meta| ObjectStat::from(&meta))
}

impl From<&std::fs::Metadata> for ObjectStat {
    fn from(meta: &std::fs::Metadata) -> Self {
        ObjectStat {
            size: meta.size(),
            uid: meta.uid(),
            mode: meta.mode() & 0o7777,
            dev: meta.dev(),
            ino: meta.ino(),
            regular: meta.file_type().is_file(),
        }
    }
}

/// `ftruncate`: sets the object's size; new bytes read as zero.
pub(crate) fn set_len(file: &File, len: u64) -> io::Result<()> {
    file.set_len(len)
}

/// `shm_unlink`: removes the name. Existing mappings stay valid.
pub(crate) fn unlink(name: &str) -> io::Result<()> {
    nix::sys::mman::shm_unlink(os_name(name)?.as_c_str())?;
    Ok(())
}

/// The names in the shared-memory directory (objects of every program, not only ours).
pub(crate) fn names() -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(SHM_DIR)? {
        let entry = entry?;
        if let Ok(name) = entry.file_name().into_string() {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// The advisory whole-object lock (`flock`) that marks a creator busy initialising.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileLock {
    /// Held by the one process initialising the object.
    Exclusive,
    /// Taken briefly by an opener to learn whether the initialiser is still alive.
    Shared,
}

/// Takes `kind` on the object without blocking. `Ok(false)` means another open file
/// description holds a conflicting lock.
pub(crate) fn try_file_lock(file: &File, kind: FileLock) -> io::Result<bool> {
    let op = match kind {
        FileLock::Exclusive => libc::LOCK_EX,
        FileLock::Shared => libc::LOCK_SH,
    } | libc::LOCK_NB;
    loop {
        // SAFETY: `flock` takes any descriptor number and only reads its arguments; `file`
        // keeps the descriptor open for the duration of the call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(err),
        }
    }
}

/// Takes an exclusive open-file-description lock (`F_OFD_SETLK`) on the single byte at
/// `offset`, without blocking. `Ok(false)` means another open file description holds it.
///
/// These locks belong to the descriptor (not the process, unlike classic POSIX record
/// locks): two handles in one process conflict, and the kernel releases the lock when the
/// descriptor is closed, including when its process dies. They are independent of `flock`.
pub(crate) fn try_byte_lock(file: &File, offset: u64) -> io::Result<bool> {
    let mut lock = byte_range(offset)?;
    loop {
        // SAFETY: `F_OFD_SETLK` reads the `flock` struct we pass and nothing else; `file` keeps
        // the descriptor open for the duration of the call.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &mut lock) };
        if rc == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EAGAIN | libc::EACCES) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(err),
        }
    }
}

/// Whether another open file description holds the byte lock of [`try_byte_lock`] at `offset`
/// (`F_OFD_GETLK`: a snapshot; the holder may die or release it right after).
pub(crate) fn byte_locked_elsewhere(file: &File, offset: u64) -> io::Result<bool> {
    let mut lock = byte_range(offset)?;
    // SAFETY: `F_OFD_GETLK` reads and writes the `flock` struct we pass, nothing else; `file`
    // keeps the descriptor open for the duration of the call.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut lock) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lock.l_type != libc::F_UNLCK as libc::c_short)
}

fn byte_range(offset: u64) -> io::Result<libc::flock> {
    let start = libc::off_t::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: `flock` is a plain C struct of integers, for which all zeros is a valid value.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = start;
    lock.l_len = 1;
    // `l_pid` must be 0 for the OFD commands (it is, from the zeroing).
    Ok(lock)
}

/// Releases this descriptor's `flock` (closing the descriptor does it too).
pub(crate) fn file_unlock(file: &File) {
    // SAFETY: as in `try_file_lock`; LOCK_UN on a descriptor without a lock is a no-op.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
}

/// A shared mapping of the first `len` bytes of an object. Unmapped on drop.
pub(crate) struct Mapping {
    raw: MmapRaw,
}

impl Mapping {
    /// Maps `len` bytes (`MAP_SHARED`), writable or read-only. The caller has checked with
    /// [`stat`] that the object is at least `len` bytes long, so no access within the mapping
    /// can fault with SIGBUS unless another process shrinks the object afterwards.
    pub(crate) fn new(file: &File, len: usize, access: Access) -> io::Result<Mapping> {
        let mut options = MmapOptions::new();
        options.len(len);
        let raw = match access {
            Access::ReadWrite => options.map_raw(file)?,
            Access::ReadOnly => options.map_raw_read_only(file)?,
        };
        Ok(Mapping { raw })
    }

    /// The first byte of the mapping (page-aligned).
    pub(crate) fn ptr(&self) -> *mut u8 {
        self.raw.as_mut_ptr()
    }

    /// Keeps the pages mapped for the rest of the process's life. Used when a lock inside
    /// them may still be held (a forgotten guard): glibc keeps held robust mutexes on a
    /// per-thread list it walks later, so their memory must never disappear.
    pub(crate) fn leak(self) {
        std::mem::forget(self.raw);
    }
}
