//! Objects behind a file descriptor — POSIX shared-memory objects and regular files: create
//! (unnamed, then linked), open, inspect, lock, map and unlink.
//!
//! On Linux, `shm_open("/name")` is `open("/dev/shm/name", O_NOFOLLOW | O_CLOEXEC)` on a
//! tmpfs, so both backends are files named by a path here. Creating through the directory
//! (`O_TMPFILE`, then `linkat`) lets a creator build and lock an object before any other
//! process can see it under its name.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

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

/// The path `shm_open` uses for a POSIX object name (already validated: one component).
pub(crate) fn shm_path(name: &str) -> PathBuf {
    Path::new(SHM_DIR).join(name)
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::ErrorKind::InvalidInput.into())
}

/// Opens an existing object (no `O_CREAT`, close-on-exec, never following a symbolic link,
/// never blocking: a FIFO planted under the name would otherwise block a read-only open until
/// some writer opened it).
pub(crate) fn open(path: &Path, access: Access) -> io::Result<File> {
    let c_path = c_path(path)?;
    let fd: OwnedFd = nix::fcntl::open(c_path.as_c_str(), open_flags(access), Mode::empty())
        .map_err(|e| open_error(e, || nix::sys::stat::lstat(c_path.as_c_str()).ok()))?;
    Ok(File::from(fd))
}

/// The error of an open with [`open_flags`]. `EWOULDBLOCK` there means only one thing (open(2)):
/// another process holds a lease on the object (`fcntl(F_SETLEASE)`), which a blocking open
/// would wait out, up to the kernel's `lease-break-time` (45 s by default). The bare "Resource
/// temporarily unavailable" says nothing of that: the message names the lease and the owner
/// (`stat_name`: the name's `lstat`, taken after the open failed).
fn open_error(errno: nix::Error, stat_name: impl FnOnce() -> Option<libc::stat>) -> io::Error {
    if errno != nix::Error::EWOULDBLOCK {
        return errno.into();
    }
    let owner = stat_name().map_or_else(
        || "a user who could not be found out".to_string(),
        |stat| format!("uid {}", stat.st_uid),
    );
    io::Error::new(
        io::ErrorKind::WouldBlock,
        format!(
            "another process holds a lease on the object (fcntl F_SETLEASE; the object is owned \
             by {owner}), so opening it would wait until that process gives the lease up: the \
             holder is in /proc/locks (LEASE); remove the object if it is not yours"
        ),
    )
}

/// The flags of [`open`] and [`Dir::open_file`].
fn open_flags(access: Access) -> OFlag {
    let access = match access {
        Access::ReadWrite => OFlag::O_RDWR,
        Access::ReadOnly => OFlag::O_RDONLY,
    };
    access | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK
}

/// `pread`: fills `buf` from `offset` of the object, never through a mapping, so another
/// process that shrinks the object meanwhile makes this an error, not a SIGBUS. A short read
/// (the object ends before `offset + buf.len()`) is an error of kind `UnexpectedEof`.
pub(crate) fn read_exact_at(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

/// Opens an existing object to look at it (read-only, never blocking, never following a
/// symbolic link, as [`open`]) and `fstat`s the descriptor it got: the caller decides with the
/// stat of what was opened, not of what the name held a moment earlier, since another process
/// can swap a FIFO or a directory in between.
pub(crate) fn open_to_look(path: &Path) -> io::Result<(File, ObjectStat)> {
    let file = open(path, Access::ReadOnly)?;
    let stat = stat(&file)?;
    Ok((file, stat))
}

/// `mkfifo` with mode 0600: what a hostile peer can plant under a region's name (fuzzing).
#[cfg(feature = "fuzzing")]
pub(crate) fn make_fifo(path: &Path) -> io::Result<()> {
    nix::unistd::mkfifo(c_path(path)?.as_c_str(), Mode::from_bits_truncate(0o600))?;
    Ok(())
}

/// An object that has no name yet.
pub(crate) struct Unnamed {
    pub(crate) file: File,
    /// On a file system without `O_TMPFILE`, the hidden temporary name it was created under,
    /// removed when this is dropped: once [`Dir::link`] has run, or when it never will.
    pub(crate) hidden: Option<HiddenName>,
}

/// Removes a hidden temporary name from its directory when dropped.
pub(crate) struct HiddenName {
    dir: Dir,
    name: OsString,
}

impl HiddenName {
    /// Renames the object to `name` in the same directory, replacing in the same step whatever
    /// `name` holds (`renameat2` without flags: the name refers to the old object or to this
    /// one at every moment, and the old one loses its name). The hidden name is gone then.
    pub(crate) fn rename_over(mut self, name: &OsStr) -> io::Result<()> {
        nix::fcntl::renameat2(
            &*self.dir.0,
            self.name.as_os_str(),
            &*self.dir.0,
            name,
            nix::fcntl::RenameFlags::empty(),
        )?;
        // Nothing left to remove on drop.
        self.name = OsString::new();
        Ok(())
    }
}

impl Drop for HiddenName {
    fn drop(&mut self) {
        if !self.name.is_empty() {
            let _ = self.dir.unlink(&self.name);
        }
    }
}

/// `fchmod`: sets the object's permission bits to exactly `mode` (the umask does not apply).
pub(crate) fn set_mode(file: &File, mode: u32) -> io::Result<()> {
    nix::sys::stat::fchmod(
        file,
        Mode::from_bits_truncate(mode as libc::mode_t & 0o7777),
    )?;
    Ok(())
}

/// The owner of an open object: its uid and gid (`fstat`).
pub(crate) fn owner(file: &File) -> io::Result<(u32, u32)> {
    let meta = file.metadata()?;
    Ok((meta.uid(), meta.gid()))
}

/// `fchown`: gives the object to `uid` and `gid` (only root may give it to another user).
pub(crate) fn set_owner(file: &File, uid: u32, gid: u32) -> io::Result<()> {
    use nix::unistd::{Gid, Uid};
    nix::unistd::fchown(file, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?;
    Ok(())
}

/// The directory a region's object lives in, opened once (`O_PATH | O_DIRECTORY`): the
/// directory part of its path is resolved there — symbolic links in it followed, as any
/// program follows them — and never again. Every later step (the unnamed creation, the link,
/// the open, the re-check that the name still refers to the object, the removal) names the
/// object relative to this descriptor, so replacing a directory component afterwards (with
/// a symbolic link, say) redirects none of them. The last component is never followed.
#[derive(Clone)]
pub(crate) struct Dir(std::sync::Arc<OwnedFd>);

/// A watch on a [`Dir`] for new entries (inotify: `IN_CREATE`, which a link of an unnamed
/// object or a new file raises, and `IN_MOVED_TO`, which a rename into it raises), for a
/// reader that waits for a region's creation. It sleeps in `poll` until an event or its
/// timeout: no polling of the name.
pub(crate) struct DirWatch(nix::sys::inotify::Inotify);

impl DirWatch {
    /// Sleeps until an entry was created in (or moved into) the directory since the watch was
    /// made or last woke, at most `timeout` (forever if `None`); returns early on a signal.
    /// Callers look again whatever woke them.
    pub(crate) fn wait(&self, timeout: Option<std::time::Duration>) -> io::Result<()> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let timeout = match timeout {
            None => PollTimeout::NONE,
            // Longer than `i32::MAX` ms (24 days): the caller's next look finds it not over.
            Some(t) => PollTimeout::try_from(t).unwrap_or(PollTimeout::MAX),
        };
        let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        // Drain what arrived (non-blocking): the caller looks at the name itself.
        while matches!(self.0.read_events(), Ok(events) if !events.is_empty()) {}
        Ok(())
    }
}

impl Dir {
    /// Starts watching the directory for new entries (see [`DirWatch`]). Entries created from
    /// now on wake [`DirWatch::wait`], so a caller makes the watch first and then looks.
    pub(crate) fn watch_for_entries(&self) -> io::Result<DirWatch> {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
        // The directory as this handle opened it (an `O_PATH` descriptor), not its path again:
        // `/proc/self/fd/N` resolves to the opened directory itself.
        let path = format!("/proc/self/fd/{}", self.0.as_raw_fd());
        inotify.add_watch(
            path.as_str(),
            AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_ONLYDIR,
        )?;
        Ok(DirWatch(inotify))
    }

    /// Opens the directory at `path` (following symbolic links).
    pub(crate) fn open(path: &Path) -> io::Result<Dir> {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::open(c_path(path)?.as_c_str(), flags, Mode::empty())?;
        Ok(Dir(std::sync::Arc::new(fd)))
    }

    /// Opens the existing object `name` in this directory, as [`open`] does.
    pub(crate) fn open_file(&self, name: &OsStr, access: Access) -> io::Result<File> {
        let fd =
            nix::fcntl::openat(&*self.0, name, open_flags(access), Mode::empty()).map_err(|e| {
                open_error(e, || {
                    nix::sys::stat::fstatat(&*self.0, name, AtFlags::AT_SYMLINK_NOFOLLOW).ok()
                })
            })?;
        Ok(File::from(fd))
    }

    /// Creates an unnamed object in this directory with exactly `mode` (applied with `fchmod`,
    /// so the umask cannot change it). Nobody else can open it under the region's `name` until
    /// [`Dir::link`] names it.
    ///
    /// `O_TMPFILE` where the file system has it (tmpfs, ext4, xfs, btrfs); elsewhere a hidden,
    /// exclusively created temporary name next to `name`, removed after linking.
    pub(crate) fn create_unnamed(&self, name: &OsStr, mode: u32) -> io::Result<Unnamed> {
        let tmpfile = nix::fcntl::openat(
            &*self.0,
            ".",
            OFlag::O_TMPFILE | OFlag::O_RDWR | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        );
        let unnamed = match tmpfile {
            Ok(fd) => Unnamed {
                file: File::from(fd),
                hidden: None,
            },
            Err(nix::errno::Errno::EOPNOTSUPP | nix::errno::Errno::EISDIR) => {
                self.create_hidden(name)?
            }
            Err(e) => return Err(e.into()),
        };
        set_mode(&unnamed.file, mode)?;
        Ok(unnamed)
    }

    fn create_hidden(&self, name: &OsStr) -> io::Result<Unnamed> {
        let mut attempt = 0u32;
        loop {
            let hidden = hidden_name(name, attempt);
            let opened = nix::fcntl::openat(
                &*self.0,
                hidden.as_os_str(),
                OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_RDWR
                    | OFlag::O_CLOEXEC
                    | OFlag::O_NOFOLLOW,
                Mode::from_bits_truncate(0o600),
            );
            match opened {
                Ok(fd) => {
                    return Ok(Unnamed {
                        file: File::from(fd),
                        hidden: Some(HiddenName {
                            dir: self.clone(),
                            name: hidden,
                        }),
                    })
                }
                Err(nix::errno::Errno::EEXIST) if attempt < 100 => attempt += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Gives an unnamed object the name `name` in this directory. Fails with `AlreadyExists`
    /// if the name is taken: exactly one of several racing creators wins.
    pub(crate) fn link(&self, file: &File, name: &OsStr) -> io::Result<()> {
        // `linkat(fd, "", .., AT_EMPTY_PATH)` needs CAP_DAC_READ_SEARCH; the /proc form needs
        // none.
        let source = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        nix::unistd::linkat(
            nix::fcntl::AT_FDCWD,
            source.as_c_str(),
            &*self.0,
            name,
            AtFlags::AT_SYMLINK_FOLLOW,
        )?;
        Ok(())
    }

    /// Gives `file` a hidden temporary name in this directory, next to `name` (see
    /// [`hidden_name`]), removed when the returned guard is dropped.
    pub(crate) fn link_hidden(&self, file: &File, name: &OsStr) -> io::Result<HiddenName> {
        let mut attempt = 0u32;
        loop {
            let hidden = hidden_name(name, attempt);
            match self.link(file, &hidden) {
                Ok(()) => {
                    return Ok(HiddenName {
                        dir: self.clone(),
                        name: hidden,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// Gives `file` exactly the name `hidden` in this directory (a name only its caller
    /// makes, see `region::migrate`), removed when the returned guard is dropped unless it
    /// was renamed over another name first. Fails with `AlreadyExists` if the name is taken.
    pub(crate) fn link_as_hidden(&self, file: &File, hidden: OsString) -> io::Result<HiddenName> {
        self.link(file, &hidden)?;
        Ok(HiddenName {
            dir: self.clone(),
            name: hidden,
        })
    }

    /// `fstatat` of `name` in this directory, without following a symbolic link.
    pub(crate) fn stat(&self, name: &OsStr) -> io::Result<ObjectStat> {
        let stat = nix::sys::stat::fstatat(&*self.0, name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
        Ok(ObjectStat {
            size: stat.st_size as u64,
            uid: stat.st_uid,
            mode: stat.st_mode & 0o7777,
            dev: stat.st_dev,
            ino: stat.st_ino,
            regular: stat.st_mode & libc::S_IFMT == libc::S_IFREG,
        })
    }

    /// Removes the name `name` from this directory (`unlinkat`); never a directory.
    pub(crate) fn unlink(&self, name: &OsStr) -> io::Result<()> {
        nix::unistd::unlinkat(&*self.0, name, nix::unistd::UnlinkatFlags::NoRemoveDir)?;
        Ok(())
    }

    /// What is under `name` in this directory if it is not a regular file ("a symbolic link",
    /// "a directory", …), without following a symbolic link; `None` for a regular file or
    /// nothing.
    pub(crate) fn non_regular_kind(&self, name: &OsStr) -> Option<&'static str> {
        let stat = nix::sys::stat::fstatat(&*self.0, name, AtFlags::AT_SYMLINK_NOFOLLOW).ok()?;
        Some(match stat.st_mode & libc::S_IFMT {
            libc::S_IFREG => return None,
            libc::S_IFLNK => "a symbolic link",
            libc::S_IFDIR => "a directory",
            libc::S_IFIFO => "a FIFO",
            libc::S_IFSOCK => "a socket",
            libc::S_IFCHR => "a character device",
            libc::S_IFBLK => "a block device",
            _ => "something other than a regular file",
        })
    }
}

/// A hidden temporary name for an object that will be (or was) named `name`: unique to this
/// process and moment; `attempt` tells apart names tried one after the other.
fn hidden_name(name: &OsStr, attempt: u32) -> OsString {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    OsString::from(format!(
        ".{}.shmstore-{}-{nanos:x}-{attempt}",
        name.to_string_lossy(),
        std::process::id()
    ))
}

/// `fstat` of an open object.
pub(crate) fn stat(file: &File) -> io::Result<ObjectStat> {
    file.metadata().map(|meta| ObjectStat::from(&meta))
}

/// What `path` refers to now, without following a symbolic link.
pub(crate) fn stat_path(path: &Path) -> io::Result<ObjectStat> {
    std::fs::symlink_metadata(path).map(|meta| ObjectStat::from(&meta))
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

// --- Creation: reserving the pages, and telling a blank object from someone's data. ---

/// Makes the object at least `len` bytes long and reserves its blocks (`fallocate`), so that
/// a full tmpfs or disk is `ENOSPC` here rather than SIGBUS when a page is first touched
/// through a mapping. Never shrinks the object, and leaves its bytes as they are (new bytes
/// read as zero).
///
/// On a file system without `fallocate` (`EOPNOTSUPP`) it only grows the object
/// (`ftruncate`), which reserves nothing there.
pub(crate) fn reserve(file: &File, len: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
    loop {
        match nix::fcntl::fallocate(file, nix::fcntl::FallocateFlags::empty(), 0, len) {
            Ok(()) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EOPNOTSUPP) => {
                let size = file.metadata()?.len();
                return match u64::try_from(len) {
                    Ok(len) if len > size => file.set_len(len),
                    _ => Ok(()),
                };
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Whether the object's first `len` bytes are all zero, read with `pread` (never through a
/// mapping: another process may shrink the object meanwhile). An object shorter than `len`
/// is not: its end read as a short read.
pub(crate) fn all_zero(file: &File, len: u64) -> io::Result<bool> {
    all_zero_between(file, 0, len)
}

/// Whether the bytes from `start` to `len` of `file` are all zero, read with `pread` (as
/// [`all_zero`]).
pub(crate) fn all_zero_between(file: &File, start: u64, len: u64) -> io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let mut buffer = vec![0u8; 64 << 10];
    let mut offset = start;
    while offset < len {
        let want = usize::try_from(len - offset).map_or(buffer.len(), |n| n.min(buffer.len()));
        let read = match file.read_at(&mut buffer[..want], offset) {
            Ok(0) => return Ok(false),
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buffer[..read].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        offset += read as u64;
    }
    Ok(true)
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

/// The kind of an open-file-description byte lock ([`try_byte_lock`]).
///
/// What each kind proves decides how shmstore uses it, because a process with only read access
/// to an object can take read locks on any of its bytes (and `flock` it, which is why shmstore
/// does not use `flock`):
///
/// - a **write** lock needs a descriptor opened for writing, so only a process with write access
///   can hold one: [`byte_write_locked_elsewhere`] cannot be fooled by a reader. But any read
///   lock on the byte keeps others from taking it.
/// - a **read** lock conflicts only with write locks, so a reader cannot keep a writer from
///   taking one. But anyone may hold one: a read lock proves nothing about who holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ByteLock {
    Read,
    Write,
}

impl ByteLock {
    fn l_type(self) -> libc::c_short {
        match self {
            ByteLock::Read => libc::F_RDLCK as libc::c_short,
            ByteLock::Write => libc::F_WRLCK as libc::c_short,
        }
    }
}

/// Takes (or converts this descriptor's lock to) an open-file-description lock of `kind`
/// (`F_OFD_SETLK`) on the single byte at `offset`, without blocking. `Ok(false)` means another
/// open file description holds a conflicting lock.
///
/// These locks belong to the open file description (not the process, unlike classic POSIX
/// record locks): two handles in one process conflict, and the kernel releases the lock when
/// the description is closed, including when its process dies. They are independent of
/// `flock`. The byte may lie beyond the end of the object.
pub(crate) fn try_byte_lock(file: &File, offset: u64, kind: ByteLock) -> io::Result<bool> {
    let mut lock = byte_range(offset, kind.l_type())?;
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

/// Whether another open file description holds a lock of any kind on the byte at `offset`
/// (`F_OFD_GETLK`: a snapshot; the holder may release it right after).
pub(crate) fn byte_locked_elsewhere(file: &File, offset: u64) -> io::Result<bool> {
    // A write lock conflicts with every lock: the kernel reports any.
    conflicting_lock(file, offset, ByteLock::Write)
}

/// Whether another open file description holds a *write* lock on the byte at `offset`, which
/// only a process with write access can (see [`ByteLock`]); read locks are not reported.
pub(crate) fn byte_write_locked_elsewhere(file: &File, offset: u64) -> io::Result<bool> {
    // A read lock conflicts only with write locks: the kernel reports only those.
    conflicting_lock(file, offset, ByteLock::Read)
}

fn conflicting_lock(file: &File, offset: u64, wanted: ByteLock) -> io::Result<bool> {
    let mut lock = byte_range(offset, wanted.l_type())?;
    // SAFETY: `F_OFD_GETLK` reads and writes the `flock` struct we pass, nothing else; `file`
    // keeps the descriptor open for the duration of the call.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut lock) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lock.l_type != libc::F_UNLCK as libc::c_short)
}

/// Releases this descriptor's byte lock at `offset`, of either kind (`F_OFD_SETLK` with
/// `F_UNLCK`; nothing if it holds none).
///
/// Closing the descriptor releases it too, but only once no process shares the open file
/// description: a child forked by another thread (`Command::spawn`) holds it until it execs.
pub(crate) fn byte_unlock(file: &File, offset: u64) -> io::Result<()> {
    let mut lock = byte_range(offset, libc::F_UNLCK as libc::c_short)?;
    // SAFETY: `F_OFD_SETLK` reads the `flock` struct we pass and nothing else; `file` keeps
    // the descriptor open for the duration of the call.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &mut lock) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn byte_range(offset: u64, l_type: libc::c_short) -> io::Result<libc::flock> {
    let start = libc::off_t::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: `flock` is a plain C struct of integers, for which all zeros is a valid value.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = l_type;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = start;
    lock.l_len = 1;
    // `l_pid` must be 0 for the OFD commands (it is, from the zeroing).
    Ok(lock)
}

/// A shared mapping of the first `len` bytes of an object, or an attached System V segment.
/// Unmapped (detached) on drop.
///
/// Invariant, which [`SharedBytes::of_mapping`](crate::format::SharedBytes::of_mapping) relies
/// on: `ptr()..ptr() + len()` is mapped, page-aligned, for as long as the `Mapping` lives.
pub(crate) struct Mapping {
    inner: MappingKind,
    /// How many bytes are mapped (a segment's size, not rounded up to pages).
    len: usize,
}

enum MappingKind {
    File(MmapRaw),
    SysV(super::sysv::Attachment),
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
        Ok(Mapping {
            len: raw.len(),
            inner: MappingKind::File(raw),
        })
    }

    /// An attached segment of `len` bytes (its size, as `IPC_STAT` reported it after `shmat`).
    pub(crate) fn from_attachment(attachment: super::sysv::Attachment, len: usize) -> Mapping {
        Mapping {
            inner: MappingKind::SysV(attachment),
            len,
        }
    }

    /// How many bytes are mapped from [`ptr`](Mapping::ptr) on.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The first byte of the mapping (page-aligned).
    #[inline]
    pub(crate) fn ptr(&self) -> *mut u8 {
        match &self.inner {
            MappingKind::File(raw) => raw.as_mut_ptr(),
            MappingKind::SysV(attachment) => attachment.ptr(),
        }
    }

    /// Writes the mapping's dirty pages to the file and waits (`msync(MS_SYNC)`). Nothing to do
    /// for memory that no file backs on disk.
    pub(crate) fn flush(&self) -> io::Result<()> {
        match &self.inner {
            MappingKind::File(raw) => raw.flush(),
            MappingKind::SysV(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The path taken on file systems without `O_TMPFILE` (this machine's have it, so it is
    /// called directly): the object gets its name by `link`, and the hidden name goes.
    #[test]
    fn the_hidden_temporary_name_is_linked_then_removed() {
        /// Removes the directory when dropped, also when the test fails.
        struct RemoveDir(PathBuf);
        impl Drop for RemoveDir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let dir = std::env::temp_dir().join(format!("shmstore-test-hidden-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        let _remove = RemoveDir(dir.clone());
        let target = dir.join("state.shm");
        let listing = || {
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        };
        let opened = Dir::open(&dir).unwrap();
        let name = OsStr::new("state.shm");
        let unnamed = opened.create_hidden(name).unwrap();
        let hidden = listing();
        assert_eq!(hidden.len(), 1);
        assert!(hidden[0].starts_with(".state.shm.shmstore-"), "{hidden:?}");
        reserve(&unnamed.file, 4096).unwrap();
        opened.link(&unnamed.file, name).unwrap();
        drop(unnamed.hidden);
        assert_eq!(listing(), ["state.shm"]);
        assert_eq!(std::fs::metadata(&target).unwrap().len(), 4096);

        // A second creator loses the race, and leaves nothing behind either.
        let loser = opened.create_hidden(name).unwrap();
        let lost = opened.link(&loser.file, name).unwrap_err();
        assert_eq!(lost.kind(), io::ErrorKind::AlreadyExists);
        drop(loser);
        assert_eq!(listing(), ["state.shm"]);
    }
}
