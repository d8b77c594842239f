//! [`Flag`]: a boolean any byte can encode.

use core::fmt;

use crate::layout::{Field, ShmType, TypeLayout, ValueKind};

/// A boolean in shared memory: one byte, `0` is `false` and any other value is `true`.
///
/// `bool` itself cannot live in shared memory (a byte other than 0 or 1 is undefined behaviour
/// and another process can write one); a `Flag` reads every byte as a boolean and writes `0` or
/// `1`. Layout: `#[repr(transparent)]` over `value: u8`.
///
/// ```
/// use shmstore::value::Flag;
///
/// let mut tls = Flag::from(true);
/// assert!(tls.get());
/// tls.set(false);
/// assert_eq!(tls, Flag::FALSE);
/// assert_eq!(tls.to_string(), "false");
/// ```
#[derive(Clone, Copy, Default)]
#[repr(transparent)]
pub struct Flag {
    value: u8,
}

// SAFETY: `Flag` is `repr(transparent)` over a `u8`, which is `Zeroable` and `Pod` (every bit
// pattern valid, no padding, no pointer, no drop glue); `Flag` is `Copy` and `'static`.
unsafe impl bytemuck::Zeroable for Flag {}
// SAFETY: as for `Zeroable` just above.
unsafe impl bytemuck::Pod for Flag {}

// SAFETY: `Pod` holds (above); the one field is a `u8`; size and alignment are 1, as the
// layout says (asserted by the unit tests against `size_of`/`align_of`), and the field is at
// offset 0 (`repr(transparent)`).
unsafe impl ShmType for Flag {
    const LAYOUT: TypeLayout =
        TypeLayout::structure("Flag", 1, 1, &[Field::new("value", 0, &u8::LAYOUT)])
            .with_kind(ValueKind::Flag);
}

const _: () = assert!(core::mem::size_of::<Flag>() == 1 && core::mem::align_of::<Flag>() == 1);

impl Flag {
    /// `false`, stored as `0`.
    pub const FALSE: Flag = Flag { value: 0 };
    /// `true`, stored as `1`.
    pub const TRUE: Flag = Flag { value: 1 };

    /// `value`, stored as `0` or `1`.
    pub const fn new(value: bool) -> Flag {
        Flag { value: value as u8 }
    }

    /// `true` when the stored byte is not zero.
    pub const fn get(self) -> bool {
        self.value != 0
    }

    /// Stores `value` as `0` or `1`.
    pub fn set(&mut self, value: bool) {
        self.value = u8::from(value);
    }

    /// The byte as stored (another process may have written any value).
    pub const fn raw(self) -> u8 {
        self.value
    }
}

impl From<bool> for Flag {
    fn from(value: bool) -> Flag {
        Flag::new(value)
    }
}

impl From<Flag> for bool {
    fn from(flag: Flag) -> bool {
        flag.get()
    }
}

impl PartialEq for Flag {
    /// Equal when both are `true` or both `false`, whatever bytes encode them.
    fn eq(&self, other: &Flag) -> bool {
        self.get() == other.get()
    }
}

impl Eq for Flag {}

impl PartialEq<bool> for Flag {
    fn eq(&self, other: &bool) -> bool {
        self.get() == *other
    }
}

impl fmt::Debug for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.get(), f)
    }
}

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.get(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_is_a_boolean() {
        for byte in 0..=u8::MAX {
            let flag: Flag = bytemuck::cast(byte);
            assert_eq!(flag.get(), byte != 0);
            assert_eq!(flag.raw(), byte);
        }
        let odd: Flag = bytemuck::cast(0x80u8);
        assert_eq!(odd, Flag::TRUE);
        assert_eq!(odd, true);
    }

    #[test]
    fn writes_store_zero_or_one() {
        let mut flag: Flag = bytemuck::cast(0x42u8);
        flag.set(true);
        assert_eq!(flag.raw(), 1);
        flag.set(false);
        assert_eq!(flag.raw(), 0);
        assert_eq!(Flag::default(), false);
        assert_eq!(Flag::LAYOUT.kind(), ValueKind::Flag);
        assert_eq!(Flag::LAYOUT.size(), core::mem::size_of::<Flag>());
    }
}
