//! [`Opt<T>`]: a value that may be absent.

use core::fmt;
use core::mem::{offset_of, size_of};

use super::slot::HeaderLayout;
use crate::layout::{Field, ShmType, TypeLayout, ValueKind};

/// An optional value in shared memory: `Option<T>` for a [`ShmType`] `T`, which `Option`
/// itself cannot be (its tag has invalid bit patterns).
///
/// Layout (`#[repr(C)]`, alignment `align_of T`, size `2 * size_of T`, no padding for any `T`):
/// `present`, a header as large as one `T` whose first byte is non-zero when the value is
/// present (any non-zero byte counts, like a [`Flag`](super::Flag)); then `value: T`. The header
/// is one element wide because any smaller one would leave padding before a `T` of larger
/// alignment (see [the module](super)). Writing `None` zeroes the value as well, so a removed
/// value does not linger in the region.
///
/// ```
/// use shmstore::value::Opt;
///
/// let mut limit = Opt::<u32>::none();
/// assert_eq!(limit.get(), None);
/// limit.set(Some(500));
/// assert_eq!(limit.get(), Some(500));
/// assert_eq!(limit.as_ref(), Some(&500));
/// assert_eq!(limit, Opt::from(Some(500)));
/// ```
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Opt<T> {
    present: T,
    value: T,
}

// SAFETY: `Opt<T>` is `repr(C)` with two fields of type `T`: the first at offset 0, the second
// at offset `size_of T`, which is a multiple of `align_of T` (a type's size always is), so no
// padding precedes it; the size `2 * size_of T` is a multiple of the alignment `align_of T`, so
// none follows. `T: ShmType` is `Pod`, so neither field holds padding or invalid bit patterns,
// and the all-zero pattern is valid. No pointer, no interior mutability, no drop glue; `Copy`
// (derived, `T: Copy`) and `'static` (`T: 'static`).
unsafe impl<T: ShmType> bytemuck::Zeroable for Opt<T> {}
// SAFETY: as for `Zeroable` just above.
unsafe impl<T: ShmType> bytemuck::Pod for Opt<T> {}

// SAFETY: `Pod` holds (above); both fields are `T: ShmType`, free of pointers and of
// pointer-sized integers; size, alignment and offsets are the compiler's (`size_of`,
// `align_of`, `offset_of!`); `value`'s layout is `T::LAYOUT`, exact by `T`'s guarantee, and
// `present` is described as `[u8; size_of T]`, the bytes it occupies.
unsafe impl<T: ShmType> ShmType for Opt<T> {
    const LAYOUT: TypeLayout = TypeLayout::structure(
        "Opt",
        size_of::<Self>(),
        core::mem::align_of::<Self>(),
        &[
            Field::new(
                "present",
                offset_of!(Self, present),
                &HeaderLayout::<T>::LAYOUT,
            ),
            Field::new("value", offset_of!(Self, value), &T::LAYOUT),
        ],
    )
    .with_kind(ValueKind::Optional);
}

impl<T: ShmType> Opt<T> {
    /// No value; every byte zero.
    pub fn none() -> Opt<T> {
        super::zeroed()
    }

    /// `value`, present.
    pub fn some(value: T) -> Opt<T> {
        let mut opt = Opt::none();
        opt.set(Some(value));
        opt
    }

    /// Whether a value is present (the header's first byte is not zero).
    pub fn is_some(&self) -> bool {
        bytemuck::bytes_of(&self.present)
            .first()
            .is_some_and(|&b| b != 0)
    }

    /// A copy of the value, if present.
    pub fn get(&self) -> Option<T> {
        self.as_ref().copied()
    }

    /// The value, if present.
    pub fn as_ref(&self) -> Option<&T> {
        self.is_some().then_some(&self.value)
    }

    /// The value, if present, to change in place.
    pub fn as_mut(&mut self) -> Option<&mut T> {
        if self.is_some() {
            Some(&mut self.value)
        } else {
            None
        }
    }

    /// Stores `value`: `Some` marks it present, `None` absent and zeroes the value's bytes.
    pub fn set(&mut self, value: Option<T>) {
        let header = bytemuck::bytes_of_mut(&mut self.present);
        header.fill(0);
        match value {
            Some(value) => {
                if let Some(first) = header.first_mut() {
                    *first = 1;
                }
                self.value = value;
            }
            None => self.value = super::zeroed(),
        }
    }

    /// Takes the value out, leaving `None`.
    pub fn take(&mut self) -> Option<T> {
        let value = self.get();
        self.set(None);
        value
    }
}

impl<T: ShmType> Default for Opt<T> {
    /// `None`.
    fn default() -> Opt<T> {
        Opt::none()
    }
}

impl<T: ShmType> From<Option<T>> for Opt<T> {
    fn from(value: Option<T>) -> Opt<T> {
        let mut opt = Opt::none();
        opt.set(value);
        opt
    }
}

impl<T: ShmType> From<Opt<T>> for Option<T> {
    fn from(opt: Opt<T>) -> Option<T> {
        opt.get()
    }
}

impl<T: ShmType + PartialEq> PartialEq for Opt<T> {
    /// Equal as `Option`s: two absent values are equal whatever bytes the value holds.
    fn eq(&self, other: &Opt<T>) -> bool {
        self.as_ref() == other.as_ref()
    }
}

impl<T: ShmType + fmt::Debug> fmt::Debug for Opt<T> {
    /// As `Option<T>` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.as_ref(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, crate::ShmType)]
    #[repr(C, align(32))]
    struct OverAligned {
        a: [u64; 4],
    }

    #[test]
    fn presence_is_any_non_zero_first_byte_and_none_zeroes_the_value() {
        let mut opt: Opt<u64> = bytemuck::cast([0x80u64.to_le(), 7]);
        let first_byte_set = cfg!(target_endian = "little");
        assert_eq!(opt.is_some(), first_byte_set);
        opt.set(None);
        assert_eq!(bytemuck::bytes_of(&opt), [0u8; 16]);
        opt.set(Some(9));
        assert_eq!(opt.take(), Some(9));
        assert_eq!(opt, Opt::none());
        if let Some(v) = Opt::some(1u64).as_mut() {
            *v = 2;
        }
    }

    #[test]
    fn layout_has_no_padding_for_any_alignment() {
        fn check<T: ShmType>() {
            let layout = Opt::<T>::LAYOUT;
            assert_eq!(layout.size(), 2 * size_of::<T>());
            assert_eq!(layout.fields()[1].offset(), size_of::<T>());
            assert_eq!(layout.align(), core::mem::align_of::<T>());
            assert_eq!(layout.kind(), ValueKind::Optional);
        }
        check::<u8>();
        check::<u128>();
        check::<[u16; 3]>();
        check::<OverAligned>();
        let big = Opt::some(OverAligned { a: [1, 2, 3, 4] });
        assert_eq!(big.get().map(|v| v.a[3]), Some(4));
    }
}
