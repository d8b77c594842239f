//! The region format, version 1, in code: `FORMAT.md` byte for byte. The tests beside each
//! part keep the two in step.
//!
//! - [`header`]: the header at offset 0, the validated view of a mapped header
//!   ([`SharedBytes`], [`SharedView`]) and the region's geometry ([`RegionLayout`]);
//! - [`descriptor`]: the type descriptor codec;
//! - [`compat`]: whether two descriptors may share a region, field by field;
//! - [`queue`]: a queue's control block, mode codes and geometry;
//! - [`channel`]: a byte channel's settings line, records and their parser;
//! - [`owner`]: the owner word (a pid and its namespace);
//! - [`projection`]: reading a value through a compatible type;
//! - [`writeback`]: writing a value of a compatible type back into a region;
//! - [`union`]: the stored type a region migrates to;
//! - [`versions`]: the versions table, every type that shaped a migrated region.
//!
//! No other module casts raw pointers into a header or a control block: they go through the
//! views here.

mod channel;
mod compat;
mod descriptor;
mod header;
mod owner;
mod projection;
mod queue;
mod union;
pub(crate) mod versions;
mod writeback;

pub(crate) use channel::*;
pub(crate) use compat::compare;
pub use compat::{Compatibility, FieldCompatibility, FieldVerdict, Overall};
pub(crate) use descriptor::*;
pub use descriptor::{KindEntry, StoredKind};
pub(crate) use header::*;
pub(crate) use owner::*;
pub(crate) use projection::{Projection, Refusal};
pub use queue::QueueMode;
pub(crate) use queue::*;
pub(crate) use union::{migration, Migration, StoredType};
pub(crate) use versions::KnownVersion;
pub(crate) use writeback::Writeback;
