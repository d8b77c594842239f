//! [`FixedStr<N>`]: UTF-8 text of at most `N` bytes.

use core::fmt;
use core::mem::{offset_of, size_of};

use super::ValueError;
use crate::layout::{Field, ShmType, TypeLayout, ValueKind};

/// UTF-8 text of at most `N` bytes, stored in place: a length, then `N` bytes.
///
/// Layout (`#[repr(C)]`, alignment 1, size `N + 4`, no padding for any `N`): `len`, the text's
/// length in bytes as a `u32` in the host's byte order, kept in a `[u8; 4]` so that the type
/// stays 1-aligned; then `bytes: [u8; N]`, the text followed by zeroes.
///
/// Every bit pattern is a valid `FixedStr`, because another process may write any bytes:
/// [`as_str`](Self::as_str) checks the stored length against `N` and the bytes for UTF-8, and
/// returns an error for either, never reading past the field. Every write zeroes the bytes after
/// the text, so a shorter text never leaves the end of a longer one behind.
///
/// ```
/// use shmstore::value::FixedStr;
///
/// let mut host = FixedStr::<16>::new("db-1.internal")?;
/// assert_eq!(host, "db-1.internal");
/// host.set("db-2")?;
/// assert_eq!(host.as_str()?, "db-2");
/// assert!(host.set("a name longer than sixteen bytes").is_err());
/// assert_eq!(host.to_string(), "db-2"); // a refused `set` leaves the text as it was
/// # Ok::<(), shmstore::value::ValueError>(())
/// ```
#[derive(Clone, Copy)]
#[repr(C)]
pub struct FixedStr<const N: usize> {
    len: [u8; 4],
    bytes: [u8; N],
}

// SAFETY: `FixedStr<N>` is `repr(C)` with two fields of alignment 1 (`[u8; 4]` and `[u8; N]`),
// so the first is at offset 0, the second at offset 4, the alignment is 1 and the size is
// `4 + N`: there is no padding for any `N`. Every bit pattern of `u8` arrays is valid, so the
// all-zero pattern is too (`Zeroable`) and so is any other (`Pod`). The type has no pointer,
// no interior mutability and no drop glue, and it is `Copy` and `'static`.
unsafe impl<const N: usize> bytemuck::Zeroable for FixedStr<N> {}
// SAFETY: as for `Zeroable` just above.
unsafe impl<const N: usize> bytemuck::Pod for FixedStr<N> {}

// SAFETY: `Pod` holds (above); the fields are `u8` arrays, free of pointers and of
// pointer-sized integers; the size, alignment and offsets in the layout are the compiler's
// (`size_of`, `offset_of!`; the alignment is 1 because both fields are 1-aligned), and each
// field's layout is its type's own.
unsafe impl<const N: usize> ShmType for FixedStr<N> {
    const LAYOUT: TypeLayout = TypeLayout::structure(
        "FixedStr",
        size_of::<Self>(),
        core::mem::align_of::<Self>(),
        &[
            Field::new("len", offset_of!(Self, len), &<[u8; 4]>::LAYOUT),
            Field::new("bytes", offset_of!(Self, bytes), &<[u8; N]>::LAYOUT),
        ],
    )
    .with_kind(ValueKind::Text { capacity: N });
}

impl<const N: usize> FixedStr<N> {
    /// The empty text.
    pub const EMPTY: Self = FixedStr {
        len: [0; 4],
        bytes: [0; N],
    };

    /// `text`, if it is at most `N` bytes.
    ///
    /// # Errors
    ///
    /// [`ValueError::TextTooLong`] when `text` is longer than `N` bytes.
    pub fn new(text: &str) -> Result<Self, ValueError> {
        let mut value = Self::EMPTY;
        value.set(text)?;
        Ok(value)
    }

    /// `N`: the most bytes the text may hold.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// The length as stored, which may be above `N` if another process wrote it.
    pub fn stored_len(&self) -> u32 {
        u32::from_ne_bytes(self.len)
    }

    /// The text's bytes, checked against the capacity but not for UTF-8.
    ///
    /// # Errors
    ///
    /// [`ValueError::LengthAboveCapacity`] when the stored length is above `N`.
    pub fn as_bytes(&self) -> Result<&[u8], ValueError> {
        let len = self.stored_len();
        match usize::try_from(len) {
            Ok(len) if len <= N => Ok(&self.bytes[..len]),
            _ => Err(ValueError::LengthAboveCapacity {
                what: "text",
                len: u64::from(len),
                capacity: N,
            }),
        }
    }

    /// The text.
    ///
    /// # Errors
    ///
    /// [`ValueError::LengthAboveCapacity`] when the stored length is above `N`, and
    /// [`ValueError::InvalidUtf8`] when the bytes are not UTF-8: both mean another program or
    /// build wrote the field, or the region is corrupt.
    pub fn as_str(&self) -> Result<&str, ValueError> {
        let bytes = self.as_bytes()?;
        core::str::from_utf8(bytes).map_err(|e| ValueError::InvalidUtf8 {
            valid_up_to: e.valid_up_to(),
            len: bytes.len(),
        })
    }

    /// Replaces the text with `text` and zeroes the bytes after it.
    ///
    /// # Errors
    ///
    /// [`ValueError::TextTooLong`] when `text` is longer than `N` bytes; the field is then
    /// left as it was.
    pub fn set(&mut self, text: &str) -> Result<(), ValueError> {
        let too_long = ValueError::TextTooLong {
            len: text.len(),
            capacity: N,
        };
        if text.len() > N {
            return Err(too_long);
        }
        let Ok(len) = u32::try_from(text.len()) else {
            return Err(too_long);
        };
        let (used, tail) = self.bytes.split_at_mut(text.len());
        used.copy_from_slice(text.as_bytes());
        tail.fill(0);
        self.len = len.to_ne_bytes();
        Ok(())
    }

    /// Makes the text empty, zeroing every byte.
    pub fn clear(&mut self) {
        *self = Self::EMPTY;
    }

    /// The stored bytes, cut to the capacity, with each invalid UTF-8 sequence shown as
    /// U+FFFD: what `Display` prints.
    fn lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.bytes_within_capacity())
    }

    /// The stored bytes, cut to the capacity: what `lossy` shows and `==` compares.
    fn bytes_within_capacity(&self) -> &[u8] {
        let len = usize::try_from(self.stored_len()).map_or(N, |len| len.min(N));
        &self.bytes[..len]
    }
}

impl<const N: usize> Default for FixedStr<N> {
    /// The empty text.
    fn default() -> Self {
        Self::EMPTY
    }
}

impl<const N: usize> TryFrom<&str> for FixedStr<N> {
    type Error = ValueError;

    /// [`FixedStr::new`].
    fn try_from(text: &str) -> Result<Self, ValueError> {
        Self::new(text)
    }
}

impl<const N: usize> fmt::Display for FixedStr<N> {
    /// The text; text that another process made invalid prints as much as fits in `N` bytes,
    /// with U+FFFD for bytes that are not UTF-8 (use [`as_str`](FixedStr::as_str) to detect it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Ok(text) => f.write_str(text),
            Err(_) => f.write_str(&self.lossy()),
        }
    }
}

impl<const N: usize> fmt::Debug for FixedStr<N> {
    /// `"text"`, or `FixedStr(<error>, lossy: "text")` for invalid contents.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Ok(text) => fmt::Debug::fmt(text, f),
            Err(error) => write!(f, "FixedStr(<{error}>, lossy: {:?})", self.lossy()),
        }
    }
}

impl<const N: usize> PartialEq for FixedStr<N> {
    /// Equal when the stored lengths and the bytes up to them are equal (the zeroed tail is
    /// not compared).
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.bytes_within_capacity() == other.bytes_within_capacity()
    }
}

impl<const N: usize> Eq for FixedStr<N> {}

impl<const N: usize> PartialEq<str> for FixedStr<N> {
    /// Equal when the stored text is valid and equals `other`.
    fn eq(&self, other: &str) -> bool {
        self.as_str() == Ok(other)
    }
}

impl<const N: usize> PartialEq<&str> for FixedStr<N> {
    /// Equal when the stored text is valid and equals `other`.
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Ok(*other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn forged<const N: usize>(len: u32, bytes: &[u8]) -> FixedStr<N> {
        let mut raw = vec![0u8; size_of::<FixedStr<N>>()];
        raw[..4].copy_from_slice(&len.to_ne_bytes());
        raw[4..4 + bytes.len()].copy_from_slice(bytes);
        bytemuck::pod_read_unaligned(&raw)
    }

    #[test]
    fn layout_is_a_length_then_the_bytes_with_no_padding() {
        assert_eq!(size_of::<FixedStr<5>>(), 9);
        assert_eq!(core::mem::align_of::<FixedStr<5>>(), 1);
        let layout = FixedStr::<5>::LAYOUT;
        assert_eq!(layout.size(), 9);
        assert_eq!(layout.fields()[1].offset(), 4);
        assert_eq!(layout.kind(), ValueKind::Text { capacity: 5 });
        assert_ne!(
            FixedStr::<5>::LAYOUT.fingerprint(),
            FixedStr::<6>::LAYOUT.fingerprint()
        );
    }

    #[test]
    fn a_forged_length_above_the_capacity_is_reported_not_read() {
        let text = forged::<4>(5, b"abcd");
        assert_eq!(
            text.as_str(),
            Err(ValueError::LengthAboveCapacity {
                what: "text",
                len: 5,
                capacity: 4
            })
        );
        let huge = forged::<4>(u32::MAX, b"abcd");
        let message = huge.as_str().unwrap_err().to_string();
        assert!(
            message.contains("4294967295 is above the capacity 4"),
            "{message}"
        );
        assert_eq!(huge.to_string(), "abcd", "Display shows what fits");
        assert!(format!("{huge:?}").contains("above the capacity"));
        assert!(huge != "abcd");
    }

    #[test]
    fn invalid_utf8_is_reported_with_where_it_starts() {
        let text = forged::<8>(4, &[b'o', b'k', 0xff, b'!']);
        assert_eq!(
            text.as_str(),
            Err(ValueError::InvalidUtf8 {
                valid_up_to: 2,
                len: 4
            })
        );
        assert_eq!(text.as_bytes(), Ok(&[b'o', b'k', 0xff, b'!'][..]));
        assert_eq!(text.to_string(), "ok\u{fffd}!");
    }

    #[test]
    fn set_zeroes_the_tail_and_refuses_what_does_not_fit() {
        let mut text = FixedStr::<8>::new("abcdefgh").unwrap();
        text.set("xy").unwrap();
        assert_eq!(text.bytes, *b"xy\0\0\0\0\0\0");
        assert_eq!(
            text.set("123456789"),
            Err(ValueError::TextTooLong {
                len: 9,
                capacity: 8
            })
        );
        assert_eq!(text, "xy");
        assert_eq!(
            FixedStr::<3>::try_from("héj").map(|_| ()),
            Err(ValueError::TextTooLong {
                len: 4,
                capacity: 3
            })
        );
        text.clear();
        assert_eq!(bytemuck::bytes_of(&text), [0u8; 12]);
        assert_eq!(FixedStr::<8>::default(), "");
    }

    #[test]
    fn equality_ignores_stale_bytes_after_the_text() {
        let a = forged::<4>(2, b"hiXX");
        let b = FixedStr::<4>::new("hi").unwrap();
        assert_eq!(a, b);
        assert_eq!(format!("{b:?}"), "\"hi\"");
    }

    proptest! {
        #[test]
        fn every_bit_pattern_reads_without_panicking(raw in proptest::collection::vec(any::<u8>(), 12)) {
            let text: FixedStr<8> = bytemuck::pod_read_unaligned(&raw);
            let len = u32::from_ne_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
            let valid = len <= 8 && core::str::from_utf8(&raw[4..4 + len]).is_ok();
            prop_assert_eq!(text.as_str().is_ok(), valid);
            let _ = (text.to_string(), format!("{text:?}"));
        }

        #[test]
        fn text_that_fits_round_trips(s in "\\PC{0,6}") {
            let fits = s.len() <= 12;
            match FixedStr::<12>::new(&s) {
                Ok(text) => { prop_assert!(fits); prop_assert_eq!(text.as_str(), Ok(s.as_str())); }
                Err(_) => prop_assert!(!fits),
            }
        }
    }
}
