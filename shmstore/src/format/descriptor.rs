//! The type descriptor codec: the stored type's name and flattened field table
//! (`FORMAT.md`, "Type descriptor"), encoded from a [`TypeLayout`], decoded from a region's
//! bytes (any bytes: a peer may have written them), and compared to explain a layout mismatch.

use crate::atomic_copy::copy_atomic;
use crate::error::{Error, Result};
use crate::layout::{Primitive, TypeLayout};

use super::header::{HeaderInfo, SharedBytes, HEADER_SIZE};

/// A decoded type descriptor: the stored type's name and flattened field table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Descriptor {
    pub(crate) type_name: String,
    pub(crate) fields: Vec<DescriptorField>,
}

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
        }
    }

    /// The byte encoding stored after the header (see `FORMAT.md`): `u32` name length, name,
    /// `u32` field count, then per field `u32` path length, path, `u32` primitive code,
    /// `u64` offset, `u32` dimension count, and per dimension `u64` count and `u64` stride.
    /// Native endianness, no padding.
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
        out
    }

    /// Decodes [`encode`](Self::encode)'s format, refusing anything truncated, oversized,
    /// non-UTF-8 or followed by trailing bytes.
    pub(crate) fn decode(bytes: &[u8]) -> std::result::Result<Descriptor, String> {
        let mut r = Reader { bytes, at: 0 };
        let type_name = r.str()?;
        let count = r.u32()? as usize;
        // Each field takes at least MIN_ROW_BYTES, so a huge count cannot make us allocate.
        if count > r.remaining() / MIN_ROW_BYTES {
            return Err(format!(
                "its descriptor claims {count} fields, more than it holds"
            ));
        }
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
        if r.remaining() != 0 {
            return Err(format!(
                "its descriptor has {} unexpected trailing bytes",
                r.remaining()
            ));
        }
        Ok(Descriptor { type_name, fields })
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
    let matches = info.fingerprint == layout.fingerprint()
        && info.type_size() == layout.size()
        && info.layout.payload_align == layout.align();
    if matches {
        return Ok(());
    }
    let stored =
        Descriptor::decode(&descriptor_bytes()).map_err(|why| Error::corrupt(name, why))?;
    let mine = Descriptor::of(layout);
    let mut differences = mine.differences(&stored);
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
        };
        let bytes = d.encode();
        assert_eq!(Descriptor::decode(&bytes).unwrap(), d);
        for cut in 0..bytes.len() {
            assert!(Descriptor::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Descriptor::decode(&longer).is_err());
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
        };
        assert_eq!(Descriptor::decode(&d.encode()).unwrap(), d);
        d.fields[0].dims = vec![(1, 1); MAX_DIMS + 1];
        let err = Descriptor::decode(&d.encode()).unwrap_err();
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
}
