//! Sleeping on, and waking, a 32-bit word in shared memory (Linux futexes, process-shared).

use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::Duration;

use nix::libc;

/// Sleeps while `*word == expected`, for at most `timeout` (forever if `None`). Returns early on
/// a wake, a signal, a spurious wake-up or when the word already differs: callers re-check.
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(to_timespec);
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a valid, aligned `AtomicU32` for the duration of the call (the borrow
    // keeps its mapping alive); FUTEX_WAIT (not _PRIVATE) is the shared-memory form keyed on the
    // physical page, which is what every process mapping the region must use; `ts_ptr` is null
    // or points at a live `timespec` holding a relative timeout, as FUTEX_WAIT expects. The call
    // only reads the word; every result (0, EAGAIN, EINTR, ETIMEDOUT) means "re-check".
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
        );
    }
}

/// Wakes every thread of every process sleeping on `word`.
pub(crate) fn wake_all(word: &AtomicU32) {
    // SAFETY: `word` is a valid, aligned `AtomicU32`; FUTEX_WAKE only uses its address as a key
    // and never dereferences anything else.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
    }
}

/// The 32-bit futex word inside a 64-bit counter: its low-order half (FORMAT.md). Only its
/// address is used, by the kernel; Rust code never accesses the counter with mixed sizes.
fn low_half(counter: &AtomicU64) -> *const u32 {
    let base = counter.as_ptr().cast::<u32>().cast_const();
    if cfg!(target_endian = "little") {
        base
    } else {
        base.wrapping_add(1)
    }
}

/// Sleeps while the low 32 bits of `counter` equal `expected_low`, for at most `timeout`.
/// Returns early on wakes, signals and spurious wake-ups: callers re-check.
pub(crate) fn wait_low_half(counter: &AtomicU64, expected_low: u32, timeout: Option<Duration>) {
    let ts = timeout.map(to_timespec);
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `low_half` points at 4 aligned bytes inside the live, 8-byte-aligned `counter`;
    // the shared (not _PRIVATE) FUTEX_WAIT only reads that word atomically in the kernel;
    // `ts_ptr` is null or a live relative timeout.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            low_half(counter),
            libc::FUTEX_WAIT,
            expected_low,
            ts_ptr,
        );
    }
}

/// Wakes every sleeper of [`wait_low_half`] on `counter`, in every process.
pub(crate) fn wake_low_half(counter: &AtomicU64) {
    // SAFETY: FUTEX_WAKE only uses the address of the live word as a key.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            low_half(counter),
            libc::FUTEX_WAKE,
            i32::MAX,
        );
    }
}

fn to_timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    }
}
