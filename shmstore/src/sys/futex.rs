//! Sleeping on, and waking, a 32-bit word in shared memory (Linux futexes, process-shared).
//!
//! The shared (not `_PRIVATE`) operations are used throughout: they key on the physical page,
//! which is what lets processes with different mappings of a region meet on the same word.

use std::marker::PhantomData;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
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

/// [`wake_low_half`], saying how many sleepers it woke (0 when the call failed).
pub(crate) fn wake_low_half_counting(counter: &AtomicU64) -> usize {
    // SAFETY: as in `wait_low_half`.
    unsafe { futex_wake_all(low_half(counter)) }
}

/// Sleeps while `word` holds `expected`, for at most `timeout`, as [`wait`] does; with
/// `also`, while that word too holds its expected value (both at once through [`wait_any`]),
/// where the kernel sleeps on several words. Where it does not ([`waits_on_many`] is false),
/// `also` is left out: nobody there moves it to wake a sleeper (see `wait::clear_if_nobody_woke`).
pub(crate) fn wait_word(
    word: Word<'_>,
    expected: u32,
    also: Option<(Word<'_>, u32)>,
    timeout: Duration,
) {
    match also {
        Some(also) if waits_on_many() => {
            wait_any(&[(word, expected), also], Some(timeout));
        }
        // SAFETY: `word.ptr` points at a 4-byte-aligned word that its borrow keeps mapped.
        _ => unsafe { futex_wait(word.ptr, expected, Some(timeout)) },
    }
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

/// A 32-bit futex word inside a live mapping, for [`wait_any`]: a 32-bit epoch, or the futex
/// half of a 64-bit counter (FORMAT.md). The borrow keeps the mapping alive while the word is
/// in use.
#[derive(Clone, Copy)]
pub(crate) struct Word<'a> {
    ptr: *const u32,
    _borrow: PhantomData<&'a AtomicU32>,
}

impl<'a> Word<'a> {
    /// The word itself.
    pub(crate) fn of(word: &'a AtomicU32) -> Self {
        Word {
            ptr: word.as_ptr().cast_const(),
            _borrow: PhantomData,
        }
    }

    /// The futex half of a 64-bit counter, as [`wait_low_half`] sleeps on it.
    pub(crate) fn low_half(counter: &'a AtomicU64) -> Self {
        Word {
            ptr: low_half(counter),
            _borrow: PhantomData,
        }
    }

    /// Whether two words are the same address (the same word of the same mapping).
    pub(crate) fn same(&self, other: &Word<'_>) -> bool {
        std::ptr::eq(self.ptr, other.ptr)
    }
}

/// The most words one [`wait_any`] sleeps on: the kernel's `FUTEX_WAITV_MAX`.
pub(crate) const WAIT_ANY_MAX: usize = 128;

/// How [`wait_any`] ended. Every case means "re-check the conditions".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitAny {
    /// A wake-up on the word at this index (others may have moved too).
    Woken(usize),
    /// A word already differed from its expected value, a signal, a spurious wake-up, or the
    /// timeout ran out.
    Returned,
    /// This kernel has no `futex_waitv` (before Linux 5.16, or a seccomp filter refuses it):
    /// the call slept on the first word alone for at most [`FALLBACK_SLICE`].
    SleptOnFirst,
}

/// How long [`wait_any`] sleeps on its first word alone where the kernel cannot sleep on
/// several: how late a change of another word can be noticed there.
pub(crate) const FALLBACK_SLICE: Duration = Duration::from_millis(1);

/// Whether `futex_waitv` was found missing (once missing, always: the kernel does not change),
/// or a test made this process behave as if it were ([`force_no_waitv`]).
static NO_WAITV: AtomicBool = AtomicBool::new(false);
/// Whether this process asked the kernel yet ([`waits_on_many`]).
static WAITV_PROBED: AtomicBool = AtomicBool::new(false);

/// Whether this kernel sleeps on several words at once (`futex_waitv`, Linux 5.16+, and no
/// seccomp filter refusing it). Asked once per process, with a call that sleeps on nothing.
pub(crate) fn waits_on_many() -> bool {
    if !WAITV_PROBED.load(Relaxed) {
        // SAFETY: `futex_waitv` with no words (a null array of length 0) reads no memory: a
        // kernel that has it refuses the call with EINVAL; one without it answers ENOSYS (a
        // seccomp filter: EPERM or ENOSYS).
        let r = unsafe {
            libc::syscall(
                libc::SYS_futex_waitv,
                std::ptr::null::<FutexWaitv>(),
                0 as libc::c_uint,
                0 as libc::c_uint,
                std::ptr::null::<libc::timespec>(),
                libc::CLOCK_MONOTONIC,
            )
        };
        if r < 0 && nix::errno::Errno::last() != nix::errno::Errno::EINVAL {
            NO_WAITV.store(true, Relaxed);
        }
        WAITV_PROBED.store(true, Relaxed);
    }
    !NO_WAITV.load(Relaxed)
}

/// Makes this process behave as on a kernel without `futex_waitv` from now on, for tests of
/// that path: [`wait_any`] sleeps on its first word alone, and wakers never clear a sleeper
/// count (`wait::clear_if_nobody_woke`).
pub(crate) fn force_no_waitv() {
    NO_WAITV.store(true, Relaxed);
    WAITV_PROBED.store(true, Relaxed);
}

/// The kernel's `struct futex_waitv`.
#[repr(C)]
struct FutexWaitv {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

/// `FUTEX2_SIZE_U32`: a 32-bit futex word. Without `FUTEX2_PRIVATE`, a shared futex, keyed on
/// the physical page, as every other futex here.
const FUTEX2_SIZE_U32: u32 = 0x02;

/// Sleeps until any of `words` is woken while each still holds its expected value, for at
/// most `timeout` (forever if `None`): `futex_waitv` over the words as shared futexes. Returns
/// at once when one of them already differs. At most [`WAIT_ANY_MAX`] words (more are not
/// slept on: the caller splits them). Where the kernel has no `futex_waitv`, it sleeps on the
/// first word alone for at most [`FALLBACK_SLICE`] ([`WaitAny::SleptOnFirst`]), so that the
/// caller looks at the others that often.
pub(crate) fn wait_any(words: &[(Word<'_>, u32)], timeout: Option<Duration>) -> WaitAny {
    let Some(&(first, first_expected)) = words.first() else {
        if let Some(timeout) = timeout {
            std::thread::sleep(timeout);
        }
        return WaitAny::Returned;
    };
    if !waits_on_many() {
        return sleep_on_first(first, first_expected, timeout);
    }
    let waiters: Vec<FutexWaitv> = words
        .iter()
        .take(WAIT_ANY_MAX)
        .map(|&(word, expected)| FutexWaitv {
            val: u64::from(expected),
            uaddr: word.ptr as u64,
            flags: FUTEX2_SIZE_U32,
            reserved: 0,
        })
        .collect();
    // futex_waitv takes an absolute CLOCK_MONOTONIC deadline.
    let deadline = timeout.and_then(|t| {
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).ok()?;
        let now = Duration::new(
            now.tv_sec().try_into().ok()?,
            now.tv_nsec().try_into().ok()?,
        );
        let at = now.checked_add(t)?;
        Some(libc::timespec {
            tv_sec: at.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: at.subsec_nanos() as libc::c_long,
        })
    });
    let deadline_ptr = deadline
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `waiters` is a live array of `waiters.len()` (at most FUTEX_WAITV_MAX) kernel
    // `futex_waitv` records, each naming a 4-byte-aligned word that its `Word` borrow keeps
    // mapped for the call; the kernel only reads the words, atomically. `deadline_ptr` is null
    // or points at a live absolute timespec on CLOCK_MONOTONIC, the clock named.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex_waitv,
            waiters.as_ptr(),
            waiters.len() as libc::c_uint,
            0 as libc::c_uint,
            deadline_ptr,
            libc::CLOCK_MONOTONIC,
        )
    };
    if r >= 0 {
        return WaitAny::Woken(r as usize);
    }
    match nix::errno::Errno::last() {
        nix::errno::Errno::ENOSYS | nix::errno::Errno::EPERM => {
            NO_WAITV.store(true, Relaxed);
            sleep_on_first(first, first_expected, timeout)
        }
        // EAGAIN (a word differed), EINTR, ETIMEDOUT; EFAULT or EINVAL would mean a word that
        // is not mapped or aligned, which the borrows rule out: re-check either way.
        _ => WaitAny::Returned,
    }
}

/// [`wait_any`] without `futex_waitv`: the first word alone, at most [`FALLBACK_SLICE`].
fn sleep_on_first(first: Word<'_>, expected: u32, timeout: Option<Duration>) -> WaitAny {
    let slice = timeout.map_or(FALLBACK_SLICE, |t| t.min(FALLBACK_SLICE));
    // SAFETY: `first.ptr` points at a 4-byte-aligned word that its borrow keeps mapped.
    unsafe { futex_wait(first.ptr, expected, Some(slice)) };
    WaitAny::SleptOnFirst
}

impl Word<'_> {
    /// The word's value now (a relaxed load: a waker's hint, re-checked by whoever it wakes).
    pub(crate) fn load(&self) -> u32 {
        // SAFETY: `ptr` points at a 4-byte-aligned word in shared memory that the borrow keeps
        // mapped (see `Word`); every access to it is atomic, so viewing it as an `AtomicU32`
        // for one load races with nothing non-atomic.
        unsafe { AtomicU32::from_ptr(self.ptr.cast_mut()) }.load(Relaxed)
    }
}

#[cfg(test)]
mod wait_any_tests {
    use std::sync::atomic::Ordering::SeqCst;
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_word_that_already_differs_returns_at_once() {
        let words = [AtomicU32::new(0), AtomicU32::new(5)];
        let set = [(Word::of(&words[0]), 0), (Word::of(&words[1]), 4)];
        // Forever, were the second word's difference not seen.
        assert_ne!(wait_any(&set, None), WaitAny::Woken(0));
    }

    #[test]
    fn a_wake_on_the_second_word_names_it() {
        let words = Arc::new([AtomicU32::new(0), AtomicU32::new(0)]);
        let sleeper = {
            let words = Arc::clone(&words);
            std::thread::spawn(move || {
                let set = [(Word::of(&words[0]), 0), (Word::of(&words[1]), 0)];
                loop {
                    match wait_any(&set, Some(Duration::from_secs(20))) {
                        WaitAny::Woken(i) => return Some(i),
                        // Woken by the change itself (or the fallback slice): re-check.
                        _ if words[1].load(SeqCst) != 0 => return None,
                        _ => {}
                    }
                }
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        words[1].store(1, SeqCst);
        wake_all(&words[1]);
        let woken = sleeper.join().expect("sleeper");
        if waits_on_many() {
            // Either the kernel named the word, or the store came before the sleep.
            assert!(matches!(woken, Some(1) | None), "{woken:?}");
        }
    }

    #[test]
    fn the_timeout_ends_the_wait() {
        let word = AtomicU32::new(0);
        // Nobody wakes the word: only the timeout can end this (a test runner's timeout
        // reports it if it does not).
        let ended = wait_any(&[(Word::of(&word), 0)], Some(Duration::from_millis(20)));
        assert!(
            matches!(ended, WaitAny::Returned | WaitAny::SleptOnFirst),
            "{ended:?}"
        );
    }
}
