//! Migration targets: the stored type a region is migrated to when a writer of a compatible
//! type with fields the region lacks opens it (README, "Changing a region's type").

use super::descriptor::Descriptor;

/// A stored type known at run time rather than from a Rust type of this program: what a
/// migrated region's header and descriptor say (the union of the region's type and the
/// writer's, or the writer's own type when it holds every field of the region's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredType {
    /// The descriptor written after the header.
    pub(crate) descriptor: Descriptor,
    /// The value's size in bytes.
    pub(crate) size: usize,
    /// The value's alignment.
    pub(crate) align: usize,
    /// The header's fingerprint: the Rust type's when the target is one, otherwise a hash of
    /// the descriptor, size and alignment that no derived type's fingerprint equals.
    pub(crate) fingerprint: u64,
}
