//! Helpers shared by the benchmarks: cleanup guards, helper processes (the bench binary
//! re-executed with a role), raw shared memory and futex calls for the baselines, a
//! cross-process clock and percentiles.
//!
//! Not every benchmark uses every helper.
#![allow(dead_code)]

use std::ffi::CString;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::libc;

/// Puts this process in the shape of a real service before anything is measured: a second
/// thread, parked for the rest of the run. glibc takes single-thread shortcuts while a
/// process has only one thread (`__libc_single_threaded`: no lock prefix on some internal
/// atomics, cheaper paths in pthread and malloc) and never takes them again once a second
/// thread has started; shmstore's users are services with threads, so every bench binary, its
/// baselines and its helper processes alike, calls this first thing in `main`.
pub fn start_second_thread() {
    std::thread::Builder::new()
        .name("parked".into())
        .spawn(|| loop {
            std::thread::park();
        })
        .expect("start the second thread");
}

/// The environment variable that turns the bench binary into a helper process.
pub const ROLE_VAR: &str = "SHMSTORE_BENCH_ROLE";
/// The helper's argument (region or object names, separated by `,`).
pub const ARG_VAR: &str = "SHMSTORE_BENCH_ARG";
/// The pid of the bench process that spawned the helper.
const PARENT_VAR: &str = "SHMSTORE_BENCH_PARENT";

/// Removes the benchmark's regions when dropped, also when a benchmark panics.
pub struct Regions(pub Vec<String>);

impl Drop for Regions {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = shmstore::unlink(n);
        }
    }
}

/// A region name unique to this process: `shmstore-bench-{what}-{pid}`.
pub fn bench_name(what: &str) -> String {
    format!("shmstore-bench-{what}-{}", std::process::id())
}

/// If this process is a helper, its role and argument. A helper asks the kernel to kill it
/// when its parent goes away (also when the parent is killed and runs no destructor).
pub fn helper_role() -> Option<(String, String)> {
    let role = std::env::var(ROLE_VAR).ok()?;
    let arg = std::env::var(ARG_VAR).unwrap_or_default();
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and changes only this process's
    // own death signal; no pointers are passed.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    assert_eq!(rc, 0, "prctl(PR_SET_PDEATHSIG)");
    // The parent may have died before the prctl: then we were re-parented, so leave.
    let parent: i32 = std::env::var(PARENT_VAR)
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    if std::os::unix::process::parent_id() as i32 != parent {
        std::process::exit(0);
    }
    Some((role, arg))
}

/// A helper process: this bench binary re-executed with a role. Killed (`SIGKILL`, by its
/// pid) and reaped when dropped, also when a benchmark panics.
pub struct Helper(std::process::Child);

impl Helper {
    /// Starts `current_exe()` as a helper with `role` and `arg`.
    pub fn spawn(role: &str, arg: &str) -> Helper {
        Helper::spawn_with_stdio(role, arg, Stdio::null(), Stdio::null())
    }

    /// Starts `current_exe()` as a helper with `role` and `arg`, its standard input and output
    /// connected to `stdin` and `stdout` (e.g. the ends of a pipe or socket handed over to it:
    /// the parent's copies are closed once the child is started).
    pub fn spawn_with_stdio(role: &str, arg: &str, stdin: Stdio, stdout: Stdio) -> Helper {
        let exe = std::env::current_exe().expect("current_exe");
        let child = Command::new(exe)
            .env(ROLE_VAR, role)
            .env(ARG_VAR, arg)
            .env(PARENT_VAR, std::process::id().to_string())
            .stdin(stdin)
            .stdout(stdout)
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn helper process");
        Helper(child)
    }

    /// Waits up to `timeout` for the helper to exit by itself (after being told to stop);
    /// `false` if it did not (it is then killed on drop).
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.0.try_wait().expect("try_wait").is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    /// Panics if the helper has exited (it should run until it is killed).
    pub fn assert_running(&mut self) {
        if let Some(status) = self.0.try_wait().expect("try_wait") {
            panic!("helper process exited early: {status}");
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Pins the calling thread to one CPU, so that two processes that ping-pong or race really
/// run on different cores. Best effort: ignored where the CPU does not exist.
pub fn pin_to_cpu(cpu: usize) {
    if cpu >= libc::CPU_SETSIZE as usize {
        return;
    }
    // SAFETY: `cpu_set_t` is a plain C bit array, for which all zeros is valid (the empty set).
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is an owned `cpu_set_t`; CPU_ZERO writes only inside it.
    unsafe { libc::CPU_ZERO(&mut set) };
    // SAFETY: `cpu` is below CPU_SETSIZE (checked above), so CPU_SET writes inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: sched_setaffinity reads `size_of::<cpu_set_t>()` bytes of `set`, which it has.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
}

/// `CLOCK_MONOTONIC` in nanoseconds: the same clock in every process, so a timestamp taken in
/// one process can be subtracted from one taken in another.
#[inline]
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Spins until `deadline`.
pub fn spin_until(deadline: Instant) {
    while Instant::now() < deadline {
        std::hint::spin_loop();
    }
}

/// A POSIX shared-memory object made and mapped without shmstore (`shm_open` + `ftruncate` +
/// `mmap`), for the raw baselines. The creator unlinks it when dropped.
pub struct RawShm {
    ptr: *mut u8,
    len: usize,
    name: String,
    unlink: Option<CString>,
}

impl RawShm {
    /// Creates (exclusively) and maps `/name` of `len` bytes, zero-filled.
    pub fn create(name: &str, len: usize) -> RawShm {
        let cname = CString::new(format!("/{name}")).unwrap();
        // SAFETY: `cname` is a valid C string; the flags create a new object only.
        let fd = unsafe {
            libc::shm_open(
                cname.as_ptr(),
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
                0o600,
            )
        };
        assert!(fd >= 0, "shm_open(create {name}) failed");
        // The guard exists before anything else can fail, so the name is always removed.
        let mut shm = RawShm {
            ptr: std::ptr::null_mut(),
            len,
            name: name.to_string(),
            unlink: Some(cname),
        };
        // SAFETY: `fd` is the descriptor opened above.
        let rc = unsafe { libc::ftruncate(fd, len as libc::off_t) };
        assert_eq!(rc, 0, "ftruncate");
        shm.ptr = map(fd, len);
        shm
    }

    /// Opens and maps the existing `/name` (in a helper process); never unlinks it.
    pub fn open(name: &str, len: usize) -> RawShm {
        let cname = CString::new(format!("/{name}")).unwrap();
        // SAFETY: `cname` is a valid C string.
        let fd = unsafe { libc::shm_open(cname.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC, 0) };
        assert!(fd >= 0, "shm_open({name}) failed");
        RawShm {
            ptr: map(fd, len),
            len,
            name: name.to_string(),
            unlink: None,
        }
    }

    /// The object's name (without the leading `/`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The start of the mapping: page-aligned, `len` bytes, zero-filled at creation.
    pub fn ptr(&self) -> *mut u8 {
        self.ptr
    }
}

/// Maps `len` bytes of `fd` shared and read-write, then closes `fd`.
fn map(fd: i32, len: usize) -> *mut u8 {
    // SAFETY: a fresh shared mapping of an object at least `len` bytes long (ftruncate), at an
    // address the kernel picks (nothing replaced); checked for failure below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    // SAFETY: `fd` is ours and used by nothing else; the mapping stays valid after the close.
    unsafe { libc::close(fd) };
    assert_ne!(p, libc::MAP_FAILED, "mmap");
    p.cast()
}

impl Drop for RawShm {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: the mapping made in `map`, of `len` bytes, unmapped once; every reference
            // into it is tied to `&self`, so none outlives this.
            unsafe { libc::munmap(self.ptr.cast(), self.len) };
        }
        if let Some(name) = &self.unlink {
            // SAFETY: a valid C string.
            unsafe { libc::shm_unlink(name.as_ptr()) };
        }
    }
}

/// Shared `FUTEX_WAIT` (not `_PRIVATE`: the word is in a mapping shared between processes):
/// sleeps while `*word == expected`, at most `timeout`.
#[inline]
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, aligned 32-bit word; `ts_ptr` is null or a live relative
    // timeout; the kernel only reads both. Every outcome means "re-check".
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
        )
    };
}

/// Shared `FUTEX_WAKE` of every sleeper on `word`.
#[inline]
pub fn futex_wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses the address of the live word as a key.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX) };
}

/// Waits until `word` differs from `seen` and returns its value: optionally spinning for
/// `spin` first (as `wait_for_change` does), then sleeping on the futex. Panics after
/// `timeout` (a helper that died).
pub fn futex_wait_change(
    word: &AtomicU32,
    seen: u32,
    spin: Option<Duration>,
    timeout: Duration,
) -> u32 {
    if let Some(spin) = spin {
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            let now = word.load(Ordering::Acquire);
            if now != seen {
                return now;
            }
            spins += 1;
            if spins % 64 == 0 && start.elapsed() >= spin {
                break;
            }
            std::hint::spin_loop();
        }
    }
    let deadline = Instant::now() + timeout;
    loop {
        let now = word.load(Ordering::Acquire);
        if now != seen {
            return now;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no answer within {timeout:?}");
        futex_wait(word, seen, Some(left));
    }
}

/// Nanosecond latencies summarised: p50, p99, p99.9, max (and the count).
pub struct Percentiles {
    pub n: usize,
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Percentiles {
    pub fn of(mut ns: Vec<u64>) -> Percentiles {
        assert!(!ns.is_empty());
        ns.sort_unstable();
        let at = |p: f64| ns[((ns.len() - 1) as f64 * p).round() as usize];
        Percentiles {
            n: ns.len(),
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: *ns.last().unwrap(),
            mean: ns.iter().sum::<u64>() as f64 / ns.len() as f64,
        }
    }
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {} ns, p99 {} ns, p99.9 {} ns, max {} ns (mean {:.0} ns, n = {})",
            self.p50, self.p99, self.p999, self.max, self.mean, self.n
        )
    }
}

/// The median cost of an empty `Instant::now()` / `elapsed()` pair, to read percentiles by.
pub fn timer_overhead_ns() -> u64 {
    let v: Vec<u64> = (0..100_000)
        .map(|_| {
            let t = Instant::now();
            t.elapsed().as_nanos() as u64
        })
        .collect();
    Percentiles::of(v).p50
}
