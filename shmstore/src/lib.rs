//! Typed shared memory between processes on one host.
//!
//! [`Shm<T>`](Shm) is `std::sync::Mutex<T>` across processes: a named value that any process
//! can open, lock, read and watch; whose updates are all-or-nothing even when the writer is
//! killed halfway; and that refuses to attach when two binaries disagree about `T`'s layout.
//!
//! ```
//! use shmstore::{Shm, ShmType};
//!
//! #[derive(ShmType, Clone, Copy, Debug, PartialEq)]
//! #[repr(C)]
//! struct Position { x: f64, y: f64, seq: u64 }
//!
//! # let name = format!("doc-crate-{}", std::process::id());
//! // Any number of processes run this; exactly one runs the initialiser.
//! let pos = Shm::<Position>::open_or_create(&name, || Position { x: 0.0, y: 0.0, seq: 0 })?;
//! {
//!     let mut p = pos.lock().unwrap();
//!     p.x = 1.5;
//!     p.y = -2.0;
//!     p.seq += 1;
//! } // committed as one update; readers never see x without y
//! assert_eq!(pos.read(), Position { x: 1.5, y: -2.0, seq: 1 });
//! # shmstore::unlink(&name)?;
//! # Ok::<(), shmstore::Error>(())
//! ```
//!
//! # Where regions live
//!
//! A name is a POSIX shared-memory object (`/dev/shm/NAME`), the default. The same API works on
//! a file that persists across reboots (pass a `Path` or [`Location::path`]) and on a System V
//! segment that C programs open with `ftok` and `shmget` ([`Location::sysv`], [`ftok`]): every
//! method that creates or opens a region takes `impl Into<`[`Location`]`>`.
//!
//! # Modules, inside
//!
//! Layers that read top to bottom: a module imports only from its own layer or the layers
//! below it.
//!
//! ```text
//! layer      modules                            holds
//! ---------  ---------------------------------  ---------------------------------------------
//! harness    fuzzing                            fuzzing entry points (feature `fuzzing`): they
//!                                               drive the typed API and the tools as a user's
//!                                               program does
//! typed API  shm, guard, reader, store,         what users call; the only code that knows `T`
//!            queue/ (mod, spsc, mpmc),          (`options`: the settings and setters the
//!            options, attach (how a handle      value and queue builders share)
//!              reaches its region: directly,
//!              through a compatible layout,
//!              after a migration), follow (the
//!              regions a handle followed),
//!            wait_set (sleeping on many
//!              handles at once; the sources,
//!              keys and events it shares with
//!              events), events (`ShmEvents`:
//!              the same sources behind a
//!              descriptor for event loops),
//!            awaiting (the async calls,
//!              feature `tokio`)
//! tools      inspect, info (listing),           untyped views for the CLI
//!            look (reads with pread, no map),
//!            values (typed values by the
//!              stored kinds), editor (untyped
//!              commits through lock)
//! protocols  lock (latch, rollback, poisoning,  how the bytes move safely
//!              and the MPMC queue's lock),
//!            snapshot (seqlock reads),
//!            wait (one futex eventcount for
//!              value changes and queue events),
//!            reboot (the reset of a file
//!              region after a reboot),
//!            notifier (the process's threads
//!              that sleep on many futex words
//!              for futures and descriptors)
//! region     region/ (mod, fd, sysv, migrate:   create, open, validate and map per backend;
//!              a region replaced under its      knows payload shapes, never queues or locks
//!              name by one of a wider type)
//! format     format/ (header, descriptor,       FORMAT.md in code: the one validated view of
//!            queue, owner, compat: two          mapped bytes, so no other module casts raw
//!              descriptors compared field by    pointers into a header or a control block
//!              field; projection: the plan
//!              that reads a snapshot of one
//!              layout as another, as bytes;
//!              writeback: the way back, checked;
//!              union: a migration's target;
//!              versions: the versions table)
//! OS         sys/                               every libc and nix call
//! leaves     layout, location, name, error,     pure data and helpers (`location` uses `name`;
//!            atomic_copy, value/ (the field     the field types sit here, not in the typed
//!            types)                             API, because the tools decode them too)
//! ```
//!
//! Nothing below the typed API knows `T`; nothing above `sys` calls libc. Unit tests of a
//! lower layer may build their fixtures through the typed API.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

// The derive names `::shmstore::…`; this lets the crate use it on its own types too.
extern crate self as shmstore;

mod atomic_copy;
mod attach;
#[cfg(feature = "tokio")]
mod awaiting;
mod editor;
mod error;
mod events;
mod follow;
mod format;
mod guard;
mod info;
pub mod inspect;
pub mod layout;
mod location;
mod lock;
mod look;
mod name;
mod notifier;
mod options;
mod queue;
mod reader;
mod reboot;
mod region;
mod shm;
mod snapshot;
mod store;
mod sys;
pub mod value;
mod values;
mod wait;
mod wait_set;

pub use error::printable;
pub use error::{Error, RefusedMessage, Result};
pub use events::{Readiness, ShmEvents};
pub use guard::ShmGuard;
pub use info::{list, QueueInfo, RegionInfo};
#[doc(inline)]
pub use layout::ShmType;
pub use location::Location;
pub use name::{validate_name, MAX_NAME_LEN};
pub use queue::{PopLoan, PushLoan, QueueDrain, QueueIter};
pub use queue::{QueueMode, ShmQueue, ShmQueueOptions};
pub use queue::{RecvLoan, SendLoan, ShmChannel, ShmChannelOptions};
pub use reader::ShmReader;
pub use region::{ftok, unlink};
pub use shm::{Shm, ShmOptions};
/// Derives [`ShmEnum`](trait@ShmEnum) for a fieldless enum with `#[repr(u8)]`, `u16`, `u32`,
/// `u64`, `i8`, `i16`, `i32` or `i64`, so that an [`EnumField`](value::EnumField) can store it:
/// see the trait's documentation.
///
/// The derive refuses, each at the offending token: a variant with fields, an enum without an
/// integer `repr` (or with `repr(C)`, `usize`, `isize`, `u128`, `i128`, whose size differs
/// between builds or which the descriptor cannot record), an enum with no variant, and generic
/// parameters. Duplicate discriminants are refused by the compiler itself.
pub use shmstore_derive::ShmEnum;
/// Derives [`ShmType`](trait@ShmType) for a `#[repr(C)]` struct: see the trait's documentation
/// for what an implementor guarantees.
///
/// # Analysis
///
/// The derive proves that a struct may live in shared memory in two stages.
///
/// **Syntax** (by the derive, each error pointing at the offending token): the item is a
/// struct (not an enum or union) with at least one field; its `repr` is `C` (optionally with
/// `align(N)` or `packed`/`packed(N)`) or `transparent`; generic parameters appear only with
/// `repr(transparent)` or `repr(C, packed)`; no lifetimes; no field's type is spelled as something
/// that can never
/// be shared whatever the names in scope mean (a reference, pointer, function pointer, tuple,
/// slice, `bool`, `char`, `usize`, `isize`). These checks exist for their messages: they tell
/// the user *why* and *what to use instead*. A field type *named* like a standard type that is
/// not `ShmType` (`Box`, `Vec`, `Option`, `Cell`, `AtomicU32`, `NonZeroU32`…) is not refused
/// here, because the name may be the user's own `ShmType` struct: its layout is read through
/// a `__private::hint` function whose bound carries a message for that kind of type.
///
/// **Semantics** (in the generated code, checked by the compiler): every field type implements
/// `ShmType` (the layout refers to `<F as ShmType>::LAYOUT`), the struct is `Copy`, and, for
/// every pair of adjacent fields and for the end of the struct, a constant computed from
/// `offset_of!` and `size_of` proves that no padding byte exists; another proves the struct is
/// not zero-sized. Because these read the compiler's own numbers, a type alias, an
/// associated-type projection or a macro-produced type cannot hide padding, and `align(N)`
/// padding at the end is caught. A `repr(transparent)` struct needs no padding proof: it has
/// the layout of its one non-zero-sized field. Generic structs (type parameters, which must be
/// `ShmType`, and const parameters such as `struct Named<const N: usize> { name: FixedStr<N> }`)
/// are accepted only with `repr(transparent)` or `repr(C, packed)` (or `packed(1)`), which have
/// no padding for any argument: a proof that runs only when a generic type is instantiated would
/// let an unsound `unsafe impl` exist unchecked (and `cargo check` never instantiates). A packed
/// struct costs nothing when its fields are 1-aligned, as `u8` arrays and
/// [`FixedStr`](value::FixedStr) are; the value types of [`value`] are generic and padding-free
/// by their own construction.
///
/// # Options
///
/// `#[shm(name = "...")]` stores another name than the struct's in the layout.
/// `#[shm(default_zeroed)]` also implements [`Default`] as the all-zero value
/// ([`zeroed`]), which every `ShmType` has: `#[derive(Default)]` stops at arrays longer than
/// 32, and gives `FixedStr` and the other value types the same empty values anyway.
///
/// Every check is a type-checking error or the evaluation of a `const _` item, so each one
/// fails `cargo check` as well as `cargo build`.
pub use shmstore_derive::ShmType;
pub use store::Store;
pub use value::{zeroed, ShmEnum};
#[doc(hidden)]
pub use wait_set::{__force_futex_waitv_fallback, __no_safety_slice};
pub use wait_set::{QueueEvent, Ready, ValueHandle, WaitKey, WaitSet};

/// Fuzzing entry points for the targets in `fuzz/` and for users' own targets (feature
/// `fuzzing`).
#[cfg(feature = "fuzzing")]
pub mod fuzzing;

/// FORMAT.md's constants as the library writes them, so that the `shmstore` command's test can
/// check its own copy against them. Not part of the public API.
#[doc(hidden)]
pub mod __format {
    #![allow(missing_docs)]
    use crate::format as h;
    pub const FLAG_IN_PLACE: u32 = h::FLAG_IN_PLACE;
    pub const FLAG_NOTIFY_READERS: u32 = h::FLAG_NOTIFY_READERS;
    pub const STATE_INITIALISING: u32 = h::STATE_INITIALISING;
    pub const STATE_READY: u32 = h::STATE_READY;
    pub const KIND_VALUE: u32 = h::KIND_VALUE;
    pub const KIND_QUEUE: u32 = h::KIND_QUEUE;
    pub const QUEUE_SPSC: u32 = h::QUEUE_SPSC;
    pub const QUEUE_MPMC: u32 = h::QUEUE_MPMC;
    pub const QUEUE_CONTROL_SIZE: usize = h::QUEUE_CONTROL_SIZE;
    /// The format version of a type without field kinds, and of one with them.
    pub const FORMAT_VERSION_PLAIN: u32 = h::OLDEST_FORMAT_VERSION;
    pub const FORMAT_VERSION_KINDS: u32 = h::FORMAT_VERSION;
}

/// How many registrations the process's notifier holds now (async futures waiting, and
/// [`ShmEvents`] watches): for tests that check that dropped futures leave none behind. Not
/// part of the public API.
#[doc(hidden)]
pub fn __notifier_registrations() -> usize {
    notifier::registrations()
}

/// Items the derive's generated code names. Not part of the public API.
#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

/// The README's examples, compiled and run as doc-tests so they cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
