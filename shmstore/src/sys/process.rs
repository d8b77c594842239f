//! Facts about processes and threads.

use nix::unistd::{geteuid, getpid};

/// This process's id.
pub(crate) fn current_pid() -> u32 {
    getpid().as_raw() as u32
}

/// The effective uid objects are created under and compared against.
pub(crate) fn effective_uid() -> u32 {
    geteuid().as_raw()
}

/// A nonzero token unique to the calling thread among the live threads of this process: the
/// address of a thread-local, which no two live threads share. Cheaper than `gettid`.
#[inline]
pub(crate) fn thread_token() -> usize {
    thread_local!(static TOKEN: u8 = const { 0 });
    TOKEN.with(|t| t as *const u8 as usize)
}

/// The kernel's boot id (`/proc/sys/kernel/random/boot_id`) as 16 bytes, or zeros if unreadable.
/// Read once per process: it cannot change while the process lives, and every create and
/// every read-write open of a file region asks for it.
pub(crate) fn boot_id() -> [u8; 16] {
    static BOOT_ID: std::sync::OnceLock<[u8; 16]> = std::sync::OnceLock::new();
    *BOOT_ID.get_or_init(read_boot_id)
}

fn read_boot_id() -> [u8; 16] {
    let mut out = [0u8; 16];
    if let Ok(text) = std::fs::read_to_string("/proc/sys/kernel/random/boot_id") {
        let hex: Vec<u8> = text.trim().bytes().filter(u8::is_ascii_hexdigit).collect();
        for (i, pair) in hex.chunks(2).take(16).enumerate() {
            let s = std::str::from_utf8(pair).unwrap_or("0");
            out[i] = u8::from_str_radix(s, 16).unwrap_or(0);
        }
    }
    out
}

/// This process's PID namespace: the inode number of `/proc/self/ns/pid` (nsfs numbers its
/// inodes with 32-bit numbers); 0 if `/proc` cannot say. Not cached: it is asked only when a
/// role is taken, and a child created in a new namespace must not inherit its parent's answer.
pub(crate) fn pid_namespace() -> u32 {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata("/proc/self/ns/pid") {
        Ok(meta) => u32::try_from(meta.ino()).unwrap_or_else(|_| {
            // Not on Linux today; fold, and keep 0 for "unknown".
            (meta.ino() ^ (meta.ino() >> 32)) as u32 | 1
        }),
        Err(_) => 0,
    }
}

/// Whether a pid recorded together with PID namespace `pid_ns` is numbered as this process
/// numbers pids, so that [`is_alive`] answers for it. A namespace of 0 (not recorded) counts as
/// this one; if this process cannot tell its own namespace, only that does.
pub(crate) fn numbered_here(pid_ns: u32) -> bool {
    pid_ns == 0 || pid_ns == pid_namespace()
}

/// Whether a process with this pid exists (`kill(pid, 0)`; a process of another user counts).
/// A pid can be reused after its process exits, so `true` may name a different process. The
/// pid is looked up in this process's PID namespace: a pid from another one (see
/// [`numbered_here`]) may name nobody here, or somebody else.
pub(crate) fn is_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for every process of the host (of one time
/// namespace), unlike [`std::time::Instant`], whose value cannot be stored in shared memory.
pub(crate) fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        u64::try_from(t.tv_sec())
            .unwrap_or(0)
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::try_from(t.tv_nsec()).unwrap_or(0))
    })
}
