//! Lock-free snapshot reads and published versions.
//!
//! A reader copies the payload with word-sized relaxed atomic loads between two loads of the
//! version, and keeps the copy only if the version did not move (a seqlock read; in the default
//! mode the version also picks which of the two copies to read, see [`crate::lock`]).
//!
//! Why atomic loads: the writer may be storing into the bytes being copied (that is what the
//! version check detects). A plain `memcpy` racing with a write is a data race, which Rust
//! treats as undefined behaviour in the reading process even if the result is discarded;
//! relaxed atomic loads cannot race in that sense, may observe any mix of old and new words,
//! and the version check throws such a mix away. The writer's side lives in another process or
//! writes through a guard with ordinary stores; the reader's process never performs a
//! non-atomic read of bytes a writer may be storing into. A loop of relaxed `u64` loads
//! compiles to plain `mov`s on x86-64 and measured faster here than `atomic-memcpy` (DESIGN §7).

use std::mem::MaybeUninit;
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::sync::atomic::{fence, AtomicU64, AtomicU8};
use std::time::Duration;

use crate::lock::Wait;
use crate::region::Region;
use crate::sys::futex;
use crate::sys::mutex::LockFailure;
use crate::sys::process::thread_token;

/// Spins on an odd in-place version this many times before trying to recover or sleeping.
const SPINS_BEFORE_SLEEP: u32 = 200;

impl Region {
    /// The last published version: never the odd value of a write in progress.
    pub(crate) fn published_version(&self) -> u64 {
        self.header().version.load(Acquire) & !1
    }

    /// A consistent copy of the payload into `out` (`payload_size` bytes), without the lock.
    ///
    /// # Safety
    ///
    /// `out` must be valid for writes of `payload_size` bytes.
    pub(crate) unsafe fn snapshot_into(&self, out: *mut u8) {
        let h = self.header();
        let size = self.info().layout.payload_size;
        let mut odd_seen = 0u32;
        loop {
            let before = h.version.load(Acquire);
            let source = match (before & 1 == 1, self.second_copy()) {
                (false, _) => self.working_copy(),
                (true, Some(second)) => second,
                (true, None) => {
                    odd_seen += 1;
                    self.wait_for_writer(odd_seen, before);
                    continue;
                }
            };
            // SAFETY: `source` is one of the payload copies, `size` bytes inside the mapping and
            // aligned to at least 64; `out` is valid for `size` bytes (caller).
            unsafe { copy_atomic(source, out, size) };
            fence(Acquire);
            if h.version.load(Relaxed) == before {
                return;
            }
            std::hint::spin_loop();
        }
    }

    /// In place, the version is odd: a writer is busy, or died. Spin briefly, then recover a
    /// dead writer (the lock says whether one is alive) or sleep until the version moves.
    #[cold]
    fn wait_for_writer(&self, odd_seen: u32, odd: u64) {
        if odd_seen < SPINS_BEFORE_SLEEP {
            std::hint::spin_loop();
            return;
        }
        if self.holder.load(Relaxed) == thread_token() {
            panic!(
                "read() on in-place region `{}` from the thread whose guard is writing it would \
                 wait for itself; read through the guard instead",
                self.name()
            );
        }
        match self.acquire(Wait::No) {
            // Free: whoever made the version odd is gone, and acquiring repaired it.
            // SAFETY: just acquired by this thread; nothing was written, so the size is unused
            // but correct.
            Ok(_) => unsafe { self.release(false, self.info().layout.payload_size) },
            Err(LockFailure::WouldBlock) => futex::wait_low_half(
                &self.header().version,
                odd as u32,
                Some(Duration::from_millis(1)),
            ),
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// Copies `len` bytes from shared memory with relaxed atomic loads (8 bytes at a time, then
/// single bytes).
///
/// # Safety
///
/// `src` must be 8-byte aligned and valid for reads of `len` bytes for the duration of the
/// call, every access to those bytes from this process must be atomic or made by a writer the
/// caller's version check detects, and `dst` must be valid for writes of `len` bytes.
#[inline]
pub(crate) unsafe fn copy_atomic(src: *const u8, dst: *mut u8, len: usize) {
    let words = len / 8;
    for i in 0..words {
        // SAFETY: `src + 8i` is 8-byte aligned (src is) and within the `len` readable bytes;
        // the caller guarantees the access pattern that makes an atomic view sound.
        let word =
            unsafe { AtomicU64::from_ptr(src.add(i * 8).cast::<u64>().cast_mut()) }.load(Relaxed);
        // SAFETY: `dst + 8i .. + 8` is within the `len` writable bytes; unaligned is allowed.
        unsafe { dst.add(i * 8).cast::<u64>().write_unaligned(word) };
    }
    for i in words * 8..len {
        // SAFETY: as above, for a single byte.
        let byte = unsafe { AtomicU8::from_ptr(src.add(i).cast_mut()) }.load(Relaxed);
        // SAFETY: within the `len` writable bytes.
        unsafe { dst.add(i).write(byte) };
    }
}

/// A `T` read from the region with [`Region::snapshot_into`].
pub(crate) fn snapshot<T: bytemuck::Pod>(region: &Region) -> T {
    debug_assert_eq!(region.info().layout.payload_size, std::mem::size_of::<T>());
    let mut out = MaybeUninit::<T>::uninit();
    // SAFETY: `out` has room for `size_of::<T>()` bytes, which is the payload size (the region
    // was validated for `T`).
    unsafe { region.snapshot_into(out.as_mut_ptr().cast::<u8>()) };
    // SAFETY: every byte was written by the copy, and `T: Pod` accepts any bytes.
    unsafe { out.assume_init() }
}
