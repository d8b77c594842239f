//! The header of [`FixedVec`](super::FixedVec) and [`Opt`](super::Opt): one element's worth of
//! bytes in front of the elements.
//!
//! A header of any other size leaves padding before an element of larger alignment or after
//! the last element, and stable Rust cannot size a padding field from `align_of::<T>()`. A
//! header that *is* a `T` makes the value an array of `T` in all but name: padding-free for
//! every `T` and `N`, whatever `T`'s alignment.

use core::mem::size_of;

use crate::layout::{ShmType, TypeLayout};

/// How many leading bytes of a `T`-sized header hold a count: 1 when `T` is one byte, 2 when
/// it is two or three bytes, 4 from four bytes on. The count is an unsigned integer of that
/// width in the host's byte order; the header's other bytes are zero when this crate wrote it.
pub(super) const fn count_width<T>() -> usize {
    match size_of::<T>() {
        0 | 1 => 1,
        2 | 3 => 2,
        _ => 4,
    }
}

/// The largest count a `T`-sized header holds.
pub(super) const fn max_count<T>() -> u64 {
    match count_width::<T>() {
        1 => u8::MAX as u64,
        2 => u16::MAX as u64,
        _ => u32::MAX as u64,
    }
}

/// The count stored in `header`'s leading bytes (see [`count_width`]).
pub(super) fn read_count<T: ShmType>(header: &T) -> u64 {
    let bytes = bytemuck::bytes_of(header);
    match count_width::<T>() {
        1 => u64::from(bytes[0]),
        2 => u64::from(u16::from_ne_bytes([bytes[0], bytes[1]])),
        _ => u64::from(u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])),
    }
}

/// Zeroes `header` and stores `count` in its leading bytes. `count` must be at most
/// [`max_count`] (the callers' capacity checks make sure), else it is cut to the width.
pub(super) fn write_count<T: ShmType>(header: &mut T, count: u64) {
    debug_assert!(count <= max_count::<T>());
    let bytes = bytemuck::bytes_of_mut(header);
    bytes.fill(0);
    let width = count_width::<T>();
    // Truncation is the documented behaviour above; the capacity checks keep it from happening.
    let full = (count as u32).to_ne_bytes();
    let narrow = (count as u16).to_ne_bytes();
    match width {
        1 => bytes[0] = count as u8,
        2 => bytes[..2].copy_from_slice(&narrow),
        _ => bytes[..4].copy_from_slice(&full),
    }
}

/// The layout of a `T`-sized header as the descriptor records it: `[u8; size_of T]`.
pub(super) struct HeaderLayout<T>(core::marker::PhantomData<T>);

impl<T: ShmType> HeaderLayout<T> {
    pub(super) const LAYOUT: TypeLayout =
        TypeLayout::array(&u8::LAYOUT, size_of::<T>(), size_of::<T>(), 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_round_trip_at_every_width() {
        let mut one = 0u8;
        write_count(&mut one, 255);
        assert_eq!(read_count(&one), 255);
        let mut three = [7u8; 3];
        write_count(&mut three, 65_535);
        assert_eq!(read_count(&three), 65_535);
        assert_eq!(three[2], 0, "bytes after the count are zeroed");
        let mut wide = [u64::MAX; 2];
        write_count(&mut wide, 70_000);
        assert_eq!(read_count(&wide), 70_000);
        assert_eq!(wide[1], 0);
        assert_eq!(max_count::<u8>(), 255);
        assert_eq!(max_count::<[u8; 3]>(), 65_535);
        assert_eq!(max_count::<f64>(), u64::from(u32::MAX));
    }
}
