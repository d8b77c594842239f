//! Typed shared memory between processes on one host.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

// The derive names `::shmstore::…`; this lets the crate use it on its own types too.
extern crate self as shmstore;

mod layout;

pub use layout::{Field, Leaf, Primitive, Shape, ShmType, TypeLayout};
/// Derives [`ShmType`](trait@ShmType) for a `#[repr(C)]` struct: see the trait's documentation.
pub use shmstore_derive::ShmType;

/// Items the derive's generated code names. Not part of the public API.
#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
