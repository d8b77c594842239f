//! The type descriptor codec: the stored type's name and flattened field table
//! (`FORMAT.md`, "Type descriptor"), encoded from a [`TypeLayout`], decoded from a region's
//! bytes (any bytes: a peer may have written them), and compared to explain a layout mismatch.

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;

use crate::atomic_copy::copy_atomic;
use crate::error::{Error, Result};
use crate::layout::{Primitive, TypeLayout, ValueKind};

use super::header::{HeaderInfo, SharedBytes, HEADER_SIZE};

/// A decoded type descriptor: the stored type's name and flattened field table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Descriptor {
    pub(crate) type_name: String,
    pub(crate) fields: Vec<DescriptorField>,
    /// The kinds table (format version 2); empty for a type whose every kind is plain, whose
    /// descriptor is format version 1's.
    pub(crate) kinds: Vec<KindEntry>,
}

/// One entry of a region's kinds table (`FORMAT.md`, "Field kinds (format version 2)"): a
/// value whose bytes mean text, a flag, an optional value, a timestamp, an enum or a list.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KindEntry {
    /// The dotted path of the value, spelled as the field table spells paths
    /// (`service_name`, `peers[].name`, `ports.items[]`); empty for the top-level value.
    pub path: String,
    /// What its bytes mean.
    pub kind: StoredKind,
}

/// What a value's bytes mean, as a region's kinds table records it: the stored form of a
/// [`ValueKind`] (other than plain), owned, so that it describes regions of any build.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoredKind {
    /// UTF-8 text: leaves `len` (`[u8; 4]`, a native `u32`) and `bytes` (`[u8; capacity]`).
    Text {
        /// The most bytes the text may hold.
        capacity: u64,
    },
    /// A flag: leaf `value` (`u8`, any non-zero value is `true`).
    Flag,
    /// An optional value: leaves `present` (`[u8; n]`, the first byte non-zero when the value
    /// is present) and `value` (with everything under it).
    Optional,
    /// A timestamp: leaf `unix_nanos` (`i64` nanoseconds since the Unix epoch, UTC).
    Timestamp,
    /// An enum: leaf `raw` (an integer), whose known values are named.
    Enum {
        /// The enum's name.
        name: String,
        /// Each variant's name and value, in declaration order.
        variants: Vec<(String, i128)>,
    },
    /// A list: leaves `len` (`[u8; w]`, one element wide, the length in its first 1, 2 or 4
    /// bytes as a native unsigned integer for `w` = 1, 2 or 3, 4 and more) and `items`
    /// (`capacity` elements, with everything under them).
    List {
        /// The most elements the list may hold.
        capacity: u64,
    },
}

impl StoredKind {
    fn of(kind: ValueKind) -> Option<StoredKind> {
        Some(match kind {
            ValueKind::Plain => return None,
            ValueKind::Text { capacity } => StoredKind::Text {
                capacity: capacity as u64,
            },
            ValueKind::Flag => StoredKind::Flag,
            ValueKind::Optional => StoredKind::Optional,
            ValueKind::Timestamp => StoredKind::Timestamp,
            ValueKind::Enum { name, variants } => StoredKind::Enum {
                name: name.to_string(),
                variants: variants
                    .iter()
                    .map(|(name, value)| (name.to_string(), *value))
                    .collect(),
            },
            ValueKind::List { capacity } => StoredKind::List {
                capacity: capacity as u64,
            },
            // `ValueKind` is non-exhaustive only for users: this crate names every kind.
        })
    }

    /// The kind's code in the kinds table (as [`ValueKind::code`]).
    pub fn code(&self) -> u32 {
        match self {
            StoredKind::Text { .. } => 1,
            StoredKind::Flag => 2,
            StoredKind::Optional => 3,
            StoredKind::Timestamp => 4,
            StoredKind::Enum { .. } => 5,
            StoredKind::List { .. } => 6,
        }
    }

    /// The capacity of text (bytes) or a list (elements); 0 otherwise.
    pub fn capacity(&self) -> u64 {
        match self {
            StoredKind::Text { capacity } | StoredKind::List { capacity } => *capacity,
            _ => 0,
        }
    }

    /// `text (capacity 32)`, `flag`, `enum LogLevel { Error = 0, Warn = 1 }`…
    pub fn describe(&self) -> String {
        match self {
            StoredKind::Text { capacity } => format!("text (capacity {capacity} bytes)"),
            StoredKind::Flag => "flag".into(),
            StoredKind::Optional => "optional".into(),
            StoredKind::Timestamp => "timestamp".into(),
            StoredKind::Enum { name, variants } => {
                let list: Vec<String> =
                    variants.iter().map(|(n, v)| format!("{n} = {v}")).collect();
                format!("enum {name} {{ {} }}", list.join(", "))
            }
            StoredKind::List { capacity } => format!("list (capacity {capacity})"),
        }
    }
}

/// Kind codes, as stored.
const KIND_TEXT: u32 = 1;
const KIND_FLAG: u32 = 2;
const KIND_OPTIONAL: u32 = 3;
const KIND_TIMESTAMP: u32 = 4;
const KIND_ENUM: u32 = 5;
const KIND_LIST: u32 = 6;
/// The smallest encoded kind entry: empty path, code, capacity, empty name, no variants.
const MIN_KIND_BYTES: usize = 4 + 4 + 8 + 4 + 4;
/// The smallest encoded variant: empty name, value.
const MIN_VARIANT_BYTES: usize = 4 + 16;

/// One row of the descriptor's field table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DescriptorField {
    pub(crate) path: String,
    pub(crate) offset: u64,
    /// The primitive's code (see [`Primitive::code`]); unknown codes are kept for reporting.
    pub(crate) primitive: u32,
    /// `(count, stride)` per dimension, outermost first; empty for a scalar.
    pub(crate) dims: Vec<(u64, u64)>,
}

/// The most dimensions a descriptor row may have (a sanity bound against corrupt regions).
const MAX_DIMS: usize = 32;
/// The smallest encoded row: empty path, no dimensions.
const MIN_ROW_BYTES: usize = 4 + 4 + 8 + 4;

impl DescriptorField {
    /// `u32`; `[f32; 4]` for one contiguous dimension; `f32 ×4 (stride 8)` otherwise; `kind 99`
    /// for a code this build does not know.
    pub(crate) fn type_text(&self) -> String {
        let primitive = u8::try_from(self.primitive)
            .ok()
            .and_then(Primitive::from_code);
        let base = primitive.map_or_else(
            || format!("kind {}", self.primitive),
            |p| p.name().to_string(),
        );
        match (self.dims.as_slice(), primitive) {
            ([], _) => base,
            ([(count, stride)], Some(p)) if *stride == p.size() as u64 => {
                format!("[{base}; {count}]")
            }
            (dims, _) => {
                let mut text = base;
                for (count, stride) in dims {
                    text.push_str(&format!(" ×{count} (stride {stride})"));
                }
                text
            }
        }
    }
}

impl Descriptor {
    /// The descriptor of a Rust type.
    pub(crate) fn of(layout: &TypeLayout) -> Descriptor {
        Descriptor {
            type_name: layout.type_name(),
            fields: layout
                .leaves()
                .into_iter()
                .map(|leaf| DescriptorField {
                    path: leaf.path,
                    offset: leaf.offset as u64,
                    primitive: u32::from(leaf.primitive.code()),
                    dims: leaf
                        .dims
                        .iter()
                        .map(|d| (d.count as u64, d.stride as u64))
                        .collect(),
                })
                .collect(),
            kinds: layout
                .kind_paths()
                .into_iter()
                .filter_map(|(path, kind)| {
                    Some(KindEntry {
                        path,
                        kind: StoredKind::of(kind)?,
                    })
                })
                .collect(),
        }
    }

    /// The header's `format_version` for this descriptor: 1 when every kind is plain (the
    /// descriptor is byte for byte format version 1's), 2 when it has a kinds table.
    pub(crate) fn format_version(&self) -> u32 {
        if self.kinds.is_empty() {
            1
        } else {
            2
        }
    }

    /// The byte encoding stored after the header (see `FORMAT.md`): `u32` name length, name,
    /// `u32` field count, then per field `u32` path length, path, `u32` primitive code,
    /// `u64` offset, `u32` dimension count, and per dimension `u64` count and `u64` stride.
    /// Native endianness, no padding. When the type has kinds (format version 2), the kinds
    /// table follows: `u32` count, then per entry `u32` path length, path, `u32` kind code,
    /// `u64` capacity, `u32` name length, name, `u32` variant count, and per variant `u32`
    /// name length, name and its value as 16 bytes of little-endian `i128`.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_str(&mut out, &self.type_name);
        out.extend_from_slice(&(self.fields.len() as u32).to_ne_bytes());
        for field in &self.fields {
            put_str(&mut out, &field.path);
            out.extend_from_slice(&field.primitive.to_ne_bytes());
            out.extend_from_slice(&field.offset.to_ne_bytes());
            out.extend_from_slice(&(field.dims.len() as u32).to_ne_bytes());
            for (count, stride) in &field.dims {
                out.extend_from_slice(&count.to_ne_bytes());
                out.extend_from_slice(&stride.to_ne_bytes());
            }
        }
        if !self.kinds.is_empty() {
            out.extend_from_slice(&(self.kinds.len() as u32).to_ne_bytes());
            for entry in &self.kinds {
                put_str(&mut out, &entry.path);
                out.extend_from_slice(&entry.kind.code().to_ne_bytes());
                out.extend_from_slice(&entry.kind.capacity().to_ne_bytes());
                let (name, variants) = match &entry.kind {
                    StoredKind::Enum { name, variants } => (name.as_str(), variants.as_slice()),
                    _ => ("", &[][..]),
                };
                put_str(&mut out, name);
                out.extend_from_slice(&(variants.len() as u32).to_ne_bytes());
                for (name, value) in variants {
                    put_str(&mut out, name);
                    out.extend_from_slice(&value.to_le_bytes());
                }
            }
        }
        out
    }

    /// Decodes [`encode`](Self::encode)'s format as of the header's `format_version` (1: no
    /// kinds table; 2: a kinds table of at least one entry), refusing anything truncated,
    /// oversized, non-UTF-8 or followed by trailing bytes, and a kinds table whose entries do
    /// not describe the field table's leaves (see [`check_kind`]).
    pub(crate) fn decode(
        bytes: &[u8],
        format_version: u32,
    ) -> std::result::Result<Descriptor, String> {
        let mut r = Reader { bytes, at: 0 };
        let type_name = r.str()?;
        let count = r.count("its descriptor", "fields", MIN_ROW_BYTES)?;
        let mut fields = Vec::with_capacity(count);
        for _ in 0..count {
            let path = r.str()?;
            let primitive = r.u32()?;
            let offset = r.u64()?;
            let ndims = r.u32()? as usize;
            if ndims > MAX_DIMS {
                return Err(format!(
                    "its descriptor has a field with {ndims} dimensions (at most {MAX_DIMS})"
                ));
            }
            let mut dims = Vec::with_capacity(ndims);
            for _ in 0..ndims {
                dims.push((r.u64()?, r.u64()?));
            }
            fields.push(DescriptorField {
                path,
                offset,
                primitive,
                dims,
            });
        }
        let mut kinds = Vec::new();
        if format_version >= 2 {
            if r.remaining() == 0 {
                return Err(
                    "it has format version 2, but its descriptor has no kinds table \
                            after the field table (a format version 1 descriptor)"
                        .into(),
                );
            }
            let count = r.count("its descriptor", "kinds", MIN_KIND_BYTES)?;
            if count == 0 {
                return Err(
                    "its format version 2 descriptor has an empty kinds table (a type \
                            without kinds is stored as format version 1)"
                        .into(),
                );
            }
            kinds.reserve(count);
            // Indexed, so that a hostile table of 16 MiB is checked in `n log n`, not `n²`.
            let index = FieldIndex::new(&fields, |f| f.path.as_str());
            let mut paths = HashSet::with_capacity(count);
            for entry_index in 0..count {
                let entry = r
                    .kind_entry()
                    .map_err(|why| format!("kind entry {entry_index}: {why}"))?;
                if !paths.insert(entry.path.clone()) {
                    return Err(format!("its kinds table names `{}` twice", entry.path));
                }
                check_kind(&entry, &index).map_err(|why| {
                    format!(
                        "its kinds table entry for `{}` ({}) {why}",
                        entry.path,
                        entry.kind.describe()
                    )
                })?;
                kinds.push(entry);
            }
        }
        if r.remaining() != 0 {
            return Err(format!(
                "its descriptor has {} unexpected trailing bytes",
                r.remaining()
            ));
        }
        Ok(Descriptor {
            type_name,
            fields,
            kinds,
        })
    }

    /// Only the type name, from the first bytes of an encoded descriptor (the rest may be cut
    /// off): what a listing needs, without reading a descriptor of up to 16 MiB whole.
    pub(crate) fn decode_type_name(prefix: &[u8]) -> std::result::Result<String, String> {
        Reader {
            bytes: prefix,
            at: 0,
        }
        .str()
    }

    /// What differs between `self` (this process's type) and `stored` (the region's), one
    /// line each, for [`Error::LayoutMismatch`].
    pub(crate) fn differences(&self, stored: &Descriptor) -> Vec<String> {
        let mut out = Vec::new();
        if self.type_name != stored.type_name {
            out.push(format!(
                "type name `{}` here, `{}` in the region",
                self.type_name, stored.type_name
            ));
        }
        for mine in &self.fields {
            match stored.fields.iter().find(|f| f.path == mine.path) {
                Some(theirs) if theirs == mine => {}
                Some(theirs) => out.push(format!(
                    "field `{}`: {} at offset {} here, {} at offset {} in the region",
                    mine.path,
                    mine.type_text(),
                    mine.offset,
                    theirs.type_text(),
                    theirs.offset
                )),
                None => out.push(format!(
                    "field `{}` ({} at offset {}) is not in the region",
                    mine.path,
                    mine.type_text(),
                    mine.offset
                )),
            }
        }
        for theirs in &stored.fields {
            if !self.fields.iter().any(|f| f.path == theirs.path) {
                out.push(format!(
                    "field `{}` ({} at offset {}) is in the region but not in this type",
                    theirs.path,
                    theirs.type_text(),
                    theirs.offset
                ));
            }
        }
        let shown = |path: &str| {
            if path.is_empty() {
                "the value".to_string()
            } else {
                format!("field `{path}`")
            }
        };
        for mine in &self.kinds {
            match stored.kinds.iter().find(|k| k.path == mine.path) {
                Some(theirs) if theirs == mine => {}
                Some(theirs) => out.push(format!(
                    "{}: {} here, {} in the region{}",
                    shown(&mine.path),
                    mine.kind.describe(),
                    theirs.kind.describe(),
                    variant_differences(&mine.kind, &theirs.kind)
                )),
                None => out.push(format!(
                    "{}: {} here, plain data in the region",
                    shown(&mine.path),
                    mine.kind.describe()
                )),
            }
        }
        for theirs in &stored.kinds {
            if !self.kinds.iter().any(|k| k.path == theirs.path) {
                out.push(format!(
                    "{}: plain data here, {} in the region",
                    shown(&theirs.path),
                    theirs.kind.describe()
                ));
            }
        }
        out
    }
}

/// Checks that a ready region holds `layout`'s type, reading the stored descriptor (only then)
/// to explain any difference.
pub(crate) fn check_type(
    name: &str,
    info: &HeaderInfo,
    descriptor_bytes: impl FnOnce() -> Vec<u8>,
    layout: &TypeLayout,
) -> Result<()> {
    // A type with kinds is stored as format version 2, any other as version 1: a region whose
    // version disagrees has a descriptor this type would not write (decoded below to say so).
    let version = if layout.has_kinds() { 2 } else { 1 };
    let matches = info.fingerprint == layout.fingerprint()
        && info.format_version == version
        && info.type_size() == layout.size()
        && info.layout.payload_align == layout.align();
    if matches {
        return Ok(());
    }
    let stored = Descriptor::decode(&descriptor_bytes(), info.format_version)
        .map_err(|why| Error::corrupt(name, why))?;
    let mine = Descriptor::of(layout);
    let verdict = super::compat::compare(&stored, &mine);
    let mut differences = incompatible_lines(&verdict);
    let unrelated =
        verdict.overall == super::compat::Overall::Compatible && !verdict.shares_a_field();
    if differences.is_empty() && verdict.overall == super::compat::Overall::Compatible && !unrelated
    {
        differences.push(if info.queue.is_some() {
            "every field is compatible (README, \"Changing a region's type\"), but a queue's \
             element type cannot change (queues are not migrated): use the same element type"
                .to_string()
        } else {
            "the layouts are compatible (README, \"Changing a region's type\"): `Shm::open` \
             and `Shm::open_reader` read and write this region through this type"
                .to_string()
        });
    }
    if !differences.is_empty() {
        return Err(Error::LayoutMismatch {
            name: name.to_string(),
            expected: mine.type_name,
            found: stored.type_name,
            expected_fingerprint: layout.fingerprint(),
            found_fingerprint: info.fingerprint,
            differences,
        });
    }
    // Identical field tables: the difference is elsewhere (nested names, packing, alignment);
    // or no field in common: another type altogether, whose every field is listed.
    let mut differences = mine.differences(&stored);
    if unrelated {
        differences.insert(0, "no field in common with the region's type".to_string());
    }
    if info.type_size() != layout.size() {
        differences.push(format!(
            "size {} here, {} in the region",
            layout.size(),
            info.type_size()
        ));
    }
    if info.layout.payload_align != layout.align() {
        differences.push(format!(
            "alignment {} here, {} in the region",
            layout.align(),
            info.layout.payload_align
        ));
    }
    if differences.is_empty() {
        differences.push(
            "the field tables agree, so a nested type's name or a field name inside an array of \
             structs differs"
                .to_string(),
        );
    }
    Err(Error::LayoutMismatch {
        name: name.to_string(),
        expected: mine.type_name,
        found: stored.type_name,
        expected_fingerprint: layout.fingerprint(),
        found_fingerprint: info.fingerprint,
        differences,
    })
}

/// How many incompatible fields a [`Error::LayoutMismatch`] lists before "and N more".
const SHOWN_INCOMPATIBLE: usize = 8;

/// One line per incompatible field of `verdict` (`field `burst`: u32 in the region, f32 here:
/// …`), at most [`SHOWN_INCOMPATIBLE`] of them and then how many more.
fn incompatible_lines(verdict: &super::compat::Compatibility) -> Vec<String> {
    let all: Vec<_> = verdict.incompatible().collect();
    let mut lines: Vec<String> = all
        .iter()
        .take(SHOWN_INCOMPATIBLE)
        .map(|field| {
            let reason = match &field.verdict {
                super::compat::FieldVerdict::Incompatible { reason } => reason.as_str(),
                _ => "",
            };
            if field.path.is_empty() {
                format!("the whole value: {reason}")
            } else {
                format!("field `{}`: {reason}", field.path)
            }
        })
        .collect();
    if all.len() > SHOWN_INCOMPATIBLE {
        lines.push(format!(
            "and {} more incompatible fields",
            all.len() - SHOWN_INCOMPATIBLE
        ));
    }
    lines
}

/// `; variants differ: …` naming each variant only one side has or whose value differs, for
/// two enums; empty otherwise.
fn variant_differences(mine: &StoredKind, theirs: &StoredKind) -> String {
    let (
        StoredKind::Enum { variants: mine, .. },
        StoredKind::Enum {
            variants: theirs, ..
        },
    ) = (mine, theirs)
    else {
        return String::new();
    };
    let mut parts = Vec::new();
    for (name, value) in mine {
        match theirs.iter().find(|(n, _)| n == name) {
            Some((_, v)) if v == value => {}
            Some((_, v)) => parts.push(format!("`{name}` is {value} here and {v} in the region")),
            None => parts.push(format!("`{name}` ({value}) is not in the region")),
        }
    }
    for (name, value) in theirs {
        if !mine.iter().any(|(n, _)| n == name) {
            parts.push(format!("`{name}` ({value}) is only in the region"));
        }
    }
    if parts.is_empty() {
        "; the variants are the same, in another order or with another enum name".into()
    } else {
        format!("; variants differ: {}", parts.join(", "))
    }
}

/// `prefix.name`, or `name` at the top level.
pub(crate) fn join_path(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Whether `path` is `prefix` itself or lies under it (`prefix.x`, `prefix[]…`): what
/// [`PathIndex::at_or_under`] finds, which its tests check against this definition.
#[cfg(test)]
pub(crate) fn is_under(path: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

/// How many arrays of structs enclose `path` (its `[]`s): the leading dimensions every leaf
/// under it shares.
pub(crate) fn outer_dims(path: &str) -> usize {
    path.matches("[]").count()
}

/// Whether a kinds table entry describes the field table: each kind's leaves exist under its
/// path with the shape its value type gives them (see [`StoredKind`]), so that a reader can
/// decode it without looking outside the value. `Err` says what is wrong.
fn check_kind(entry: &KindEntry, fields: &FieldIndex<'_>) -> std::result::Result<(), String> {
    let outer = outer_dims(&entry.path);
    let leaf = |name: &str| {
        let path = join_path(&entry.path, name);
        fields
            .get(&path)
            .ok_or_else(|| format!("has no leaf `{path}` in the field table"))
    };
    // A leaf's own dimensions, after those of the arrays of structs around the kind.
    let inner = |field: &DescriptorField| -> std::result::Result<Vec<(u64, u64)>, String> {
        if field.dims.len() < outer {
            return Err(format!(
                "has a leaf `{}` with too few dimensions",
                field.path
            ));
        }
        Ok(field.dims[outer..].to_vec())
    };
    let is = |field: &DescriptorField, primitive: Primitive, dims: &[(u64, u64)]| {
        if field.primitive == u32::from(primitive.code()) && inner(field)? == dims {
            Ok(())
        } else {
            Err(format!(
                "has a leaf `{}` of {}, not {}",
                field.path,
                field.type_text(),
                DescriptorField {
                    path: String::new(),
                    offset: 0,
                    primitive: u32::from(primitive.code()),
                    dims: dims.to_vec(),
                }
                .type_text()
            ))
        }
    };
    // The byte width of a `[u8; n]` header leaf (`len`, `present`).
    let header_width = |field: &DescriptorField| -> std::result::Result<u64, String> {
        match inner(field)?.as_slice() {
            [] if field.primitive == u32::from(Primitive::U8.code()) => Ok(1),
            [(n, 1)] if field.primitive == u32::from(Primitive::U8.code()) && *n > 0 => Ok(*n),
            _ => Err(format!(
                "has a header `{}` of {}, not bytes",
                field.path,
                field.type_text()
            )),
        }
    };
    let has_leaves_under = |name: &str| {
        let path = join_path(&entry.path, name);
        if !fields.at_or_under(&path).is_empty() {
            Ok(())
        } else {
            Err(format!("has nothing under `{path}` in the field table"))
        }
    };
    match &entry.kind {
        StoredKind::Text { capacity } => {
            let len = leaf("len")?;
            is(len, Primitive::U8, &[(4, 1)])?;
            let bytes = leaf("bytes")?;
            if *capacity == 0 {
                return Err("has capacity 0".into());
            }
            is(bytes, Primitive::U8, &[(*capacity, 1)])?;
            if bytes.offset != len.offset.wrapping_add(4) {
                return Err("has its bytes away from its length".into());
            }
        }
        StoredKind::Flag => is(leaf("value")?, Primitive::U8, &[])?,
        StoredKind::Timestamp => is(leaf("unix_nanos")?, Primitive::I64, &[])?,
        StoredKind::Enum { name, variants } => {
            let raw = leaf("raw")?;
            let primitive = u8::try_from(raw.primitive)
                .ok()
                .and_then(Primitive::from_code);
            let Some((primitive, (min, max))) =
                primitive.and_then(|p| Some((p, integer_range(p)?)))
            else {
                return Err(format!(
                    "has a leaf `{}` of {}, not an integer",
                    raw.path,
                    raw.type_text()
                ));
            };
            is(raw, primitive, &[])?;
            if name.is_empty() {
                return Err("has an empty enum name".into());
            }
            for (variant, value) in variants {
                if *value < min || *value > max {
                    return Err(format!(
                        "has variant `{variant}` = {value}, outside {}",
                        raw.type_text()
                    ));
                }
            }
        }
        StoredKind::Optional => {
            header_width(leaf("present")?)?;
            has_leaves_under("value")?;
        }
        StoredKind::List { capacity } => {
            header_width(leaf("len")?)?;
            if *capacity == 0 {
                return Err("has capacity 0".into());
            }
            has_leaves_under("items")?;
            let items = join_path(&entry.path, "items");
            for field in fields.at_or_under(&items) {
                let first = inner(field)?.first().map_or(0, |d| d.0);
                // Items of structs: one dimension of `capacity`; of primitives (or arrays of
                // them): one contiguous dimension of a multiple of `capacity`.
                let fits = if field.path == items {
                    first != 0 && first % capacity == 0
                } else {
                    first == *capacity
                };
                if !fits {
                    return Err(format!(
                        "has a leaf `{}` of {}, which does not hold {capacity} items",
                        field.path,
                        field.type_text()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A table (of fields, or of kinds) by path, to find an entry and the entries under a path in
/// `log n`: a hostile descriptor may hold hundreds of thousands of fields and kinds, and a
/// scan of the table per lookup would take minutes. Where a path repeats, the first entry
/// counts, as a scan would find it.
pub(crate) struct PathIndex<'a, T> {
    /// Each path's first entry, with its position in the table.
    by_path: BTreeMap<&'a str, (usize, &'a T)>,
    all: &'a [T],
}

impl<'a, T> PathIndex<'a, T> {
    pub(crate) fn new(table: &'a [T], path: impl Fn(&'a T) -> &'a str) -> Self {
        let mut by_path = BTreeMap::new();
        for (position, entry) in table.iter().enumerate() {
            by_path.entry(path(entry)).or_insert((position, entry));
        }
        PathIndex {
            by_path,
            all: table,
        }
    }

    /// The entry at `path`.
    pub(crate) fn get(&self, path: &str) -> Option<&'a T> {
        self.by_path.get(path).map(|(_, entry)| *entry)
    }

    /// The entry at `path` and every entry under it (`path.x`, `path[]…`), in table order: those
    /// whose paths start with `path.` or `path[` are each a contiguous range of the sorted
    /// paths. Under the empty path is the whole table.
    pub(crate) fn at_or_under(&self, path: &str) -> Vec<&'a T> {
        if path.is_empty() {
            return self.all.iter().collect();
        }
        let mut found: Vec<_> = self.by_path.get(path).copied().into_iter().collect();
        for separator in ['.', '['] {
            let prefix = format!("{path}{separator}");
            let from = (Bound::Included(prefix.as_str()), Bound::Unbounded);
            found.extend(
                self.by_path
                    .range::<str, _>(from)
                    .take_while(|(entry_path, _)| entry_path.starts_with(&prefix))
                    .map(|(_, entry)| *entry),
            );
        }
        // In table order, so that the first bad leaf reported is the one a scan finds first.
        found.sort_unstable_by_key(|(position, _)| *position);
        found.into_iter().map(|(_, entry)| entry).collect()
    }
}

/// The field table by path.
type FieldIndex<'a> = PathIndex<'a, DescriptorField>;

/// The values an integer primitive holds; `None` for a float.
pub(crate) fn integer_range(primitive: Primitive) -> Option<(i128, i128)> {
    let bits = 8 * primitive.size() as u32;
    match primitive {
        Primitive::U8 | Primitive::U16 | Primitive::U32 | Primitive::U64 => {
            Some((0, (1i128 << bits) - 1))
        }
        Primitive::U128 => Some((0, i128::MAX)),
        Primitive::I8 | Primitive::I16 | Primitive::I32 | Primitive::I64 | Primitive::I128 => {
            Some((i128::MIN >> (128 - bits), i128::MAX >> (128 - bits)))
        }
        Primitive::F32 | Primitive::F64 => None,
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_ne_bytes());
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, n: usize) -> std::result::Result<&[u8], String> {
        if n > self.remaining() {
            return Err(format!(
                "its descriptor is truncated (needs {n} more bytes at offset {}, has {})",
                self.at,
                self.remaining()
            ));
        }
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    fn u32(&mut self) -> std::result::Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> std::result::Result<u64, String> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_ne_bytes(a))
    }

    fn i128(&mut self) -> std::result::Result<i128, String> {
        let b = self.take(16)?;
        let mut a = [0u8; 16];
        a.copy_from_slice(b);
        Ok(i128::from_le_bytes(a))
    }

    /// A `u32` count of `what`, each at least `min_bytes` long: refused when the bytes left
    /// cannot hold that many, so that a forged count never sizes an allocation.
    fn count(
        &mut self,
        whose: &str,
        what: &str,
        min_bytes: usize,
    ) -> std::result::Result<usize, String> {
        let count = self.u32()? as usize;
        if count > self.remaining() / min_bytes {
            return Err(format!("{whose} claims {count} {what}, more than it holds"));
        }
        Ok(count)
    }

    /// One kinds table entry, its counts bounded by the bytes left.
    fn kind_entry(&mut self) -> std::result::Result<KindEntry, String> {
        let path = self.str()?;
        let code = self.u32()?;
        let capacity = self.u64()?;
        let name = self.str()?;
        let count = self.count(&format!("`{path}`"), "variants", MIN_VARIANT_BYTES)?;
        let mut variants = Vec::with_capacity(count);
        for _ in 0..count {
            variants.push((self.str()?, self.i128()?));
        }
        let plain = |kind: StoredKind| {
            if capacity != 0 || !name.is_empty() || !variants.is_empty() {
                Err(format!(
                    "`{path}` has kind code {code} with a capacity, a name or variants, which \
                     only text, lists and enums have"
                ))
            } else {
                Ok(kind)
            }
        };
        let kind = match code {
            KIND_TEXT | KIND_LIST if !name.is_empty() || !variants.is_empty() => {
                return Err(format!(
                    "`{path}` has kind code {code} with a name or variants"
                ))
            }
            KIND_TEXT => StoredKind::Text { capacity },
            KIND_LIST => StoredKind::List { capacity },
            KIND_FLAG => plain(StoredKind::Flag)?,
            KIND_OPTIONAL => plain(StoredKind::Optional)?,
            KIND_TIMESTAMP => plain(StoredKind::Timestamp)?,
            KIND_ENUM if capacity != 0 => {
                return Err(format!("`{path}` is an enum with capacity {capacity}"))
            }
            KIND_ENUM => {
                let mut names = HashSet::with_capacity(variants.len());
                for (a, _) in &variants {
                    if !names.insert(a.as_str()) {
                        return Err(format!("`{path}` names variant `{a}` twice"));
                    }
                }
                StoredKind::Enum { name, variants }
            }
            other => {
                return Err(format!(
                    "`{path}` has kind code {other}, which this build does not know"
                ))
            }
        };
        Ok(KindEntry { path, kind })
    }

    fn str(&mut self) -> std::result::Result<String, String> {
        let len = self.u32()? as usize;
        let b = self.take(len)?;
        String::from_utf8(b.to_vec())
            .map_err(|_| "its descriptor holds a name that is not UTF-8".into())
    }
}

/// Copies the first `len` descriptor bytes (from [`HEADER_SIZE`] on) out of a region's
/// bytes; `None` if they do not hold that many.
pub(crate) fn descriptor_copy(region: SharedBytes<'_>, len: usize) -> Option<Vec<u8>> {
    let descriptor = region.range(HEADER_SIZE, len)?;
    let mut out = vec![0u8; len];
    // SAFETY:
    // - source: `descriptor` holds `len` readable bytes for the call (checked by `range`);
    // - alignment: `copy_atomic` loads bytes, which need none;
    // - races: the loads are atomic, so a peer writing the bytes concurrently is no data race;
    // - destination: `out` is `len` bytes we own, not overlapping the shared source.
    unsafe { copy_atomic(descriptor.as_ptr(), out.as_mut_ptr(), len) };
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn descriptor_round_trips_and_refuses_truncation() {
        let d = Descriptor {
            type_name: "Limits".into(),
            fields: vec![
                DescriptorField {
                    path: "a".into(),
                    offset: 0,
                    primitive: 3,
                    dims: vec![],
                },
                DescriptorField {
                    path: "b.c".into(),
                    offset: 8,
                    primitive: 12,
                    dims: vec![(4, 4)],
                },
            ],
            kinds: vec![],
        };
        let bytes = d.encode();
        assert_eq!(Descriptor::decode(&bytes, 1).unwrap(), d);
        for cut in 0..bytes.len() {
            assert!(
                Descriptor::decode(&bytes[..cut], 1).is_err(),
                "cut at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Descriptor::decode(&longer, 1).is_err());
    }

    #[test]
    fn differences_name_each_field() {
        let mine = Descriptor {
            type_name: "S".into(),
            fields: vec![
                DescriptorField {
                    path: "a".into(),
                    offset: 0,
                    primitive: 4,
                    dims: vec![],
                },
                DescriptorField {
                    path: "b".into(),
                    offset: 8,
                    primitive: 3,
                    dims: vec![],
                },
            ],
            kinds: vec![],
        };
        let theirs = Descriptor {
            type_name: "S".into(),
            fields: vec![
                DescriptorField {
                    path: "a".into(),
                    offset: 0,
                    primitive: 3,
                    dims: vec![],
                },
                DescriptorField {
                    path: "c".into(),
                    offset: 4,
                    primitive: 3,
                    dims: vec![(2, 4)],
                },
            ],
            kinds: vec![],
        };
        let diff = mine.differences(&theirs);
        assert_eq!(
            diff,
            [
                "field `a`: u64 at offset 0 here, u32 at offset 0 in the region",
                "field `b` (u32 at offset 8) is not in the region",
                "field `c` ([u32; 2] at offset 4) is in the region but not in this type",
            ]
        );
    }

    #[test]
    fn strided_rows_render_and_decode_bounds_hold() {
        let row = |dims: Vec<(u64, u64)>| DescriptorField {
            path: "wheels[].x".into(),
            offset: 16,
            primitive: 11,
            dims,
        };
        assert_eq!(row(vec![]).type_text(), "f32");
        assert_eq!(row(vec![(4, 4)]).type_text(), "[f32; 4]");
        assert_eq!(row(vec![(2, 8)]).type_text(), "f32 ×2 (stride 8)");
        let unknown = DescriptorField {
            primitive: 99,
            ..row(vec![])
        };
        assert_eq!(unknown.type_text(), "kind 99");

        let mut d = Descriptor {
            type_name: "Robot".into(),
            fields: vec![row(vec![(200, 2400), (300, 8)])],
            kinds: vec![],
        };
        assert_eq!(Descriptor::decode(&d.encode(), 1).unwrap(), d);
        d.fields[0].dims = vec![(1, 1); MAX_DIMS + 1];
        let err = Descriptor::decode(&d.encode(), 1).unwrap_err();
        assert!(err.contains("dimensions"), "{err}");
    }

    #[test]
    fn descriptor_size_does_not_grow_with_array_lengths() {
        use crate::ShmType;
        #[derive(crate::ShmType, Clone, Copy)]
        #[repr(C)]
        struct Pos {
            x: f32,
            y: f32,
        }
        let small = Descriptor::of(&<[Pos; 2]>::LAYOUT).encode().len();
        let large = Descriptor::of(&<[Pos; 1_000_000]>::LAYOUT).encode().len();
        // Only the type name's digits differ (`[Pos; 2]` against `[Pos; 1000000]`).
        assert!(
            large < small + 16,
            "{small} bytes for 2 elements, {large} for a million"
        );
    }

    /// A descriptor copy stays within the bytes it is given.
    #[test]
    fn descriptor_copy_refuses_lengths_past_the_end() {
        let words: Vec<AtomicU64> = (0..40).map(|_| AtomicU64::new(u64::MAX)).collect();
        let bytes = SharedBytes::of_words(&words);
        assert_eq!(descriptor_copy(bytes, 64), Some(vec![0xff; 64]));
        assert_eq!(descriptor_copy(bytes, 65), None);
    }

    mod kinds {
        use super::super::*;
        use crate::value::{EnumField, FixedStr, FixedVec, Flag, Opt, Timestamp};
        use crate::ShmType;

        #[derive(crate::ShmEnum, Clone, Copy, Debug, PartialEq)]
        #[repr(u8)]
        pub(crate) enum Level {
            Error,
            Warn,
            Info = 7,
        }

        pub(crate) mod renumbered {
            #[derive(crate::ShmEnum, Clone, Copy, Debug, PartialEq)]
            #[repr(u8)]
            pub(crate) enum Level {
                Error,
                Warn,
                Debug = 7,
            }
        }

        #[derive(crate::ShmType, Clone, Copy)]
        #[repr(C)]
        pub(crate) struct Peer {
            pub(crate) name: FixedStr<8>,
            pub(crate) up: Flag,
        }

        #[derive(crate::ShmType, Clone, Copy)]
        #[repr(C)]
        pub(crate) struct Every {
            pub(crate) at: Timestamp,
            pub(crate) when: Opt<Timestamp>,
            pub(crate) limit: Opt<u32>,
            pub(crate) ports: FixedVec<u16, 3>,
            pub(crate) service: FixedStr<5>,
            pub(crate) level: EnumField<Level>,
            pub(crate) peers: [Peer; 2],
            pub(crate) names: FixedVec<FixedStr<3>, 2>,
            pub(crate) tail: [u8; 7],
        }

        #[derive(crate::ShmType, Clone, Copy)]
        #[repr(C)]
        #[shm(name = "Every")]
        pub(crate) struct EveryRenumbered {
            pub(crate) at: Timestamp,
            pub(crate) when: Opt<Timestamp>,
            pub(crate) limit: Opt<u32>,
            pub(crate) ports: FixedVec<u16, 3>,
            pub(crate) service: FixedStr<5>,
            pub(crate) level: EnumField<renumbered::Level>,
            pub(crate) peers: [Peer; 2],
            pub(crate) names: FixedVec<FixedStr<3>, 2>,
            pub(crate) tail: [u8; 7],
        }

        fn kinds_of(d: &Descriptor) -> Vec<String> {
            d.kinds
                .iter()
                .map(|k| format!("{}: {}", k.path, k.kind.describe()))
                .collect()
        }

        #[test]
        fn every_kind_is_recorded_and_round_trips_as_version_2() {
            let d = Descriptor::of(&Every::LAYOUT);
            assert_eq!(d.format_version(), 2);
            assert_eq!(
                kinds_of(&d),
                [
                    "at: timestamp",
                    "when: optional",
                    "when.value: timestamp",
                    "limit: optional",
                    "ports: list (capacity 3)",
                    "service: text (capacity 5 bytes)",
                    "level: enum Level { Error = 0, Warn = 1, Info = 7 }",
                    "peers[].name: text (capacity 8 bytes)",
                    "peers[].up: flag",
                    "names: list (capacity 2)",
                    "names.items[]: text (capacity 3 bytes)",
                ]
            );
            let bytes = d.encode();
            assert_eq!(Descriptor::decode(&bytes, 2).unwrap(), d);
            // A version 1 reader of these bytes finds the kinds table as trailing bytes.
            let err = Descriptor::decode(&bytes, 1).unwrap_err();
            assert!(err.contains("trailing bytes"), "{err}");
            for cut in 0..bytes.len() {
                assert!(
                    Descriptor::decode(&bytes[..cut], 2).is_err(),
                    "cut at {cut}"
                );
            }
            // Each value type alone, at the top level: its path is empty.
            for layout in [
                &FixedStr::<4>::LAYOUT,
                &Flag::LAYOUT,
                &Timestamp::LAYOUT,
                &Opt::<u64>::LAYOUT,
                &EnumField::<Level>::LAYOUT,
                &FixedVec::<Peer, 3>::LAYOUT,
            ] {
                let d = Descriptor::of(layout);
                assert_eq!(d.kinds[0].path, "", "{}", layout.name());
                assert_eq!(Descriptor::decode(&d.encode(), 2).unwrap(), d);
            }
        }

        #[test]
        fn a_plain_type_keeps_format_version_1_bytes_and_fingerprint() {
            #[derive(crate::ShmType, Clone, Copy)]
            #[repr(C)]
            struct Limits {
                rate: u32,
                burst: u32,
                name: [u8; 8],
            }
            let d = Descriptor::of(&Limits::LAYOUT);
            assert_eq!(d.format_version(), 1);
            assert!(d.kinds.is_empty());
            // Version 1's bytes, spelled out: name, 3 rows, nothing after them.
            let mut v1 = Vec::new();
            put_str(&mut v1, "Limits");
            v1.extend_from_slice(&3u32.to_ne_bytes());
            for (path, code, offset, dims) in [
                ("rate", 3u32, 0u64, &[][..]),
                ("burst", 3, 4, &[][..]),
                ("name", 1, 8, &[(8u64, 1u64)][..]),
            ] {
                put_str(&mut v1, path);
                v1.extend_from_slice(&code.to_ne_bytes());
                v1.extend_from_slice(&offset.to_ne_bytes());
                v1.extend_from_slice(&(dims.len() as u32).to_ne_bytes());
                for (count, stride) in dims {
                    v1.extend_from_slice(&count.to_ne_bytes());
                    v1.extend_from_slice(&stride.to_ne_bytes());
                }
            }
            assert_eq!(d.encode(), v1);
            assert_eq!(Descriptor::decode(&v1, 1).unwrap(), d);
            // A version 2 descriptor always has a kinds table.
            let err = Descriptor::decode(&v1, 2).unwrap_err();
            assert!(err.contains("no kinds table"), "{err}");
            // The fingerprint of a plain type is the one format version 1 builds computed:
            // this value was computed by hand from FORMAT.md's "Fingerprint" rules for version
            // 1 (and matches what this code computed before kinds existed).
            assert_eq!(Limits::LAYOUT.fingerprint(), 0xefce_ed14_016b_6114);
        }

        #[test]
        fn the_fingerprint_covers_kinds_and_enum_variants() {
            // Computed by hand from FORMAT.md's "Fingerprint" rules, kinds included.
            assert_eq!(Flag::LAYOUT.fingerprint(), 0xa7c6_61f2_4ad6_98dc);
            assert_eq!(
                EnumField::<Level>::LAYOUT.fingerprint(),
                0xfb1b_0f70_81ff_4b35
            );
            assert_ne!(
                EnumField::<Level>::LAYOUT.fingerprint(),
                EnumField::<renumbered::Level>::LAYOUT.fingerprint()
            );
            assert_ne!(
                Every::LAYOUT.fingerprint(),
                EveryRenumbered::LAYOUT.fingerprint()
            );
            // Text and a plain struct of the same shape differ too.
            #[derive(crate::ShmType, Clone, Copy)]
            #[repr(C)]
            #[shm(name = "FixedStr")]
            struct LooksLikeText {
                len: [u8; 4],
                bytes: [u8; 4],
            }
            assert_ne!(
                LooksLikeText::LAYOUT.fingerprint(),
                FixedStr::<4>::LAYOUT.fingerprint()
            );
        }

        #[test]
        fn differences_name_the_enum_field_and_its_variants() {
            let mine = Descriptor::of(&Every::LAYOUT);
            let theirs = Descriptor::of(&EveryRenumbered::LAYOUT);
            assert_eq!(
                mine.differences(&theirs),
                ["field `level`: enum Level { Error = 0, Warn = 1, Info = 7 } here, enum Level { \
                  Error = 0, Warn = 1, Debug = 7 } in the region; variants differ: `Info` (7) is \
                  not in the region, `Debug` (7) is only in the region"]
            );
            let mut plain = mine.clone();
            plain.kinds.retain(|k| k.path != "service");
            assert_eq!(
                plain.differences(&mine),
                ["field `service`: plain data here, text (capacity 5 bytes) in the region"]
            );
        }

        /// The descriptor of `Every` with its kinds table rewritten by `edit`, decoded.
        fn forged(edit: impl FnOnce(&mut Descriptor)) -> String {
            let mut d = Descriptor::of(&Every::LAYOUT);
            edit(&mut d);
            Descriptor::decode(&d.encode(), 2).unwrap_err()
        }

        fn entry(d: &mut Descriptor, path: &str) -> usize {
            d.kinds.iter().position(|k| k.path == path).unwrap()
        }

        #[test]
        fn the_reader_refuses_kinds_that_do_not_fit_the_field_table() {
            let cases: Vec<(String, &str)> = vec![
                (
                    forged(|d| {
                        let i = entry(d, "service");
                        d.kinds[i].kind = StoredKind::Text { capacity: 6 };
                    }),
                    "entry for `service` (text (capacity 6 bytes)) has a leaf `service.bytes` of \
                     [u8; 5], not [u8; 6]",
                ),
                (
                    forged(|d| {
                        let i = entry(d, "service");
                        d.kinds[i].path = "nowhere".into();
                    }),
                    "entry for `nowhere` (text (capacity 5 bytes)) has no leaf `nowhere.len`",
                ),
                (
                    forged(|d| {
                        let i = entry(d, "level");
                        d.kinds[i].kind = StoredKind::Enum {
                            name: "Level".into(),
                            variants: vec![("Huge".into(), 256)],
                        };
                    }),
                    "has variant `Huge` = 256, outside u8",
                ),
                (
                    forged(|d| {
                        let i = entry(d, "at");
                        d.kinds[i].kind = StoredKind::Flag;
                    }),
                    "entry for `at` (flag) has no leaf `at.value`",
                ),
                (
                    forged(|d| {
                        let i = entry(d, "ports");
                        d.kinds[i].kind = StoredKind::List { capacity: 4 };
                    }),
                    "has a leaf `ports.items` of [u16; 3], which does not hold 4 items",
                ),
                (
                    forged(|d| {
                        let i = entry(d, "names");
                        d.kinds[i].kind = StoredKind::List { capacity: 3 };
                    }),
                    "has a leaf `names.items[].len` of u8 ×2 (stride 7) ×4 (stride 1), which does \
                     not hold 3 items",
                ),
                (
                    forged(|d| {
                        let i = entry(d, "limit");
                        d.kinds[i].path = "tail".into();
                    }),
                    "has no leaf `tail.present`",
                ),
                (
                    forged(|d| {
                        let k = d.kinds[0].clone();
                        d.kinds.push(k);
                    }),
                    "its kinds table names `at` twice",
                ),
                (
                    forged(|d| d.kinds[0].kind = StoredKind::Text { capacity: 0 }),
                    "has no leaf `at.len`",
                ),
            ];
            for (err, want) in cases {
                assert!(err.contains(want), "{err}\n  does not contain\n{want}");
            }
        }

        #[test]
        fn the_reader_refuses_malformed_kind_entries() {
            let d = Descriptor::of(&Flag::LAYOUT);
            let v1_len = Descriptor {
                kinds: vec![],
                ..d.clone()
            }
            .encode()
            .len();
            let good = d.encode();
            let with_table = |table: &[u8]| {
                let mut bytes = good[..v1_len].to_vec();
                bytes.extend_from_slice(table);
                Descriptor::decode(&bytes, 2).unwrap_err()
            };
            let entry =
                |path: &[u8], code: u32, capacity: u64, name: &str, variants: &[(&[u8], i128)]| {
                    let mut t = 1u32.to_ne_bytes().to_vec();
                    t.extend_from_slice(&(path.len() as u32).to_ne_bytes());
                    t.extend_from_slice(path);
                    t.extend_from_slice(&code.to_ne_bytes());
                    t.extend_from_slice(&capacity.to_ne_bytes());
                    put_str(&mut t, name);
                    t.extend_from_slice(&(variants.len() as u32).to_ne_bytes());
                    for (n, v) in variants {
                        t.extend_from_slice(&(n.len() as u32).to_ne_bytes());
                        t.extend_from_slice(n);
                        t.extend_from_slice(&v.to_le_bytes());
                    }
                    t
                };
            let cases = [
                (with_table(&0u32.to_ne_bytes()), "empty kinds table"),
                (
                    with_table(&u32::MAX.to_ne_bytes()),
                    "claims 4294967295 kinds",
                ),
                (
                    with_table(&entry(b"", 9, 0, "", &[])),
                    "kind code 9, which this build does not know",
                ),
                (with_table(&entry(b"\xff", 2, 0, "", &[])), "not UTF-8"),
                (
                    with_table(&entry(b"", 2, 3, "", &[])),
                    "with a capacity, a name or variants",
                ),
                (
                    with_table(&entry(b"", 1, 1, "x", &[])),
                    "kind code 1 with a name or variants",
                ),
                (
                    with_table(&entry(b"", 5, 0, "E", &[(b"A", 0), (b"A", 1)])),
                    "names variant `A` twice",
                ),
                (
                    with_table(&entry(b"", 5, 0, "Flag", &[(b"A", 0)])),
                    "has no leaf `raw`",
                ),
                (
                    with_table(&entry(b"", 5, 2, "E", &[])),
                    "an enum with capacity 2",
                ),
            ];
            for (err, want) in cases {
                assert!(err.contains(want), "{err}\n  does not contain\n{want}");
            }
            let mut huge = entry(b"", 5, 0, "E", &[]);
            let at = huge.len() - 4;
            huge[at..].copy_from_slice(&u32::MAX.to_ne_bytes());
            let err = with_table(&huge);
            assert!(err.contains("claims 4294967295 variants"), "{err}");
            assert_eq!(Descriptor::decode(&good, 2).unwrap(), d);
        }

        /// The fuzz target's seeds with kinds stay valid version 2 descriptors, so that the
        /// fuzzer starts from inputs that reach the kinds table.
        #[test]
        fn the_fuzz_seeds_with_kinds_decode() {
            let every = include_bytes!("../../../fuzz/corpus/descriptor/seed-kinds-every");
            assert_eq!(
                Descriptor::decode(every, 2).unwrap(),
                Descriptor::of(&Every::LAYOUT)
            );
            let list = include_bytes!("../../../fuzz/corpus/descriptor/seed-kinds-top-level-list");
            assert_eq!(Descriptor::decode(list, 2).unwrap().kinds.len(), 3);
        }
    }
}

#[cfg(test)]
mod hostile {
    use super::*;

    fn field(
        path: &str,
        primitive: Primitive,
        offset: u64,
        dims: &[(u64, u64)],
    ) -> DescriptorField {
        DescriptorField {
            path: path.into(),
            offset,
            primitive: u32::from(primitive.code()),
            dims: dims.to_vec(),
        }
    }

    /// How long decoding `descriptor` takes, bounded: the decoder runs on a thread, and the
    /// test fails (rather than hangs) when it has not finished after `limit`.
    fn decodes_within(descriptor: &Descriptor, limit: std::time::Duration) -> bool {
        let bytes = descriptor.encode();
        assert!(bytes.len() <= super::super::header::MAX_DESCRIPTOR_LEN);
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(Descriptor::decode(&bytes, 2).map(|_| ()));
        });
        finished.recv_timeout(limit).is_ok()
    }

    #[test]
    fn an_enum_with_a_million_distinct_variants_decodes_in_linear_time() {
        // 16 MiB of distinct variant names: a pairwise duplicate check is ~10^11 comparisons.
        let variants = (0..600_000u32).map(|i| (format!("{i:x}"), 0)).collect();
        let descriptor = Descriptor {
            type_name: "E".into(),
            fields: vec![field("raw", Primitive::U8, 0, &[])],
            kinds: vec![KindEntry {
                path: String::new(),
                kind: StoredKind::Enum {
                    name: "E".into(),
                    variants,
                },
            }],
        };
        assert!(decodes_within(
            &descriptor,
            std::time::Duration::from_secs(60)
        ));
    }

    #[test]
    fn the_path_index_finds_what_a_scan_finds() {
        let paths = [
            "a", "a.b", "a[].c", "ab", "a0", "a.b", "b", "a[][]", "", "a.b.c", "a-", "a/",
            "a\u{7f}",
        ];
        let index = PathIndex::new(&paths, |p| p);
        for prefix in ["", "a", "a.b", "a[]", "ab", "b", "c", "a.", "a["] {
            let scanned: Vec<_> = paths.iter().filter(|p| is_under(p, prefix)).collect();
            let deduped: Vec<_> = scanned
                .iter()
                .enumerate()
                .filter(|(i, p)| prefix.is_empty() || !scanned[..*i].contains(p))
                .map(|(_, p)| **p)
                .collect();
            let found: Vec<_> = index.at_or_under(prefix).into_iter().copied().collect();
            assert_eq!(found, deduped, "under `{prefix}`");
        }
        assert_eq!(
            index.get("a.b").map(|p| p as *const _),
            Some(&paths[1] as *const _)
        );
    }

    #[test]
    fn a_quarter_million_kinds_decode_in_linear_time() {
        // Distinct flags, each with its leaf: pairwise path checks are ~10^11 comparisons.
        let count = 200_000u32;
        let descriptor = Descriptor {
            type_name: "T".into(),
            fields: (0..count)
                .map(|i| field(&format!("{i:x}.value"), Primitive::U8, u64::from(i), &[]))
                .collect(),
            kinds: (0..count)
                .map(|i| KindEntry {
                    path: format!("{i:x}"),
                    kind: StoredKind::Flag,
                })
                .collect(),
        };
        assert!(decodes_within(
            &descriptor,
            std::time::Duration::from_secs(60)
        ));
    }
}
