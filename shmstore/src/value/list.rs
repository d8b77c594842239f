//! [`FixedVec<T, N>`]: up to `N` elements stored in place.

use core::fmt;
use core::mem::{offset_of, size_of};

use super::slot::{max_count, read_count, write_count, HeaderLayout};
use super::ValueError;
use crate::layout::{Field, ShmType, TypeLayout, ValueKind};

/// A list of up to `N` elements of any [`ShmType`], stored in place: a length, then room for
/// `N` elements.
///
/// Layout (`#[repr(C)]`, alignment `align_of T`, size `(N + 1) * size_of T`, no padding for any
/// `T` and `N`): `len`, a header as large as one `T` holding the length in its first 1, 2 or 4
/// bytes (for an element of 1, of 2 or 3, or of 4 and more bytes; unsigned, host byte order,
/// the header's other bytes zero); then `items: [T; N]`, the elements followed by zeroes. The
/// header is one element wide because any smaller one would leave padding before a `T` of
/// larger alignment (see [the module](super)). So a 1-byte element allows `N` up to 255 and a
/// 2- or 3-byte one up to 65 535: a larger `N` fails to compile where the list is created or its
/// layout is used, with a message that says so.
///
/// A length above `N` (another process wrote it, or the region is corrupt) is never read past:
/// [`as_slice`](Self::as_slice), [`iter`](Self::iter) and the writers refuse it with
/// [`ValueError::LengthAboveCapacity`]; [`len`](Self::len) clamps it to `N`, and
/// [`len_is_valid`](Self::len_is_valid) tells. [`clear`](Self::clear) repairs it. Every write
/// zeroes the room after the last element.
///
/// ```
/// use shmstore::value::FixedVec;
///
/// let mut ports = FixedVec::<u16, 4>::new();
/// ports.push(80)?;
/// ports.extend_from_slice(&[443, 8080])?;
/// assert_eq!(ports.as_slice()?, [80, 443, 8080]);
/// assert_eq!(ports.iter()?.max(), Some(&8080));
/// assert!(ports.extend_from_slice(&[1, 2]).is_err()); // all or nothing
/// assert_eq!((ports.len(), ports.capacity()), (3, 4));
/// ports.clear();
/// assert!(ports.is_empty());
/// # Ok::<(), shmstore::value::ValueError>(())
/// ```
#[derive(Clone, Copy)]
#[repr(C)]
pub struct FixedVec<T, const N: usize> {
    len: T,
    items: [T; N],
}

// SAFETY: `FixedVec<T, N>` is `repr(C)` with a `T` at offset 0 and a `[T; N]` at offset
// `size_of T`, a multiple of `align_of T` (a type's size always is), so no padding precedes the
// array; the size `(N + 1) * size_of T` is a multiple of the alignment `align_of T`, so none
// follows: it has the layout of `[T; N + 1]`. `T: ShmType` is `Pod`, so no field holds padding
// or invalid bit patterns, and all zeroes is valid. No pointer, no interior mutability, no drop
// glue; `Copy` (derived, `T: Copy`) and `'static` (`T: 'static`).
unsafe impl<T: ShmType, const N: usize> bytemuck::Zeroable for FixedVec<T, N> {}
// SAFETY: as for `Zeroable` just above.
unsafe impl<T: ShmType, const N: usize> bytemuck::Pod for FixedVec<T, N> {}

// SAFETY: `Pod` holds (above); the fields are `T: ShmType` and `[T; N]`, free of pointers and
// pointer-sized integers; size, alignment and offsets are the compiler's (`size_of`,
// `align_of`, `offset_of!`); `items`' layout is `[T; N]`'s, exact by `T`'s guarantee, and `len`
// is described as `[u8; size_of T]`, the bytes it occupies.
unsafe impl<T: ShmType, const N: usize> ShmType for FixedVec<T, N> {
    const LAYOUT: TypeLayout = {
        let () = Self::CAPACITY_FITS;
        TypeLayout::structure(
            "FixedVec",
            size_of::<Self>(),
            core::mem::align_of::<Self>(),
            &[
                Field::new("len", offset_of!(Self, len), &HeaderLayout::<T>::LAYOUT),
                Field::new("items", offset_of!(Self, items), &<[T; N]>::LAYOUT),
            ],
        )
        .with_kind(ValueKind::List { capacity: N })
    };
}

impl<T: ShmType, const N: usize> FixedVec<T, N> {
    /// Fails to compile when the one-element header cannot count to `N`.
    const CAPACITY_FITS: () = assert!(
        N as u64 <= max_count::<T>(),
        "FixedVec<T, N> keeps its length in a header one element wide, which counts to 255 for \
         a 1-byte element and to 65535 for a 2- or 3-byte element: lower N, or use a wider \
         element (such as [u8; 4] or u32 instead of u8)"
    );

    /// The empty list; every byte zero.
    pub fn new() -> Self {
        let () = Self::CAPACITY_FITS;
        super::zeroed()
    }

    /// A list holding a copy of `items`.
    ///
    /// # Errors
    ///
    /// [`ValueError::ListFull`] when `items` has more than `N` elements.
    pub fn from_slice(items: &[T]) -> Result<Self, ValueError> {
        let mut list = Self::new();
        list.extend_from_slice(items)?;
        Ok(list)
    }

    /// `N`: the most elements the list may hold.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// The length as stored, which may be above `N` if another process wrote it.
    pub fn stored_len(&self) -> u64 {
        read_count(&self.len)
    }

    /// Whether the stored length is at most `N`.
    pub fn len_is_valid(&self) -> bool {
        self.stored_len() <= N as u64
    }

    /// The number of elements, clamped to `N` when the stored length is above it (check
    /// [`len_is_valid`](Self::len_is_valid), or use [`as_slice`](Self::as_slice), which refuses
    /// such a length).
    pub fn len(&self) -> usize {
        usize::try_from(self.stored_len()).map_or(N, |len| len.min(N))
    }

    /// Whether the stored length is 0.
    pub fn is_empty(&self) -> bool {
        self.stored_len() == 0
    }

    fn checked_len(&self) -> Result<usize, ValueError> {
        let len = self.stored_len();
        match usize::try_from(len) {
            Ok(checked) if checked <= N => Ok(checked),
            _ => Err(ValueError::LengthAboveCapacity {
                what: "list",
                len,
                capacity: N,
            }),
        }
    }

    /// The elements.
    ///
    /// # Errors
    ///
    /// [`ValueError::LengthAboveCapacity`] when the stored length is above `N`.
    pub fn as_slice(&self) -> Result<&[T], ValueError> {
        let len = self.checked_len()?;
        Ok(&self.items[..len])
    }

    /// The elements, to change in place.
    ///
    /// # Errors
    ///
    /// [`ValueError::LengthAboveCapacity`] when the stored length is above `N`.
    pub fn as_mut_slice(&mut self) -> Result<&mut [T], ValueError> {
        let len = self.checked_len()?;
        Ok(&mut self.items[..len])
    }

    /// An iterator over the elements.
    ///
    /// # Errors
    ///
    /// [`ValueError::LengthAboveCapacity`] when the stored length is above `N`.
    pub fn iter(&self) -> Result<core::slice::Iter<'_, T>, ValueError> {
        self.as_slice().map(<[T]>::iter)
    }

    /// Appends `item`.
    ///
    /// # Errors
    ///
    /// [`ValueError::ListFull`] when the list holds `N` elements, and
    /// [`ValueError::LengthAboveCapacity`] when the stored length is above `N` (call
    /// [`clear`](Self::clear) first); the list is then left as it was.
    pub fn push(&mut self, item: T) -> Result<(), ValueError> {
        self.extend_from_slice(core::slice::from_ref(&item))
    }

    /// Appends every element of `items`, or none of them.
    ///
    /// # Errors
    ///
    /// As [`push`](Self::push), when the elements do not all fit.
    pub fn extend_from_slice(&mut self, items: &[T]) -> Result<(), ValueError> {
        let () = Self::CAPACITY_FITS;
        let len = self.checked_len()?;
        let wanted = len.saturating_add(items.len());
        if wanted > N {
            return Err(ValueError::ListFull {
                capacity: N,
                wanted,
            });
        }
        self.items[len..wanted].copy_from_slice(items);
        // `wanted <= N <= max_count::<T>()` (CAPACITY_FITS), so the count fits its header.
        write_count(&mut self.len, wanted as u64);
        Ok(())
    }

    /// Removes the last element and returns it, zeroing its room.
    ///
    /// # Errors
    ///
    /// [`ValueError::LengthAboveCapacity`] when the stored length is above `N`.
    pub fn pop(&mut self) -> Result<Option<T>, ValueError> {
        let len = self.checked_len()?;
        let Some(last) = len.checked_sub(1) else {
            return Ok(None);
        };
        let item = core::mem::replace(&mut self.items[last], super::zeroed());
        write_count(&mut self.len, last as u64);
        Ok(Some(item))
    }

    /// Removes every element and zeroes every byte, which also repairs a corrupt length.
    pub fn clear(&mut self) {
        *self = super::zeroed();
    }
}

impl<T: ShmType, const N: usize> Default for FixedVec<T, N> {
    /// The empty list.
    fn default() -> Self {
        Self::new()
    }
}

impl<T: ShmType, const N: usize> TryFrom<&[T]> for FixedVec<T, N> {
    type Error = ValueError;

    /// [`FixedVec::from_slice`].
    fn try_from(items: &[T]) -> Result<Self, ValueError> {
        Self::from_slice(items)
    }
}

impl<T: ShmType + PartialEq, const N: usize> PartialEq for FixedVec<T, N> {
    /// Equal when both lengths are valid and the elements are equal, or both lengths are the
    /// same invalid value (the room after the elements is not compared).
    fn eq(&self, other: &Self) -> bool {
        match (self.as_slice(), other.as_slice()) {
            (Ok(a), Ok(b)) => a == b,
            (Err(_), Err(_)) => self.stored_len() == other.stored_len(),
            _ => false,
        }
    }
}

impl<T: ShmType + PartialEq, const N: usize> PartialEq<[T]> for FixedVec<T, N> {
    /// Equal when the length is valid and the elements equal `other`.
    fn eq(&self, other: &[T]) -> bool {
        self.as_slice() == Ok(other)
    }
}

impl<T: ShmType + fmt::Debug, const N: usize> fmt::Debug for FixedVec<T, N> {
    /// As a slice prints, or `FixedVec(<error>)` for a length above `N`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_slice() {
            Ok(items) => fmt::Debug::fmt(items, f),
            Err(error) => write!(f, "FixedVec(<{error}>)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Copy, Debug, PartialEq, crate::ShmType)]
    #[repr(C, align(64))]
    struct Line {
        bytes: [u8; 64],
    }

    #[test]
    fn layout_is_an_array_of_one_more_element_for_every_alignment() {
        fn check<T: ShmType, const N: usize>() {
            let layout = FixedVec::<T, N>::LAYOUT;
            assert_eq!(layout.size(), (N + 1) * size_of::<T>());
            assert_eq!(layout.size(), size_of::<FixedVec<T, N>>());
            assert_eq!(layout.align(), core::mem::align_of::<T>());
            assert_eq!(layout.fields()[1].offset(), size_of::<T>());
            assert_eq!(layout.kind(), ValueKind::List { capacity: N });
        }
        check::<u8, 3>();
        check::<u8, 255>();
        check::<u16, 7>();
        check::<f64, 1>();
        check::<u128, 5>();
        check::<[u8; 3], 1000>();
        check::<Line, 2>();
    }

    #[test]
    fn a_forged_length_is_refused_by_readers_and_writers_and_clamped_by_len() {
        let mut raw = [0u32; 5];
        raw[0] = 9;
        let mut list: FixedVec<u32, 4> = bytemuck::cast(raw);
        let refused = ValueError::LengthAboveCapacity {
            what: "list",
            len: 9,
            capacity: 4,
        };
        assert_eq!(list.as_slice(), Err(refused.clone()));
        assert!(list.iter().is_err());
        assert_eq!(list.push(1), Err(refused.clone()));
        assert_eq!(list.pop(), Err(refused));
        assert_eq!((list.len(), list.len_is_valid()), (4, false));
        assert!(format!("{list:?}").contains("above the capacity 4"));
        list.clear();
        assert_eq!(list.as_slice(), Ok(&[][..]));
    }

    #[test]
    fn writes_zero_the_room_after_the_last_element() {
        let mut list = FixedVec::<u8, 4>::from_slice(&[1, 2, 3]).unwrap();
        assert_eq!(list.pop(), Ok(Some(3)));
        assert_eq!(bytemuck::bytes_of(&list), [2, 1, 2, 0, 0]);
        assert_eq!(
            list.extend_from_slice(&[7, 7, 7]),
            Err(ValueError::ListFull {
                capacity: 4,
                wanted: 5
            })
        );
        assert_eq!(list, *[1u8, 2].as_slice());
        let wide = FixedVec::<u64, 2>::try_from(&[u64::MAX][..]).unwrap();
        assert_eq!(
            bytemuck::cast::<_, [u64; 3]>(wide)[0],
            1,
            "length only, rest zero"
        );
    }

    #[test]
    fn garbage_after_the_count_in_the_header_is_ignored_and_then_zeroed() {
        // A peer may write anything in the header's bytes after the count: the count alone
        // is the length (as FORMAT.md says, and as the untyped decoder reads it).
        let mut raw = [0u8; 32];
        raw[..4].copy_from_slice(&2u32.to_ne_bytes());
        raw[4..8].fill(0xff);
        raw[8..16].copy_from_slice(&7u64.to_ne_bytes());
        raw[16..24].copy_from_slice(&8u64.to_ne_bytes());
        let mut wide: FixedVec<u64, 3> = bytemuck::pod_read_unaligned(&raw);
        assert_eq!(wide.as_slice(), Ok(&[7, 8][..]));
        wide.push(9).unwrap();
        assert_eq!(
            bytemuck::cast::<_, [u64; 4]>(wide)[0],
            3,
            "the garbage is zeroed"
        );

        let mut narrow: FixedVec<[u8; 3], 2> = bytemuck::cast([[1u8, 0, 0xee], [5, 6, 7], [0; 3]]);
        assert_eq!(narrow.as_slice(), Ok(&[[5, 6, 7]][..]));
        narrow.pop().unwrap();
        assert_eq!(bytemuck::bytes_of(&narrow), [0u8; 9]);
    }

    #[test]
    fn the_largest_capacity_a_one_byte_element_counts_to_is_usable() {
        let mut full = FixedVec::<u8, 255>::new();
        full.extend_from_slice(&[1; 255]).unwrap();
        assert_eq!(full.len(), 255);
        assert_eq!(
            full.push(1),
            Err(ValueError::ListFull {
                capacity: 255,
                wanted: 256
            })
        );
        let mut texts = FixedVec::<crate::value::FixedStr<2>, 3>::new();
        texts
            .push(crate::value::FixedStr::new("ab").unwrap())
            .unwrap();
        assert_eq!(texts.as_slice().unwrap()[0], "ab");
        assert_eq!(
            FixedVec::<crate::value::FixedStr<2>, 3>::LAYOUT.size(),
            4 * 6
        );
    }

    proptest! {
        #[test]
        fn every_bit_pattern_reads_without_panicking(raw in proptest::collection::vec(any::<u16>(), 4)) {
            let list: FixedVec<u16, 3> = bytemuck::pod_read_unaligned(bytemuck::cast_slice(&raw));
            prop_assert_eq!(list.as_slice().is_ok(), raw[0] <= 3);
            prop_assert!(list.len() <= 3);
            let _ = format!("{list:?}");
        }

        #[test]
        fn pushes_round_trip(items in proptest::collection::vec(any::<i32>(), 0..8)) {
            let mut list = FixedVec::<i32, 5>::new();
            let mut expected = Vec::new();
            for item in items {
                match list.push(item) {
                    Ok(()) => expected.push(item),
                    Err(_) => prop_assert_eq!(expected.len(), 5),
                }
            }
            prop_assert_eq!(list.as_slice(), Ok(expected.as_slice()));
        }
    }
}
