//! Shared pieces of shmstore's cross-process integration tests: the payload types (used by the
//! tests and by the `shm-helper` binary they spawn), unique region names, the one cleanup guard
//! ([`Place`]) that removes regions, files and segments even when a test panics, the backend
//! matrix ([`for_each_backend!`]), and a handle on a spawned helper process that the
//! tests synchronise with through its stdin and stdout lines (never through sleeps).
//!
//! Every region name starts with `shmstore-test` so that CI can check `/dev/shm` for leftovers.
//! The same holds for the temporary directories of file regions (under the system's temporary
//! directory), and System V regions use keys `0x5e......` (see [`Place`]), so a leftover segment
//! shows in `ipcs -m` under a recognisable key.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use std::os::unix::process::ExitStatusExt;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use shmstore::{Error, Location, ShmQueue, ShmType};

/// The directory behind `shm_open` on Linux.
pub const SHM_DIR: &str = "/dev/shm";

/// A counter that every increment writes twice, so a torn read shows as `count != mirror`.
#[derive(ShmType, Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Counter {
    /// The count.
    pub count: u64,
    /// Always equal to `count` in a committed value.
    pub mirror: u64,
}

impl Counter {
    /// A counter at `n`.
    pub fn at(n: u64) -> Counter {
        Counter {
            count: n,
            mirror: n,
        }
    }
}

/// Two fields a writer updates one after the other: a holder that dies between the two leaves
/// a visibly partial write.
#[derive(ShmType, Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Pair {
    /// Written first.
    pub a: u64,
    /// Written second.
    pub b: u64,
}

/// A 4 KiB value that writers fill with one number in every word: a snapshot whose words
/// differ is a torn read.
#[derive(ShmType, Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Page {
    /// All equal in a committed value.
    pub words: [u64; 512],
}

impl Page {
    /// A page with every word `n`.
    pub fn filled(n: u64) -> Page {
        Page { words: [n; 512] }
    }

    /// The number in every word, or `None` if the words differ (a torn read).
    pub fn uniform(&self) -> Option<u64> {
        let first = self.words[0];
        self.words.iter().all(|&w| w == first).then_some(first)
    }
}

/// A 1 MiB value whose writers set its first and last words to the same number, and nothing
/// else: each write is quick, so versions move faster than a reader can copy the value, and a
/// snapshot whose two ends differ is torn.
#[derive(ShmType, Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BigPage {
    /// The first and last are equal in a committed value.
    pub words: [u64; 131_072],
}

impl BigPage {
    /// Sets both ends to `n`.
    pub fn set_ends(&mut self, n: u64) {
        self.words[0] = n;
        self.words[131_071] = n;
    }

    /// The number at both ends, or `None` if they differ (a torn read).
    pub fn ends(&self) -> Option<u64> {
        (self.words[0] == self.words[131_071]).then_some(self.words[0])
    }
}

/// The test process's version of a type that the helper binary also defines, under the same
/// name, with the field `burst` retyped (`f32` there): "two binaries" that disagree.
#[derive(ShmType, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct Limits {
    /// Same in both binaries.
    pub rate: u32,
    /// `u32` here, `f32` in the helper.
    pub burst: u32,
    /// Same in both binaries.
    pub seq: u64,
}

/// A 64-byte queue element whose every word is derived from `(producer, seq)` and whose last
/// word is a checksum of the others: an element mixed from two pushes, or half-written, fails
/// [`is_intact`](Self::is_intact).
#[derive(ShmType, Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Msg {
    /// Which producer pushed it.
    pub producer: u64,
    /// Its number in that producer's stream.
    pub seq: u64,
    /// Filler derived from `producer` and `seq`, so that two elements never share a word.
    pub words: [u64; 5],
    /// A checksum of the seven words above.
    pub check: u64,
}

impl Msg {
    /// Element `seq` of `producer`'s stream.
    pub fn new(producer: u64, seq: u64) -> Msg {
        let mut words = [0u64; 5];
        let mut state = producer.rotate_left(32) ^ seq;
        for w in &mut words {
            state = splitmix64(state);
            *w = state;
        }
        let mut msg = Msg {
            producer,
            seq,
            words,
            check: 0,
        };
        msg.check = msg.checksum();
        msg
    }

    fn checksum(&self) -> u64 {
        [self.producer, self.seq]
            .iter()
            .chain(&self.words)
            .fold(0x9e37_79b9_7f4a_7c15, |sum, &w| splitmix64(sum ^ w))
    }

    /// Whether every word is the one [`new`](Self::new) writes for this producer and number.
    pub fn is_intact(&self) -> bool {
        *self == Msg::new(self.producer, self.seq)
    }
}

/// One step of the SplitMix64 generator: a cheap, well-mixing bijection on `u64`.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// How many worker slots a [`Tally`] has: the torture test runs one worker process per slot.
pub const TALLY_WORKERS: usize = 6;

/// The torture test's payload. Every update adds 1 to `total`, then (after a pause, so that a
/// kill often lands in between) 1 to the updating worker's own slot: in a committed value,
/// `total == sum(per_worker)`.
#[derive(ShmType, Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Tally {
    /// Written first by every update.
    pub total: u64,
    /// Slot `i` is written second by worker `i`'s updates.
    pub per_worker: [u64; TALLY_WORKERS],
}

impl Tally {
    /// The sum of the per-worker slots (wrapping, since creators store arbitrary tokens).
    pub fn sum(&self) -> u64 {
        self.per_worker.iter().fold(0u64, |s, &w| s.wrapping_add(w))
    }

    /// Whether `total == sum(per_worker)`: true of every committed value.
    pub fn is_consistent(&self) -> bool {
        self.total == self.sum()
    }
}

/// The capacity of the queues that the tests share with the helper. Small enough that tests
/// fill it in a moment, large enough that a stream does not stall on every element.
pub const QUEUE_CAPACITY: usize = 256;

/// The queue type the tests and the helper both open.
pub type MsgQueue = ShmQueue<Msg, QUEUE_CAPACITY>;

/// How many `u64` words a [`Frame`] holds: 16 MiB, far more than a thread's stack.
pub const FRAME_WORDS: usize = 2 << 20;

/// A 16 MiB queue element, which only a loan can push (by value it overflows the stack).
pub type Frame = [u64; FRAME_WORDS];

/// The queue of [`Frame`]s that the tests share with the helper: two of them.
pub type FrameQueue = ShmQueue<Frame, 2>;

/// Word `i` (from 1) of frame number `seq`: every word differs from frame to frame and within
/// one. Word 0 is the number itself.
pub fn frame_word(seq: u64, i: usize) -> u64 {
    splitmix64(seq.rotate_left(40) ^ i as u64)
}

/// Writes frame number `seq` in place.
pub fn fill_frame(frame: &mut Frame, seq: u64) {
    frame[0] = seq;
    for (i, word) in frame.iter_mut().enumerate().skip(1) {
        *word = frame_word(seq, i);
    }
}

/// The number of the frame `frame` holds, if every word is that frame's.
pub fn frame_number(frame: &Frame) -> Option<u64> {
    let seq = frame[0];
    let whole = frame
        .iter()
        .enumerate()
        .skip(1)
        .all(|(i, &w)| w == frame_word(seq, i));
    whole.then_some(seq)
}

/// A fresh region name: `shmstore-test-<tag>-<pid>-<counter>`, unique among the tests of every
/// test binary running at the same time.
pub fn unique_name(tag: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("shmstore-test-{tag}-{}-{n}", std::process::id())
}

/// `/dev/shm/<name>`.
pub fn shm_path(name: &str) -> PathBuf {
    Path::new(SHM_DIR).join(name)
}

/// Whether `/dev/shm/<name>` exists (as anything, a dangling symbolic link included).
pub fn exists(name: &str) -> bool {
    shm_path(name).symlink_metadata().is_ok()
}

/// A fresh unique name and the [`Place`] that removes it: the shorthand of
/// `Place::new(Backend::Posix, tag)` for the tests that pass the name around as text.
pub fn region(tag: &str) -> (String, Place) {
    let place = Place::new(Backend::Posix, tag);
    (place.to_string(), place)
}

/// A fresh directory under the system's temporary directory, removed with its contents when
/// dropped (also when the test panics): where helpers write what they cannot print.
#[must_use = "the directory is removed when the guard is dropped"]
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<tmp>/shmstore-test-<tag>-<pid>-<counter>`.
    pub fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(unique_name(tag));
        std::fs::create_dir(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    /// `<dir>/<file>`.
    pub fn join(&self, file: &str) -> PathBuf {
        self.path.join(file)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Where a region lives: the three backends of [`Location`]. The behavioural tests of
/// `tests/backends.rs` run each scenario once per backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// A POSIX shared-memory object, `/dev/shm/NAME` ([`Location::Named`]).
    Posix,
    /// A regular file ([`Location::File`]).
    File,
    /// A System V segment ([`Location::SysV`]).
    SysV,
}

impl Backend {
    /// Every backend.
    pub const ALL: [Backend; 3] = [Backend::Posix, Backend::File, Backend::SysV];
}

/// The first System V key of this process's range: `0x5e` in the top byte, then the low 12 bits
/// of the pid, then a 12-bit counter.
const SYSV_KEY_BASE: u32 = 0x5e00_0000;

/// A fresh System V key, `0x5e00_0000 | (pid & 0xfff) << 12 | counter`, that no segment uses
/// right now (a key that another process's segment holds — a test binary whose pid has the
/// same low 12 bits — is skipped). For a test whose segment another program makes: guard it
/// with [`Place::adopt_key`] once it exists; otherwise take a [`Place`].
pub fn fresh_sysv_key() -> i32 {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let pid_bits = (std::process::id() & 0xfff) << 12;
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        assert!(
            n < 0x1000,
            "this process used up its 4096 System V test keys"
        );
        let key = (SYSV_KEY_BASE | pid_bits | n) as i32;
        // SAFETY: shmget with size 0 and no flags only looks the key up; it creates nothing
        // and touches no memory of this process.
        let id = unsafe { nix::libc::shmget(key, 0, 0) };
        if id < 0 && std::io::Error::last_os_error().raw_os_error() == Some(nix::libc::ENOENT) {
            return key;
        }
    }
}

/// A fresh, unique [`Location`] of one [`Backend`], and the guard that removes what lives
/// there when dropped — also when the test panics:
///
/// - [`Backend::Posix`]: the region name [`unique_name`]`(tag)`;
/// - [`Backend::File`]: `<tag>.shm` in a fresh directory `<tmp>/shmstore-test-<tag>-…` (mode
///   0755, so that a test process dropped to another user can reach the file), removed with
///   everything in it;
/// - [`Backend::SysV`]: a key unique to this process and call (see [`Place::key`]), removed
///   with `IPC_RMID`.
///
/// It displays as the location's text ([`Location::parse`] reads it back), which is how the
/// tests pass it to `shm-helper`.
///
/// This is the tests' one cleanup fixture (here and in `shmstore-cli`'s tests): a test that
/// makes something under a name or key it did not draw from `Place::new` (a name a `Store`
/// derives, an invalid name it plants, a segment a C program made) guards it with
/// [`adopt_name`](Self::adopt_name) or [`adopt_key`](Self::adopt_key); a test with many
/// objects keeps a `Vec<Place>`.
#[must_use = "the region is removed when the guard is dropped"]
#[derive(Debug)]
pub struct Place {
    backend: Backend,
    location: Location,
    /// The directory of a file region.
    dir: Option<TempDir>,
}

impl Place {
    /// A fresh location of `backend`; `tag` goes into its name.
    pub fn new(backend: Backend, tag: &str) -> Place {
        let (location, dir) = match backend {
            Backend::Posix => (Location::Named(unique_name(tag)), None),
            Backend::File => {
                use std::os::unix::fs::PermissionsExt;
                let dir = TempDir::new(tag);
                std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
                    .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", dir.path().display()));
                (Location::File(dir.join(&format!("{tag}.shm"))), Some(dir))
            }
            Backend::SysV => (Location::SysV(fresh_sysv_key()), None),
        };
        Place {
            backend,
            location,
            dir,
        }
    }

    /// A guard for `/dev/shm/<name>`, a name the test chose (valid as a region name or not):
    /// removes the file, symbolic link or empty directory under it when dropped, and ignores
    /// a name that is already gone or that would leave `/dev/shm` (`..`, a `/`).
    pub fn adopt_name(name: &str) -> Place {
        Place {
            backend: Backend::Posix,
            location: Location::Named(name.to_string()),
            dir: None,
        }
    }

    /// A guard for the System V segment under `key`, made by someone else (a C program, a
    /// child): removed with `IPC_RMID` when dropped. Made only once the segment exists, so
    /// that it never removes a segment the test did not create.
    pub fn adopt_key(key: i32) -> Place {
        Place {
            backend: Backend::SysV,
            location: Location::SysV(key),
            dir: None,
        }
    }

    /// Its backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Its location.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The file that holds the region: `/dev/shm/NAME` or the file region's path; `None` for
    /// a System V segment.
    pub fn path(&self) -> Option<PathBuf> {
        match &self.location {
            Location::Named(name) => Some(shm_path(name)),
            Location::File(path) => Some(path.clone()),
            _ => None,
        }
    }

    /// The directory of a file place (removed with the place); `None` for the others.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_ref().map(TempDir::path)
    }

    /// The key of a System V place; `None` for the others.
    pub fn key(&self) -> Option<i32> {
        match self.location {
            Location::SysV(key) => Some(key),
            _ => None,
        }
    }

    /// Whether something lives at the location now: a file (of any kind) under the path, or
    /// a segment under the key.
    pub fn exists(&self) -> bool {
        match (&self.location, self.path()) {
            (_, Some(path)) => path.symlink_metadata().is_ok(),
            (Location::SysV(key), None) => {
                // SAFETY: a look-up only, as in `fresh_sysv_key`.
                let id = unsafe { nix::libc::shmget(*key, 0, 0) };
                id >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(nix::libc::ENOENT)
            }
            (_, None) => unreachable!("only System V places have no path"),
        }
    }
}

/// A place is where its region lives: `Shm::open(&place)` and the like take it as they take a
/// name, a path or a key.
impl From<&Place> for Location {
    fn from(place: &Place) -> Location {
        place.location().clone()
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.location.fmt(f)
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        match &self.location {
            // A plain unlink of whatever is under the name: a region, another program's file,
            // a symbolic link or a directory a test planted.
            Location::Named(name) => {
                // Never let a name escape the directory (a test may adopt an invalid name).
                if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                    return;
                }
                let path = shm_path(name);
                if std::fs::remove_file(&path).is_err() {
                    let _ = std::fs::remove_dir(&path);
                }
            }
            location => match shmstore::unlink(location) {
                Ok(()) | Err(shmstore::Error::NotFound { .. }) => {}
                Err(e) => eprintln!("warning: cannot remove {location}: {e}"),
            },
        }
        // `dir`, dropped next, removes a file region's directory with whatever is left in it.
    }
}

/// Spawns the package's `shm-helper` binary with the given arguments (see [`Helper`]).
///
/// A macro because only integration tests know the binary's path (`CARGO_BIN_EXE_shm-helper`).
#[macro_export]
macro_rules! helper {
    ($($arg:expr),* $(,)?) => {
        $crate::Helper::spawn(
            env!("CARGO_BIN_EXE_shm-helper"),
            &[$(::std::string::ToString::to_string(&$arg)),*],
        )
    };
}

/// A running `shm-helper` process, with its stdin and stdout piped to the test (stderr is
/// inherited, so its panics show in the test's output). Killed with SIGKILL and reaped when
/// dropped, so a failing test never leaves a child behind.
#[derive(Debug)]
pub struct Helper {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    what: String,
    reaped: bool,
}

impl Helper {
    /// Starts `exe` with `args`.
    pub fn spawn(exe: &str, args: &[String]) -> Helper {
        let what = format!("shm-helper {}", args.join(" "));
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Helper {
            child,
            stdin,
            stdout,
            what,
            reaped: false,
        }
    }

    /// The child's pid.
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// The next line the child prints, without its newline. Panics if the child exits first.
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("reading from {}: {e}", self.what));
        if n == 0 {
            let status = self.child.wait();
            self.reaped = true;
            panic!(
                "{} exited ({status:?}) instead of printing a line",
                self.what
            );
        }
        line.truncate(line.trim_end_matches('\n').len());
        line
    }

    /// Reads the next line and checks that it is `expected`.
    pub fn expect(&mut self, expected: &str) {
        let line = self.line();
        assert_eq!(line, expected, "unexpected output from {}", self.what);
    }

    /// Sends one line to the child's stdin.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("writing to {}: {e}", self.what));
    }

    /// Closes stdin, reads the rest of stdout, waits for the child and returns its exit status
    /// and the lines it printed meanwhile.
    pub fn finish(mut self) -> (ExitStatus, Vec<String>) {
        self.stdin = None;
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            match self.stdout.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => lines.push(line.trim_end_matches('\n').to_string()),
            }
        }
        let status = self
            .child
            .wait()
            .unwrap_or_else(|e| panic!("waiting for {}: {e}", self.what));
        self.reaped = true;
        (status, lines)
    }

    /// [`finish`](Self::finish), asserting that the child exited with status 0.
    pub fn finish_ok(self) -> Vec<String> {
        let what = self.what.clone();
        let (status, lines) = self.finish();
        assert!(
            status.success(),
            "{what} failed: {status}; output {lines:?}"
        );
        lines
    }

    /// Kills the child with SIGKILL and waits until it is gone: when this returns, the kernel
    /// has released its locks (robust mutexes, byte locks) and closed its descriptors.
    pub fn kill(mut self) {
        self.kill_and_reap();
    }

    /// Sends SIGKILL without waiting for the child to die: to kill several children at the same
    /// moment, before reaping any of them (with [`kill`](Self::kill) or
    /// [`kill_and_finish`](Self::kill_and_finish)).
    pub fn send_kill(&self) {
        if !self.reaped {
            // Not reaped yet, so the pid cannot have been reused.
            let _ = kill(self.pid(), Signal::SIGKILL);
        }
    }

    /// Kills the child with SIGKILL, then returns its exit status and every line it printed
    /// that was not read yet: what it reported right up to its death. A child that had already
    /// exited shows its own status instead of the signal.
    pub fn kill_and_finish(self) -> (ExitStatus, Vec<String>) {
        if !self.reaped {
            // Not reaped yet, so the pid cannot have been reused.
            let _ = kill(self.pid(), Signal::SIGKILL);
        }
        self.finish()
    }

    fn kill_and_reap(&mut self) {
        if !self.reaped {
            let _ = kill(self.pid(), Signal::SIGKILL);
            let _ = self.child.wait();
            self.reaped = true;
        }
    }

    /// Waits until the child's main thread sleeps in a futex wait (blocked in `lock()`).
    pub fn wait_until_blocked(&self) {
        wait_until_blocked(&Path::new("/proc").join(self.child.id().to_string()));
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.kill_and_reap();
    }
}

/// Waits until the task whose `/proc` directory is `task` sleeps in a futex wait, the way a
/// thread blocked in `pthread_mutex_lock` does. Used to make sure a locker is really blocked
/// before the lock holder is killed. Gives up (panics) only after a minute.
pub fn wait_until_blocked(task: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let wchan = std::fs::read_to_string(task.join("wchan")).unwrap_or_default();
        let syscall = std::fs::read_to_string(task.join("syscall")).unwrap_or_default();
        let in_futex = syscall
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<i64>().ok())
            == Some(nix::libc::SYS_futex);
        if wchan.contains("futex") || in_futex {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} never blocked in a futex wait (wchan {wchan:?}, syscall {syscall:?})",
            task.display()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The name of an error's variant, for the helper to print and the tests to compare.
pub fn variant(error: &shmstore::Error) -> &'static str {
    use shmstore::Error;
    match error {
        Error::InvalidName { .. } => "InvalidName",
        Error::InvalidLocation { .. } => "InvalidLocation",
        Error::NotFound { .. } => "NotFound",
        Error::AlreadyExists { .. } => "AlreadyExists",
        Error::LayoutMismatch { .. } => "LayoutMismatch",
        Error::Corrupt { .. } => "Corrupt",
        Error::Incomplete { .. } => "Incomplete",
        Error::PermissionDenied { .. } => "PermissionDenied",
        Error::Timeout { .. } => "Timeout",
        Error::Io { .. } => "Io",
        Error::WrongKind { .. } => "WrongKind",
        Error::CapacityMismatch { .. } => "CapacityMismatch",
        Error::QueueFull { .. } => "QueueFull",
        Error::QueueClosed { .. } => "QueueClosed",
        Error::RoleTaken { .. } => "RoleTaken",
        Error::LockedByReader { .. } => "LockedByReader",
        Error::Removed { .. } => "Removed",
        Error::QueueModeMismatch { .. } => "QueueModeMismatch",
        Error::MessageTooLarge { .. } => "MessageTooLarge",
        _ => "unknown",
    }
}

/// Whether this process may `setuid`, `chown` to another user (is root). Tests that need it
/// say so and pass vacuously otherwise.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Checks that `e`'s message mentions every one of `needles`.
pub fn assert_mentions(e: &Error, needles: &[&str]) {
    let msg = e.to_string();
    for needle in needles {
        assert!(msg.contains(needle), "{needle:?} missing from: {msg}");
    }
}

/// Checks that a helper was ended by our SIGKILL, not by a failure of its own before it.
pub fn assert_killed(status: ExitStatus, lines: &[String]) {
    assert_eq!(
        status.signal(),
        Some(nix::libc::SIGKILL),
        "the helper failed before it was killed: {status}; its last lines {:?}",
        &lines[lines.len().saturating_sub(5)..]
    );
}

/// The number in a helper's `WORD N` progress line.
pub fn parse_progress(line: &str, word: &str) -> u64 {
    line.strip_prefix(word)
        .and_then(|rest| rest.strip_prefix(' '))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("expected `{word} N`, read {line:?}"))
}

/// `len` bytes of deterministic noise (xorshift64*) from `seed`, so no `rand` dependency.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

/// Runs a scenario written once, as a function of a [`Backend`], as one `#[test]` per
/// backend: `scenario::posix`, `scenario::file` and `scenario::sysv`, each calling
/// `scenario(Backend::…)` of the enclosing module. Each topic's test file runs its own matrix:
///
/// ```text
/// shmstore_tests::for_each_backend!(
///     a_holder_killed_before_committing_is_rolled_back,
///     regression_split_brain_when_a_stopped_repairer_renamed_late [sysv: REPAIRED_OTHERWISE],
/// );
/// ```
///
/// A backend that cannot do what a scenario tests is named in the invocation with the reason,
/// `scenario [sysv: "why"]` (a string, or a constant of the test file): its test still exists,
/// prints the reason and runs nothing (see [`run_scenario`]), so the matrix says what each
/// backend does not do.
#[macro_export]
macro_rules! for_each_backend {
    ($($scenario:ident $([$($skip:ident: $why:expr),+ $(,)?])?),* $(,)?) => {$(
        mod $scenario {
            // The skip reasons may name constants of the test file.
            #[allow(unused_imports)]
            use super::*;
            use $crate::Backend;

            const SKIPS: &[(&str, &str)] = &[$($((stringify!($skip), $why)),+)?];

            #[test]
            fn posix() {
                $crate::run_scenario(Backend::Posix, SKIPS, super::$scenario);
            }

            #[test]
            fn file() {
                $crate::run_scenario(Backend::File, SKIPS, super::$scenario);
            }

            #[test]
            fn sysv() {
                $crate::run_scenario(Backend::SysV, SKIPS, super::$scenario);
            }
        }
    )*};
}

impl Backend {
    /// The backend's name in test names and in [`for_each_backend!`]'s skip lists: `posix`,
    /// `file` or `sysv`.
    pub fn label(self) -> &'static str {
        match self {
            Backend::Posix => "posix",
            Backend::File => "file",
            Backend::SysV => "sysv",
        }
    }
}

/// Runs `scenario(backend)` unless `skips` names the backend (`(label, reason)` pairs, from
/// [`for_each_backend!`]); a skipped backend prints its reason instead.
pub fn run_scenario(backend: Backend, skips: &[(&str, &str)], scenario: fn(Backend)) {
    match skips.iter().find(|(label, _)| *label == backend.label()) {
        Some((label, why)) => eprintln!("skipped on {label}: {why}"),
        None => scenario(backend),
    }
}

/// The value most tests start a `Pair` region with.
pub const OLD: Pair = Pair { a: 1, b: 2 };

/// How long any wait that should succeed may take, even on a loaded 2-core machine: a bug
/// fails the test instead of hanging it.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// How long to wait for something that must never come.
pub const NEVER: Duration = Duration::from_millis(20);

/// A queue of `mode` created at `place`.
pub fn create_queue(place: &Place, mode: shmstore::QueueMode) -> MsgQueue {
    MsgQueue::options()
        .queue_mode(mode)
        .create(place.location())
        .unwrap()
}

/// Checks that `result` is `NotFound` naming `place`.
pub fn assert_not_found<T: std::fmt::Debug>(result: Result<T, Error>, place: &Place) {
    match result {
        Err(Error::NotFound { name }) => assert_eq!(name, place.to_string()),
        other => panic!("{place}: expected NotFound, got {other:?}"),
    }
}

/// Checks that `result` is `AlreadyExists` naming `place`.
pub fn assert_already_exists<T: std::fmt::Debug>(result: Result<T, Error>, place: &Place) {
    match result {
        Err(Error::AlreadyExists { name }) => assert_eq!(name, place.to_string()),
        other => panic!("{place}: expected AlreadyExists, got {other:?}"),
    }
}

/// Every byte stored at `place`, whatever its backend (a segment is read while no process
/// writes it).
pub fn stored_bytes(place: &Place) -> Vec<u8> {
    match (place.path(), place.key()) {
        (Some(path), _) => std::fs::read(path).unwrap(),
        (None, Some(key)) => segment::read(key),
        (None, None) => unreachable!("a place has a path or a key"),
    }
}

/// Puts `bytes` at `place` without shmstore, the way another program could: a file, or a raw
/// segment (mode 0600) that this process makes with plain `shmget`.
pub fn plant(place: &Place, bytes: &[u8]) {
    match (place.path(), place.key()) {
        (Some(path), _) => std::fs::write(path, bytes).unwrap(),
        (None, Some(key)) => segment::create(key, bytes),
        (None, None) => unreachable!("a place has a path or a key"),
    }
}

/// Raw System V segments, made, read and written without shmstore.
pub mod segment {
    use nix::libc;

    /// The id of the segment with `key`; panics if there is none.
    pub fn id(key: i32) -> i32 {
        // SAFETY: a look-up only: no memory of this process is involved.
        let id = unsafe { libc::shmget(key, 0, 0) };
        assert!(
            id >= 0,
            "shmget({key:#x}): {}",
            std::io::Error::last_os_error()
        );
        id
    }

    /// The size of segment `id`, from `IPC_STAT`.
    pub fn size(id: i32) -> usize {
        // SAFETY: `shmid_ds` is plain data, valid all zero.
        let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
        // SAFETY: IPC_STAT writes one `shmid_ds` into `ds`, which lives across the call.
        let rc = unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) };
        assert_eq!(rc, 0, "IPC_STAT: {}", std::io::Error::last_os_error());
        ds.shm_segsz
    }

    /// Calls `f` with the segment's address and size, attached for the call only.
    pub fn with_attached<R>(key: i32, read_only: bool, f: impl FnOnce(*mut u8, usize) -> R) -> R {
        let id = id(key);
        let flags = if read_only { libc::SHM_RDONLY } else { 0 };
        // SAFETY: the kernel picks a free address (null hint); nothing of this process is
        // overwritten. It is detached below.
        let addr = unsafe { libc::shmat(id, std::ptr::null(), flags) };
        assert_ne!(
            addr as isize,
            -1,
            "shmat: {}",
            std::io::Error::last_os_error()
        );
        let result = f(addr.cast(), size(id));
        // SAFETY: `addr` came from `shmat` and is not used after this.
        let rc = unsafe { libc::shmdt(addr) };
        assert_eq!(rc, 0, "shmdt: {}", std::io::Error::last_os_error());
        result
    }

    /// Makes a segment under `key` with plain `shmget` (mode 0600) and fills it with `bytes`.
    pub fn create(key: i32, bytes: &[u8]) {
        // SAFETY: plain system call; it creates a segment and touches no memory of this process.
        let id =
            unsafe { libc::shmget(key, bytes.len(), libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
        assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
        write(key, bytes);
    }

    /// Every byte of the segment (which no process writes meanwhile).
    pub fn read(key: i32) -> Vec<u8> {
        with_attached(key, true, |addr, len| {
            let mut out = vec![0u8; len];
            // SAFETY: the attached segment is `len` bytes long; nobody writes it meanwhile.
            unsafe { std::ptr::copy_nonoverlapping(addr, out.as_mut_ptr(), len) };
            out
        })
    }

    /// Overwrites the segment's first bytes with `bytes`.
    pub fn write(key: i32, bytes: &[u8]) {
        with_attached(key, false, |addr, len| {
            assert!(bytes.len() <= len);
            // SAFETY: the attached segment is writable and at least `bytes.len()` bytes long;
            // nobody else uses it meanwhile.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), addr, bytes.len()) };
        })
    }
}

/// `shm-helper readonly-lock`: a hostile reader (uid 65534, read access only) holding every
/// lock a reader can take on the object at a [`Place`] (an open-file-description read lock
/// over every byte, and `flock` of kind `sh` or `ex`) until [`release_reader`]. A macro for
/// the reason [`helper!`] is one.
#[macro_export]
macro_rules! lock_as_reader {
    ($place:expr, $flock:expr $(,)?) => {{
        let path = $place.path().expect("a place behind a descriptor");
        let mut reader = $crate::helper!("readonly-lock", path.display(), $flock);
        reader.expect("locked");
        reader
    }};
}

/// Lets a [`lock_as_reader!`] reader go, and checks that it had nothing to complain about.
pub fn release_reader(mut reader: Helper) {
    reader.send("go");
    reader.finish_ok();
}

/// Where a region's header keeps the boot id of the boot that created it (FORMAT.md).
pub const BOOT_ID: std::ops::Range<usize> = 88..104;

/// Flips the bits of a boot id: the same bytes, but from another boot.
pub fn flip_boot_id(bytes: &mut [u8]) {
    for b in &mut bytes[BOOT_ID] {
        *b = !*b;
    }
}

/// The log level of [`ServiceConfig`] (issue 15's realistic configuration).
#[derive(shmstore::ShmEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// The default.
    Info,
    /// Everything.
    Debug,
}

/// Issue 15's realistic service configuration, with only shmstore types and no padding field:
/// what the `values-writer` helper writes and `tests/values.rs` reads.
#[derive(ShmType, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
#[shm(default_zeroed)]
pub struct ServiceConfig {
    /// Requests per second.
    pub rate: f64,
    /// When the configuration last changed.
    pub updated_at: shmstore::value::Timestamp,
    /// A request limit, or none.
    pub request_limit: shmstore::value::Opt<u32>,
    /// The service's name.
    pub service_name: shmstore::value::FixedStr<60>,
    /// Where it runs.
    pub hostname: shmstore::value::FixedStr<60>,
    /// How verbose it is.
    pub log_level: shmstore::value::EnumField<LogLevel>,
    /// Up to 16 upstream ports.
    pub upstream_ports: shmstore::value::FixedVec<u16, 16>,
    /// Feature flag: TLS on.
    pub tls: shmstore::value::Flag,
    /// Feature flag: in maintenance.
    pub maintenance: shmstore::value::Flag,
}

impl ServiceConfig {
    /// The configuration the `values-writer` helper writes (`valid`).
    pub fn example() -> ServiceConfig {
        let mut config = ServiceConfig {
            rate: 2.5,
            updated_at: shmstore::value::Timestamp::from_unix_nanos(1_796_554_822_666_698_771),
            ..ServiceConfig::default()
        };
        config.request_limit.set(Some(500));
        config.service_name.set("billing-api").expect("fits");
        config.hostname.set("db-1.internal").expect("fits");
        config.log_level.set(LogLevel::Info);
        config
            .upstream_ports
            .extend_from_slice(&[8080, 8081, 9090])
            .expect("fits");
        config.tls.set(true);
        config
    }

    /// [`example`](Self::example) as a peer that another program or a newer build wrote:
    /// `service_name`'s length is 200 (its capacity is 60), `hostname` holds `0xff` (not
    /// UTF-8), `log_level` is 99 (no variant), `upstream_ports`' length is 40 (capacity 16),
    /// `tls` is the byte `0x80` (true) and `request_limit`'s presence byte is `0x7f` (present).
    pub fn forged() -> ServiceConfig {
        use core::mem::offset_of;
        let mut config = ServiceConfig::example();
        config.log_level = shmstore::value::EnumField::from_raw(99);
        let size = core::mem::size_of::<ServiceConfig>();
        // SAFETY: `ServiceConfig` is `ShmType`, so `Pod`: it has no padding and every bit
        // pattern is a valid value, so its `size` bytes may be viewed and written as `u8`s; the
        // pointer comes from a live `&mut`, so it is valid, aligned for `u8` and unaliased while
        // `bytes` lives.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut((&mut config as *mut ServiceConfig).cast::<u8>(), size)
        };
        let name = offset_of!(ServiceConfig, service_name);
        bytes[name..name + 4].copy_from_slice(&200u32.to_ne_bytes());
        let host = offset_of!(ServiceConfig, hostname);
        bytes[host + 4] = 0xff;
        let ports = offset_of!(ServiceConfig, upstream_ports);
        bytes[ports..ports + 2].copy_from_slice(&40u16.to_ne_bytes());
        bytes[offset_of!(ServiceConfig, tls)] = 0x80;
        bytes[offset_of!(ServiceConfig, request_limit)] = 0x7f;
        config
    }
}

/// Two versions of a service's config type, as two releases of one program define it (issue
/// 16, rolling upgrades), and a third whose change is refused: the compatibility checks and
/// the rolling-deploy tests build regions of each.
pub mod config_versions {
    use shmstore::value::{EnumField, FixedStr};
    use shmstore::{ShmEnum, ShmType};

    /// Version 1's log levels.
    #[derive(ShmEnum, Clone, Copy, Debug, PartialEq, Eq)]
    #[repr(u8)]
    pub enum LevelV1 {
        /// Errors only.
        Error,
        /// Warnings too.
        Warn,
        /// Everything.
        Info,
    }

    /// Version 2's log levels: one more, with a new value.
    #[derive(ShmEnum, Clone, Copy, Debug, PartialEq, Eq)]
    #[repr(u8)]
    pub enum LevelV2 {
        /// Errors only.
        Error,
        /// Warnings too.
        Warn,
        /// Everything.
        Info,
        /// Even more.
        Debug,
    }

    /// Release 1 of the config.
    #[derive(ShmType, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    #[shm(name = "Config")]
    pub struct ConfigV1 {
        /// Worker threads.
        pub workers: u32,
        /// A request's time limit.
        pub timeout_ms: u32,
        /// The service's name.
        pub service: FixedStr<16>,
        /// How much to log.
        pub level: EnumField<LevelV1>,
        /// Unused; makes the size a multiple of the alignment.
        pub _pad: [u8; 3],
    }

    /// Release 2: `timeout_ms` widened to `u64`, a longer `service`, a new log level, and a new
    /// field `retries`. Compatible with release 1 in the direction that loses nothing.
    #[derive(ShmType, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    #[shm(name = "Config")]
    pub struct ConfigV2 {
        /// Worker threads.
        pub workers: u32,
        /// The new field.
        pub retries: u32,
        /// A request's time limit, widened.
        pub timeout_ms: u64,
        /// The service's name, longer.
        pub service: FixedStr<32>,
        /// How much to log, with a new level.
        pub level: EnumField<LevelV2>,
        /// Unused; makes the size a multiple of the alignment.
        pub _pad: [u8; 3],
    }

    /// A refused change: `workers` became a float.
    #[derive(ShmType, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    #[shm(name = "Config")]
    pub struct ConfigFloatWorkers {
        /// Worker threads, as a float: not the values the region holds.
        pub workers: f32,
        /// A request's time limit.
        pub timeout_ms: u32,
        /// The service's name.
        pub service: FixedStr<16>,
        /// How much to log.
        pub level: EnumField<LevelV1>,
        /// Unused; makes the size a multiple of the alignment.
        pub _pad: [u8; 3],
    }
}

/// A release between 1 and 2 of the config in [`config_versions`]: release 1 plus one field,
/// so that release 1 reads a region of it (the new field kept) while the reverse of release 2
/// is refused.
pub mod config_versions_plus {
    use super::config_versions::LevelV1;
    use shmstore::value::{EnumField, FixedStr};
    use shmstore::ShmType;

    /// Release 1 with `retries` added: every other field the same.
    #[derive(ShmType, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    #[shm(name = "Config")]
    pub struct ConfigV1Plus {
        /// Worker threads.
        pub workers: u32,
        /// The new field, which release 1 does not see.
        pub retries: u32,
        /// A request's time limit.
        pub timeout_ms: u32,
        /// The service's name.
        pub service: FixedStr<16>,
        /// How much to log.
        pub level: EnumField<LevelV1>,
        /// Unused; makes the size a multiple of the alignment.
        pub _pad: [u8; 3],
    }
}

/// A third release of the config in [`config_versions`], after
/// [`ConfigV1Plus`](config_versions_plus::ConfigV1Plus): one more field, so that a region
/// migrated to `ConfigV1Plus` is migrated again, and old handles follow twice.
pub mod config_versions_three {
    use super::config_versions::LevelV1;
    use shmstore::value::{EnumField, FixedStr};
    use shmstore::ShmType;

    /// `ConfigV1Plus` with `max_conns` added: every other field the same.
    #[derive(ShmType, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    #[shm(name = "Config")]
    pub struct ConfigV3 {
        /// Worker threads.
        pub workers: u32,
        /// Added by `ConfigV1Plus`.
        pub retries: u32,
        /// Added by this release.
        pub max_conns: u32,
        /// A request's time limit.
        pub timeout_ms: u32,
        /// The service's name.
        pub service: FixedStr<16>,
        /// How much to log.
        pub level: EnumField<LevelV1>,
        /// Unused; makes the size a multiple of the alignment.
        pub _pad: [u8; 3],
    }
}

/// Message number `seq` of producer `producer` in the byte-channel tests (`channel.rs` and the
/// helper's `channel-send`), at most `max` bytes: its length runs over every value from 1 to
/// `max` (message 0 is 1 byte, message 1 is `max`), its bytes depend on `producer`, `seq` and
/// the position, so a message torn, cut or mixed with another's bytes differs from it.
pub fn channel_message(producer: u64, seq: u64, max: usize) -> Vec<u8> {
    let mix = (producer + 1)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(seq.wrapping_mul(0xbf58_476d_1ce4_e5b9));
    let len = match seq {
        0 => 1,
        1 => max,
        _ => 1 + (mix >> 17) as usize % max,
    };
    (0..len)
        .map(|k| (mix >> ((k % 8) * 8)) as u8 ^ (k / 8) as u8)
        .collect()
}
