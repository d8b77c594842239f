//! Enums in shared memory: the [`ShmEnum`] trait (derived) and the [`EnumField<E>`] that
//! stores one.

use core::fmt;
use core::marker::PhantomData;
use core::mem::size_of;

use crate::layout::{Field, ShmType, TypeLayout, ValueKind};

/// A fieldless enum that can be stored in shared memory through an [`EnumField`]: a
/// discriminant of a fixed-width integer type, and every variant's name and value.
///
/// Derive it with `#[derive(ShmEnum)]` on a fieldless enum with `#[repr(u8)]`, `u16`, `u32`,
/// `u64`, `i8`, `i16`, `i32` or `i64`:
///
/// ```
/// use shmstore::ShmEnum;
///
/// #[derive(ShmEnum, Clone, Copy, Debug, PartialEq)]
/// #[repr(u8)]
/// enum LogLevel { Error = 1, Warn, Info, Debug = 10 }
///
/// assert_eq!(LogLevel::NAME, "LogLevel");
/// assert_eq!(LogLevel::VARIANTS, [("Error", 1), ("Warn", 2), ("Info", 3), ("Debug", 10)]);
/// assert_eq!(LogLevel::from_repr(3), Some(LogLevel::Info));
/// assert_eq!(LogLevel::from_repr(4), None);
/// assert_eq!(LogLevel::Debug.to_repr(), 10);
/// ```
///
/// The enum itself never lives in shared memory (another process could write a value that
/// names no variant, which would be undefined behaviour): an [`EnumField<E>`] stores the raw
/// discriminant and checks it on every read.
///
/// # Implementation
///
/// Derive it. A hand-written implementation must make `from_repr` the inverse of `to_repr` and
/// list every variant in `VARIANTS`; nothing unsafe relies on it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a `ShmEnum`, so an `EnumField` cannot store it",
    label = "not a `ShmEnum`",
    note = "add `#[derive(ShmEnum)]` and an integer representation such as `#[repr(u8)]` to the \
            enum"
)]
pub trait ShmEnum: Sized + 'static {
    /// The discriminant's type, as in `#[repr(...)]`.
    type Repr: ShmType + Copy + PartialEq + Into<i128> + fmt::Debug;

    /// The enum's name, as the descriptor and error messages show it.
    const NAME: &'static str;

    /// Every variant's name and discriminant, in declaration order.
    const VARIANTS: &'static [(&'static str, i128)];

    /// The variant's discriminant.
    fn to_repr(&self) -> Self::Repr;

    /// The variant whose discriminant is `raw`, if any.
    fn from_repr(raw: Self::Repr) -> Option<Self>;
}

/// A stored discriminant that names no variant of the enum: written by a newer build with more
/// variants, by another program, or corrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "{raw} is not a variant of enum `{enum_name}`: the writer may be a newer build with more \
     variants; update this program, or write a known variant to the field"
)]
pub struct UnknownVariant {
    /// The enum's name ([`ShmEnum::NAME`]).
    pub enum_name: &'static str,
    /// The discriminant as stored.
    pub raw: i128,
}

/// The field that stores an enum `E` in shared memory: `E`'s raw discriminant, checked when it
/// is read.
///
/// Layout: `#[repr(transparent)]` over `raw: E::Repr`, so the field has the size and alignment
/// of the enum's `repr` type. Every value is valid: [`get`](Self::get) returns
/// [`UnknownVariant`] (with the raw value) for a discriminant that names no variant. All zeroes
/// is the discriminant 0, which may name no variant: give the enum a variant `= 0` to make
/// zeroed structs hold a known default.
///
/// ```
/// use shmstore::value::EnumField;
/// use shmstore::ShmEnum;
///
/// #[derive(ShmEnum, Clone, Copy, Debug, PartialEq)]
/// #[repr(u16)]
/// enum Mode { Off, Standby, Active }
///
/// let mut mode = EnumField::new(Mode::Standby);
/// assert_eq!(mode.get(), Ok(Mode::Standby));
/// mode.set(Mode::Active);
/// assert_eq!(mode.raw(), 2);
///
/// let newer = EnumField::<Mode>::from_raw(7); // written by a build with more variants
/// let error = newer.get().unwrap_err();
/// assert_eq!((error.enum_name, error.raw), ("Mode", 7));
/// ```
#[repr(transparent)]
pub struct EnumField<E: ShmEnum> {
    raw: E::Repr,
    _enum: PhantomData<fn() -> E>,
}

// `derive` would require `E: Clone`/`E: Copy`; the field only holds `E::Repr`, which is `Copy`.
impl<E: ShmEnum> Clone for EnumField<E> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<E: ShmEnum> Copy for EnumField<E> {}

// SAFETY: `EnumField<E>` is `repr(transparent)` over `E::Repr: ShmType` (so `Pod`: every bit
// pattern valid, no padding, no pointer, no drop glue) beside a `PhantomData<fn() -> E>`, which
// is zero-sized, 1-aligned and holds no data (its `fn` pointer type is never stored), so the
// all-zero pattern is valid; `Copy` (above) and `'static` (`E: 'static`).
unsafe impl<E: ShmEnum> bytemuck::Zeroable for EnumField<E> {}
// SAFETY: as for `Zeroable` just above.
unsafe impl<E: ShmEnum> bytemuck::Pod for EnumField<E> {}

// SAFETY: `Pod` holds (above); `Sync`, as `E::Repr` and `PhantomData<fn() -> E>` are; the one
// stored field is `E::Repr: ShmType`, free of pointers and pointer-sized integers, at offset 0
// (`repr(transparent)`), so size and alignment are `E::Repr`'s, which `E::Repr::LAYOUT` gives
// exactly by its own guarantee.
unsafe impl<E: ShmEnum> ShmType for EnumField<E> {
    const LAYOUT: TypeLayout = TypeLayout::structure(
        E::NAME,
        E::Repr::LAYOUT.size(),
        E::Repr::LAYOUT.align(),
        &[Field::new("raw", 0, &E::Repr::LAYOUT)],
    )
    .with_kind(ValueKind::Enum {
        name: E::NAME,
        variants: E::VARIANTS,
    });
}

const _: () = assert!(size_of::<PhantomData<fn() -> u8>>() == 0);

impl<E: ShmEnum> EnumField<E> {
    /// The field holding `value`.
    pub fn new(value: E) -> Self {
        Self::from_raw(value.to_repr())
    }

    /// The field holding the discriminant `raw`, known or not.
    pub fn from_raw(raw: E::Repr) -> Self {
        EnumField {
            raw,
            _enum: PhantomData,
        }
    }

    /// The variant.
    ///
    /// # Errors
    ///
    /// [`UnknownVariant`], with the raw value and the enum's name, when the stored discriminant
    /// names no variant of `E`.
    pub fn get(&self) -> Result<E, UnknownVariant> {
        E::from_repr(self.raw).ok_or(UnknownVariant {
            enum_name: E::NAME,
            raw: self.raw.into(),
        })
    }

    /// Stores `value`'s discriminant.
    pub fn set(&mut self, value: E) {
        self.raw = value.to_repr();
    }

    /// The discriminant as stored.
    pub fn raw(&self) -> E::Repr {
        self.raw
    }

    /// The stored variant's name, if it names one.
    pub fn variant_name(&self) -> Option<&'static str> {
        let raw: i128 = self.raw.into();
        E::VARIANTS
            .iter()
            .find(|(_, value)| *value == raw)
            .map(|(name, _)| *name)
    }
}

impl<E: ShmEnum> From<E> for EnumField<E> {
    fn from(value: E) -> Self {
        Self::new(value)
    }
}

impl<E: ShmEnum> Default for EnumField<E> {
    /// The discriminant 0, which names a variant only if the enum has one `= 0` (the first
    /// variant, when none has an explicit value).
    fn default() -> Self {
        crate::value::zeroed()
    }
}

impl<E: ShmEnum> PartialEq for EnumField<E> {
    /// Equal when the stored discriminants are.
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl<E: ShmEnum> PartialEq<E> for EnumField<E> {
    /// Equal when the stored discriminant is `other`'s.
    fn eq(&self, other: &E) -> bool {
        self.raw == other.to_repr()
    }
}

impl<E: ShmEnum> fmt::Debug for EnumField<E> {
    /// `Name`, or `Enum(<unknown 7>)` for a discriminant that names no variant.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.variant_name() {
            Some(name) => f.write_str(name),
            None => write!(f, "{}(<unknown {:?}>)", E::NAME, self.raw),
        }
    }
}

impl<E: ShmEnum> fmt::Display for EnumField<E> {
    /// The variant's name, or the raw value for a discriminant that names no variant.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.variant_name() {
            Some(name) => f.write_str(name),
            None => write!(f, "{:?}", self.raw),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ShmEnum;

    #[derive(ShmEnum, Clone, Copy, Debug, PartialEq)]
    #[repr(i32)]
    enum Signed {
        Low = -5,
        Zero = 0,
        High = 1 << 20,
    }

    #[derive(ShmEnum, Debug, PartialEq)]
    #[repr(u64)]
    enum Wide {
        Top = u64::MAX,
        Bottom = 0,
    }

    #[test]
    fn every_raw_value_is_either_a_variant_or_reported() {
        for raw in [-6, -5, -1, 0, 1, 1 << 20, i32::MAX, i32::MIN] {
            let field = EnumField::<Signed>::from_raw(raw);
            match Signed::from_repr(raw) {
                Some(v) => assert_eq!(field.get(), Ok(v)),
                None => assert_eq!(
                    field.get(),
                    Err(UnknownVariant {
                        enum_name: "Signed",
                        raw: i128::from(raw)
                    })
                ),
            }
        }
        let error = EnumField::<Signed>::from_raw(3).get().unwrap_err();
        assert_eq!(
            error.to_string(),
            "3 is not a variant of enum `Signed`: the writer may be a newer build with more \
             variants; update this program, or write a known variant to the field"
        );
        assert_eq!(
            format!("{:?}", EnumField::<Signed>::from_raw(3)),
            "Signed(<unknown 3>)"
        );
        assert_eq!(EnumField::new(Signed::High).to_string(), "High");
    }

    #[test]
    fn variants_and_layout_describe_the_repr() {
        assert_eq!(
            Signed::VARIANTS,
            [("Low", -5), ("Zero", 0), ("High", 1 << 20)]
        );
        assert_eq!(Wide::VARIANTS[0], ("Top", i128::from(u64::MAX)));
        let layout = EnumField::<Wide>::LAYOUT;
        assert_eq!(layout.size(), 8);
        assert_eq!(layout.name(), "Wide");
        assert!(
            matches!(layout.kind(), ValueKind::Enum { name: "Wide", variants } if variants.len() == 2)
        );
        let mut field = EnumField::<Wide>::default();
        assert_eq!(field.get(), Ok(Wide::Bottom));
        field.set(Wide::Top);
        assert_eq!(field.raw(), u64::MAX);
        assert_eq!(field, Wide::Top);
    }
}
