//! Field types for the values services share: text, flags, optional values, timestamps, enums
//! and lists, each a [`ShmType`] that may sit anywhere in a `#[derive(ShmType)]` struct.
//!
//! Every type here is valid for every bit pattern, because another process (a newer build, a
//! C program, a crashed or hostile writer) can write any bytes into a region: a length above
//! the capacity, invalid UTF-8 or a discriminant that names no variant is reported as an error
//! when the value is read, never a panic, an out-of-bounds read or undefined behaviour. Writers
//! zero every byte they do not use, so no stale bytes linger in a region.
//!
//! Every type is free of padding wherever it is placed, for every capacity and element type:
//!
//! | type | layout (offsets from the field's start) | size | alignment |
//! |------|------------------------------------------|------|-----------|
//! | [`FixedStr<N>`] | `len: [u8; 4]` @0 (native byte order), `bytes: [u8; N]` @4 | `N + 4` | 1 |
//! | [`FixedVec<T, N>`] | `len: [u8; size_of T]` @0, `items: [T; N]` @`size_of T` | `(N + 1) * size_of T` | `align_of T` |
//! | [`Flag`] | `value: u8` @0 | 1 | 1 |
//! | [`Opt<T>`] | `present: [u8; size_of T]` @0, `value: T` @`size_of T` | `2 * size_of T` | `align_of T` |
//! | [`Timestamp`] | `unix_nanos: i64` @0 | 8 | 8 |
//! | [`EnumField<E>`] | `raw: E::Repr` @0 | `size_of E::Repr` | `align_of E::Repr` |
//!
//! [`FixedVec`] and [`Opt`] keep their length or presence byte in a slot as large as one
//! element: that is the only header that leaves no padding before an element of any alignment
//! (a struct with `#[repr(C, align(64))]` included) and none after the last one, on stable Rust.
//!
//! Each type's [`TypeLayout`](crate::layout::TypeLayout) describes it as the plain struct above, so a
//! region's descriptor records it with today's primitives, and carries a
//! [`ValueKind`](crate::layout::ValueKind) that says what the bytes mean.
//!
//! ```
//! use shmstore::value::{EnumField, FixedStr, FixedVec, Flag, Opt, Timestamp};
//! use shmstore::{ShmEnum, ShmType};
//!
//! #[derive(ShmEnum, Clone, Copy, Debug, PartialEq)]
//! #[repr(u8)]
//! enum LogLevel { Error, Warn, Info, Debug }
//!
//! #[derive(ShmType, Clone, Copy)]
//! #[repr(C)]
//! #[shm(default_zeroed)]
//! struct Config {
//!     service: FixedStr<32>,
//!     verbose: Flag,
//!     level: EnumField<LogLevel>,
//!     ports: FixedVec<u16, 16>,
//!     rate: f64,
//!     limit: Opt<u32>,
//!     updated_at: Timestamp,
//! }
//!
//! let mut config = Config::default(); // all zeroes: "", false, Error, [], 0.0, None, epoch
//! config.service.set("billing")?;
//! config.level.set(LogLevel::Info);
//! config.ports.push(8080)?;
//! config.limit.set(Some(100));
//! assert_eq!(config.service, "billing");
//! assert_eq!(config.level.get()?, LogLevel::Info);
//! assert_eq!(config.ports.as_slice()?, [8080]);
//! assert_eq!(config.limit.get(), Some(100));
//! assert!(!config.verbose.get());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod enums;
mod error;
mod flag;
mod list;
mod opt;
mod slot;
mod text;
mod time;

pub use enums::{EnumField, ShmEnum, UnknownVariant};
pub use error::ValueError;
pub use flag::Flag;
pub use list::FixedVec;
pub use opt::Opt;
pub use text::FixedStr;
pub use time::Timestamp;

use crate::layout::ShmType;

/// A value of `T` whose every byte is zero: `0` for numbers, `""` for a
/// [`FixedStr`], `false` for a [`Flag`], an empty [`FixedVec`], `None` for an [`Opt`], the
/// epoch for a [`Timestamp`], and the same, field by field, for a derived struct.
///
/// Every [`ShmType`] is valid when all-zero, however large (where `#[derive(Default)]` stops at
/// arrays of more than 32 elements). To give a derived struct a [`Default`] that returns this,
/// write `#[shm(default_zeroed)]` on it (see the [derive](macro@crate::ShmType)).
///
/// ```
/// use shmstore::ShmType;
///
/// #[derive(ShmType, Clone, Copy)]
/// #[repr(C)]
/// struct Big { samples: [u32; 4096] }
///
/// let big: Big = shmstore::zeroed();
/// assert!(big.samples.iter().all(|&s| s == 0));
/// ```
pub fn zeroed<T: ShmType>() -> T {
    bytemuck::Zeroable::zeroed()
}
