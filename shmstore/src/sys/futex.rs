//! Sleeping on, and waking, a 32-bit word in shared memory (Linux futexes, process-shared).
//!
//! The shared (not `_PRIVATE`) operations are used throughout: they key on the physical page,
//! which is what lets processes with different mappings of a region meet on the same word.

use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::Duration;

use nix::libc;

use super::object::Mapping;

/// Sleeps while `*word == expected`, for at most `timeout` (forever if `None`). Returns early on
/// a wake, a signal, a spurious wake-up or when the word already differs: callers re-check.
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    // SAFETY: the pointer comes from a live `AtomicU32`, which the borrow keeps mapped.
    unsafe { futex_wait(word.as_ptr().cast_const(), expected, timeout) }
}

/// Wakes every thread of every process sleeping on `word`.
pub(crate) fn wake_all(word: &AtomicU32) {
    // SAFETY: as in `wait`.
    unsafe { futex_wake_all(word.as_ptr().cast_const()) };
}

/// Wakes every sleeper on `word`, as [`wake_all`], and says how many there were (0 when the
/// call failed): a futex is how a process with a read-only mapping makes itself known.
pub(crate) fn wake_all_counting(word: &AtomicU32) -> usize {
    // SAFETY: as in `wait`.
    unsafe { futex_wake_all(word.as_ptr().cast_const()) }
}

/// Wakes every sleeper on the 32-bit word at `offset` of `map`, in every process, without this
/// process loading or storing it: `FUTEX_WAKE` only uses the address as a key, and when a peer
/// shrank the object so that the page is gone the kernel answers `EFAULT` (ignored), never a
/// signal. Nothing happens for an offset that is misaligned or outside the mapping.
pub(crate) fn wake_all_at(map: &Mapping, offset: usize) {
    let inside = offset.checked_add(4).is_some_and(|end| end <= map.len());
    if !inside || offset % 4 != 0 {
        return;
    }
    // The address only (no access): `offset + 4 <= map.len()` (checked), so it stays within
    // the mapping.
    let word = map.ptr().wrapping_add(offset).cast::<u32>().cast_const();
    // SAFETY: `word` lies within the live mapping (above), which the borrow of `map` keeps
    // mapped during the call; the mapping starts on a page boundary, so a 4-aligned offset
    // gives a 4-aligned word. FUTEX_WAKE only uses the address as a key.
    unsafe { futex_wake_all(word) };
}

/// Sleeps while the low 32 bits of `counter` equal `expected_low`, for at most `timeout`.
/// Returns early on wakes, signals and spurious wake-ups: callers re-check.
pub(crate) fn wait_low_half(counter: &AtomicU64, expected_low: u32, timeout: Option<Duration>) {
    // SAFETY: `low_half` points at 4 aligned bytes inside the live, 8-byte-aligned `counter`.
    unsafe { futex_wait(low_half(counter), expected_low, timeout) }
}

/// Wakes every sleeper of [`wait_low_half`] on `counter`, in every process.
pub(crate) fn wake_low_half(counter: &AtomicU64) {
    // SAFETY: as in `wait_low_half`.
    unsafe { futex_wake_all(low_half(counter)) };
}

/// The 32-bit futex word inside a 64-bit counter: its low-order half (FORMAT.md). Only its
/// address is used, by the kernel; Rust code never accesses the counter with mixed sizes.
fn low_half(counter: &AtomicU64) -> *const u32 {
    let base = counter.as_ptr().cast::<u32>().cast_const();
    base.wrapping_add(LOW_HALF_OFFSET / 4)
}

/// Where the futex half of a 64-bit counter sits in it, in bytes: 0 on a little-endian host,
/// 4 on a big-endian one.
pub(crate) const LOW_HALF_OFFSET: usize = if cfg!(target_endian = "little") { 0 } else { 4 };

/// `FUTEX_WAIT`.
///
/// # Safety
///
/// `word` must point at a 4-byte-aligned word that stays mapped for the duration of the call.
unsafe fn futex_wait(word: *const u32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is valid and aligned (caller); FUTEX_WAIT only reads it, atomically, in
    // the kernel; `ts_ptr` is null or points at a live relative timeout. Every result (0,
    // EAGAIN, EINTR, ETIMEDOUT) means "re-check", so it is not inspected.
    unsafe {
        libc::syscall(libc::SYS_futex, word, libc::FUTEX_WAIT, expected, ts_ptr);
    }
}

/// `FUTEX_WAKE` of every waiter; returns how many were woken (0 on an error).
///
/// # Safety
///
/// `word` must point at a 4-byte-aligned word that stays mapped for the duration of the call.
unsafe fn futex_wake_all(word: *const u32) -> usize {
    // SAFETY: FUTEX_WAKE only uses the address of the valid word (caller) as a key.
    let woken = unsafe { libc::syscall(libc::SYS_futex, word, libc::FUTEX_WAKE, i32::MAX) };
    usize::try_from(woken).unwrap_or(0)
}
