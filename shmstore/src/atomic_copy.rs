//! Copying bytes that another process (or thread) may be writing at the same time, without a
//! data race in this process: the copy a seqlock read validates afterwards.
//!
//! [`copy_atomic`] has the effect of relaxed atomic loads of every source byte. Portably it is
//! a loop of relaxed `u64` loads (plain `mov`s on x86-64, 8 bytes at a time). On x86-64 with
//! AVX, payloads of [`WIDE_FROM`] bytes or more are copied 128 bytes per iteration by inline
//! assembly doing 32-byte `vmovdqu` loads: what `memcpy` does, at `memcpy`'s speed (DESIGN
//! §11), where the relaxed `u64` loop costs about 2.5×, since Rust offers no atomic load
//! wider than 8 bytes.
//!
//! Why the assembly is sound is argued at its `unsafe` block; in short, the Rust reference
//! requires an `asm!` block to perform an operation that Rust code could perform, and the
//! compiler treats it as an opaque one. Each byte a `vmovdqu` load returns is the value of
//! one store to that byte (x86 never tears a byte), which is exactly what a relaxed
//! `AtomicU8::load` may return; bytes of one 32-byte load may come from different stores,
//! which byte-wise relaxed loads allow too. So the block is a sequence of relaxed byte loads
//! of the source and plain writes of the destination: the same reasoning as the ecosystem's
//! atomic memcpy (RFC 3301 `AtomicPerByte`, whose `load` is defined as per-byte relaxed
//! atomic loads, and taiki-e's `atomic-memcpy`), done in assembly because Rust has no wider
//! atomic. A torn copy is only bytes, which the caller's version check throws away.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicU8};

/// Payloads from this size on are copied with the wide loop when the CPU has AVX; below it
/// the inlined word loop, unrolled for the payload's constant size, beats a call.
pub(crate) const WIDE_FROM: usize = 256;

/// Copies `len` bytes from shared memory with the effect of relaxed atomic byte loads (see the
/// module docs): wide vector loads on x86-64 with AVX for `len ≥` [`WIDE_FROM`], relaxed `u64`
/// loads otherwise and for the tail.
///
/// # Safety
///
/// `src` must be 8-byte aligned and valid for reads of `len` bytes for the duration of the
/// call, every access to those bytes from this process must be atomic or made by a writer the
/// caller's version check detects, and `dst` must be valid for writes of `len` bytes and not
/// accessed by anything else during the call.
#[inline]
pub(crate) unsafe fn copy_atomic(src: *const u8, dst: *mut u8, len: usize) {
    // SAFETY: the caller's contract, passed on.
    let done = unsafe { copy_wide_prefix(src, dst, len) };
    // SAFETY: `done ≤ len` and a multiple of 8, so `src + done` is 8-byte aligned and the rest
    // of both ranges is within the caller's `len` bytes.
    let rest_src = unsafe { src.add(done) };
    // SAFETY: as above, within the `len` writable bytes.
    let rest_dst = unsafe { dst.add(done) };
    // SAFETY: the caller's contract, for the last `len - done` bytes.
    unsafe { copy_words(rest_src, rest_dst, len - done) };
}

/// [`copy_atomic`] for a source of any alignment (a queue slot of a type whose size is not a
/// multiple of 8): relaxed byte loads up to the first 8-byte boundary, then [`copy_atomic`].
/// For an aligned source (every slot of a type whose size is a multiple of 8) it is
/// [`copy_atomic`] plus one test.
///
/// # Safety
///
/// As [`copy_atomic`], without the alignment requirement.
#[inline]
pub(crate) unsafe fn copy_atomic_unaligned(src: *const u8, dst: *mut u8, len: usize) {
    let lead = src.align_offset(8).min(len);
    for i in 0..lead {
        // SAFETY: `i < lead ≤ len`: within the caller's readable bytes.
        let from = unsafe { src.add(i) }.cast_mut();
        // SAFETY: as above, within the writable bytes.
        let to = unsafe { dst.add(i) };
        // SAFETY: one of the caller's readable bytes; a relaxed load of a byte needs no
        // alignment (as in `copy_words`).
        let byte = unsafe { AtomicU8::from_ptr(from) }.load(Relaxed);
        // SAFETY: `to` is one of the caller's writable bytes.
        unsafe { to.write(byte) };
    }
    // SAFETY: `lead ≤ len`: within (or one past) the caller's readable bytes.
    let rest_src = unsafe { src.add(lead) };
    // SAFETY: as above, within the writable bytes.
    let rest_dst = unsafe { dst.add(lead) };
    // SAFETY: `rest_src` is 8-byte aligned (or `lead == len` and nothing is left to copy); the
    // rest of both ranges is within the caller's `len` bytes, under the caller's contract.
    unsafe { copy_atomic(rest_src, rest_dst, len - lead) };
}

/// Copies the longest prefix of `len` bytes the wide loop can (a multiple of [`WIDE_BLOCK`])
/// when the CPU has AVX and `len ≥` [`WIDE_FROM`], and returns its length (0 otherwise).
///
/// # Safety
///
/// As [`copy_atomic`].
#[cfg(target_arch = "x86_64")]
#[inline]
unsafe fn copy_wide_prefix(src: *const u8, dst: *mut u8, len: usize) -> usize {
    if len < WIDE_FROM || !std::arch::is_x86_feature_detected!("avx") {
        return 0;
    }
    let wide = len / WIDE_BLOCK * WIDE_BLOCK;
    // SAFETY: AVX is present (checked just above); `wide ≤ len`, so the caller's contract
    // covers the ranges, and `wide` is a positive multiple of `WIDE_BLOCK` (`len ≥ 256`).
    unsafe { copy_wide_avx(src, dst, wide) };
    wide
}

/// No wide copy on other targets: the word loop copies everything.
///
/// # Safety
///
/// None needed; `unsafe` to match the x86-64 version.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
unsafe fn copy_wide_prefix(_src: *const u8, _dst: *mut u8, _len: usize) -> usize {
    0
}

/// Bytes the wide loop copies per iteration: four 32-byte registers.
#[cfg(target_arch = "x86_64")]
const WIDE_BLOCK: usize = 128;

/// The wide copy: `len / 128` iterations of four 32-byte loads then four 32-byte stores.
///
/// # Safety
///
/// The CPU supports AVX; `len` is a positive multiple of [`WIDE_BLOCK`]; and
/// [`copy_atomic`]'s contract holds for `src`, `dst` and `len`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[inline(never)]
unsafe fn copy_wide_avx(src: *const u8, dst: *mut u8, len: usize) {
    debug_assert!(len > 0 && len % WIDE_BLOCK == 0);
    // SAFETY:
    // - what it touches: it reads exactly the bytes `src .. src + len` and writes exactly
    //   `dst .. dst + len` (iteration `i` reads and writes bytes `128 i .. 128 i + 128`, for
    //   `i < len / 128`), through the pointers passed as operands, so with their provenance;
    //   both ranges are valid for the call (caller). It changes only the registers declared as
    //   outputs (the four vector registers, the two pointers and the counter) and the status
    //   flags (no `preserves_flags`), touches no stack (`nostack`), leaves the direction flag
    //   clear and ends with `vzeroupper`, so no AVX state leaks into SSE code.
    // - alignment: `vmovdqu` accepts any address; the source is 8-byte aligned (the word
    //   loop needs that for what follows), the destination may be anything.
    // - the reads, in Rust's model: x86 performs every load as accesses that are at least
    //   byte-atomic, so each byte loaded is the value of one store to it; the block therefore
    //   does what `len` relaxed `AtomicU8::load`s of the source could do, which the reference
    //   (`asm.evaluation`) requires of it, and relaxed atomic loads cannot be a data race with
    //   the atomic accesses of this process nor do they make the caller's detected writer
    //   more of one than the word loop already does (module docs of `snapshot`). They are
    //   loads only, so a read-only mapping is fine. Any mix of old and new bytes is a value
    //   the copy may hold: the destination is bytes, validated or discarded by the caller.
    // - the writes: plain stores to `dst`, which nothing else accesses during the call
    //   (caller): what `ptr::write` of those bytes would do; every byte is written, so the
    //   destination is initialised afterwards.
    // - the loop: the counter starts at `len / 128 ≥ 1`, so `dec`/`jnz` runs exactly that
    //   many iterations and stops.
    unsafe {
        std::arch::asm!(
            "2:",
            "vmovdqu {a}, ymmword ptr [{src}]",
            "vmovdqu {b}, ymmword ptr [{src} + 32]",
            "vmovdqu {c}, ymmword ptr [{src} + 64]",
            "vmovdqu {d}, ymmword ptr [{src} + 96]",
            "vmovdqu ymmword ptr [{dst}], {a}",
            "vmovdqu ymmword ptr [{dst} + 32], {b}",
            "vmovdqu ymmword ptr [{dst} + 64], {c}",
            "vmovdqu ymmword ptr [{dst} + 96], {d}",
            "add {src}, 128",
            "add {dst}, 128",
            "dec {blocks}",
            "jnz 2b",
            "vzeroupper",
            src = inout(reg) src => _,
            dst = inout(reg) dst => _,
            blocks = inout(reg) len / WIDE_BLOCK => _,
            a = out(ymm_reg) _,
            b = out(ymm_reg) _,
            c = out(ymm_reg) _,
            d = out(ymm_reg) _,
            options(nostack),
        );
    }
}

/// The portable copy: relaxed `u64` loads, then relaxed byte loads for the last `len % 8`.
///
/// # Safety
///
/// As [`copy_atomic`].
#[inline]
unsafe fn copy_words(src: *const u8, dst: *mut u8, len: usize) {
    let words = len / 8;
    for i in 0..words {
        // SAFETY: `8i + 8 ≤ len`: within the `len` readable bytes.
        let from = unsafe { src.add(i * 8) }.cast::<u64>().cast_mut();
        // SAFETY: as above, within the `len` writable bytes.
        let to = unsafe { dst.add(i * 8) }.cast::<u64>();
        // SAFETY: `from` is 8-byte aligned (src is) and readable for the call; the caller
        // guarantees the access pattern that makes an atomic view sound. A relaxed load of a
        // register-wide atomic, so sound through a read-only mapping (see `LoadAcquire`).
        let word = unsafe { AtomicU64::from_ptr(from) }.load(Relaxed);
        // SAFETY: `to .. to + 8` is within the `len` writable bytes; unaligned is allowed.
        unsafe { to.write_unaligned(word) };
    }
    for i in words * 8..len {
        // SAFETY: `i < len`: within the readable bytes.
        let from = unsafe { src.add(i) }.cast_mut();
        // SAFETY: as above, within the writable bytes.
        let to = unsafe { dst.add(i) };
        // SAFETY: as for the words; a byte needs no alignment.
        let byte = unsafe { AtomicU8::from_ptr(from) }.load(Relaxed);
        // SAFETY: `to` is one of the `len` writable bytes.
        unsafe { to.write(byte) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length up to past two wide blocks, at every source offset a caller can give (a
    /// multiple of 8) and any destination offset: the copy equals the source, and no byte
    /// around the destination range changes.
    #[test]
    fn copies_every_length_and_offset_exactly() {
        let source: Vec<u64> = (0..80u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        let source_bytes: Vec<u8> = source.iter().flat_map(|w| w.to_ne_bytes()).collect();
        for len in 0..=300 {
            for src_words in 0..4 {
                for dst_offset in 0..9 {
                    let mut out = vec![0xA5u8; 320];
                    let from = source[src_words..].as_ptr().cast::<u8>();
                    let to = out[dst_offset..].as_mut_ptr();
                    // SAFETY: `src_words * 8 + len ≤ 24 + 300 < 640` bytes of `source`, which
                    // is 8-byte aligned and not written during the call; `dst_offset + len ≤
                    // 308 < 320` bytes of `out`, which only this call touches.
                    unsafe { copy_atomic(from, to, len) };
                    let start = src_words * 8;
                    assert_eq!(
                        out[dst_offset..dst_offset + len],
                        source_bytes[start..start + len],
                        "len {len}, source word {src_words}, destination offset {dst_offset}"
                    );
                    assert!(out[..dst_offset].iter().all(|&b| b == 0xA5), "wrote before");
                    assert!(
                        out[dst_offset + len..].iter().all(|&b| b == 0xA5),
                        "wrote after"
                    );
                }
            }
        }
    }

    /// The copy for sources of any alignment: every length up to past two wide blocks, at
    /// every byte offset of the source, equals the source and writes nothing around it.
    #[test]
    fn copies_unaligned_sources_exactly() {
        let source: Vec<u64> = (0..80u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        let source_bytes: Vec<u8> = source.iter().flat_map(|w| w.to_ne_bytes()).collect();
        for len in 0..=300 {
            for src_offset in 0..17 {
                let mut out = vec![0xA5u8; 320];
                let from = source_bytes_of(&source, src_offset);
                let to = out[1..].as_mut_ptr();
                // SAFETY: `src_offset + len ≤ 316 < 640` bytes of `source`, not written during
                // the call; `1 + len ≤ 301 < 320` bytes of `out`, which only this call touches.
                unsafe { copy_atomic_unaligned(from, to, len) };
                assert_eq!(
                    out[1..1 + len],
                    source_bytes[src_offset..src_offset + len],
                    "len {len}, source offset {src_offset}"
                );
                assert_eq!(out[0], 0xA5, "wrote before");
                assert!(out[1 + len..].iter().all(|&b| b == 0xA5), "wrote after");
            }
        }
    }

    /// The address of byte `offset` of `words` (within its 8 × len bytes).
    fn source_bytes_of(words: &[u64], offset: usize) -> *const u8 {
        assert!(offset <= words.len() * 8);
        // SAFETY: `offset` is within the slice's bytes or one past them (asserted).
        unsafe { words.as_ptr().cast::<u8>().add(offset) }
    }

    /// The wide path is taken where the CPU has it: 4 KiB, the size the benchmark measures.
    #[test]
    fn copies_a_page() {
        let source: Vec<u64> = (0..512u64).collect();
        let mut out = vec![0u64; 512];
        // SAFETY: both are 4 KiB, 8-byte aligned, touched by nothing else during the call.
        unsafe { copy_atomic(source.as_ptr().cast(), out.as_mut_ptr().cast(), 4096) };
        assert_eq!(out, source);
    }
}
