//! Migration targets: the stored type a region is migrated to when a writer of a compatible
//! type with fields the region lacks opens it (README, "Changing a region's type"; `FORMAT.md`,
//! "Writing through another type, and migration targets").
//!
//! Pure: a target is computed from the region's descriptor and the writer's layout, never from
//! a region's bytes; a forged stored descriptor makes [`migration`] refuse, never panic.

use std::collections::{HashMap, HashSet};

use crate::layout::{Fnv, Primitive, TypeLayout};

use super::compat::{compare, FieldVerdict, Overall};
use super::descriptor::{Descriptor, DescriptorField, PathIndex};
use super::projection::{Conversion, Projection, Refusal, Step};

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

impl StoredType {
    /// The stored type of a Rust type: its descriptor, size, alignment and fingerprint, as a
    /// region created for it stores them (so that `check_type` finds it identical).
    pub(crate) fn of(layout: &TypeLayout) -> StoredType {
        StoredType {
            descriptor: Descriptor::of(layout),
            size: layout.size(),
            align: layout.align(),
            fingerprint: layout.fingerprint(),
        }
    }

    /// The fingerprint of a synthesized type: FNV-1a as the derive's, over a tag no derived
    /// layout hashes first (those start with `primitive`, `array`, `struct` or another
    /// fingerprint), then the encoded descriptor, the size and the alignment.
    fn synthesized(descriptor: Descriptor, size: usize, align: usize) -> StoredType {
        let encoded = descriptor.encode();
        let fingerprint = Fnv::new()
            .str("shmstore migration target")
            .usize(encoded.len())
            .bytes(&encoded)
            .usize(size)
            .usize(align)
            .finish();
        StoredType {
            descriptor,
            size,
            align,
            fingerprint,
        }
    }
}

/// Where a region migrates: the stored type of the new region, and how the old value is carried
/// into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Migration {
    /// The new region's stored type.
    pub(crate) target: StoredType,
    /// The region's value (of the old stored type) -> the target's value: every field of the
    /// region copied; the target's added fields zero.
    pub(crate) carry: Projection,
}

/// Where a region of stored type `region` (values of `region_size` bytes, aligned to
/// `region_align`) migrates so that a writer of `other` can write every field it has:
///
/// - `None` when `other` adds no field (it writes through a `Writeback` as is);
/// - `other`'s exact type when it keeps every field of the region with the same type (none
///   kept, none widened) and adds some: binaries of `other` then take the direct path;
/// - otherwise the region's layout unchanged (every field at its offset with its type: the
///   binaries of the region's type still open it) with `other`'s added fields appended after
///   its end, each at its natural alignment; an added field inside an array or list the region
///   already has cannot be appended, and is refused.
///
/// `Err`: the types are incompatible or share no field, or an added field cannot be appended
/// ([`Refusal::Incompatible`], saying why and what to do); the region's rows leave its value or
/// the target would not decode ([`Refusal::Forged`]).
// Called by the region migration, which the lead wires next.
#[allow(dead_code)]
pub(crate) fn migration(
    region: &Descriptor,
    region_size: usize,
    region_align: usize,
    other: &TypeLayout,
) -> Result<Option<Migration>, Refusal> {
    let mine = Descriptor::of(other);
    let verdict = compare(region, &mine);
    if verdict.overall == Overall::Incompatible {
        return Err(Refusal::Incompatible("the layouts are incompatible".into()));
    }
    if !verdict.shares_a_field() {
        return Err(Refusal::Incompatible(
            "the two types have no field in common".into(),
        ));
    }
    let added: Vec<&str> = verdict
        .fields
        .iter()
        .filter(|f| f.verdict == FieldVerdict::Added)
        .map(|f| f.path.as_str())
        .collect();
    if added.is_empty() {
        return Ok(None);
    }
    let holds_every_field_as_is = verdict
        .fields
        .iter()
        .all(|f| matches!(f.verdict, FieldVerdict::Same | FieldVerdict::Added));
    let (target, carry) = if holds_every_field_as_is {
        let target = StoredType::of(other);
        let carry = Projection::plan(region, region_size, &target.descriptor, target.size)?;
        (target, carry)
    } else {
        let target = appended(region, region_size, region_align, &mine, &added)?;
        // The old value's bytes, every one of them, at the same offsets.
        let steps = (region_size > 0)
            .then_some(Step {
                src: 0,
                dst: 0,
                count: 1,
                src_stride: 0,
                dst_stride: 0,
                conversion: Conversion::Copy { len: region_size },
            })
            .into_iter()
            .collect();
        let carry = Projection {
            src_size: region_size,
            dst_size: target.size,
            steps,
        };
        (target, carry)
    };
    serves_both(region, &target, &mine)?;
    Ok(Some(Migration { target, carry }))
}

/// The region's layout with `other`'s added rows (and their kinds) appended.
fn appended(
    region: &Descriptor,
    region_size: usize,
    region_align: usize,
    other: &Descriptor,
    added: &[&str],
) -> Result<StoredType, Refusal> {
    // An added field under `LIST.items[]` or `ARRAY[]` of the region would have to repeat in
    // each item: the items cannot grow where they are, and appending it elsewhere breaks the
    // stride the readers walk.
    let regions_rows = PathIndex::new(&region.fields, |f| f.path.as_str());
    let inside: Vec<String> = added
        .iter()
        .filter_map(|path| {
            let array = &path[..path.find("[]")?];
            (!regions_rows.at_or_under(array).is_empty())
                .then(|| format!("`{path}` (inside `{array}`)"))
        })
        .collect();
    if !inside.is_empty() {
        return Err(Refusal::Incompatible(format!(
            "{} {} new inside an array or list the region already has, while other fields of \
             the region are kept or widened, so the region keeps its layout and the new fields \
             are appended after it: a field inside existing items cannot be appended; add a \
             new top-level field (such as a separate array) instead",
            inside.join(", "),
            if inside.len() == 1 { "is" } else { "are" }
        )));
    }
    let forged = |why: String| Refusal::Forged(why);
    for field in &region.fields {
        let end = extent(field)
            .ok_or_else(|| forged(format!("field `{}` lies outside the value", field.path)))?;
        if end > region_size as u128 {
            return Err(forged(format!(
                "field `{}` lies outside the value",
                field.path
            )));
        }
    }
    // The added rows, grouped into units that move together: an array of structs (all the
    // rows under `ARRAY[]`, which keep their strides and relative offsets) or one row (a text's
    // `len` and `bytes` are two rows of bytes appended one after the other, so they stay
    // adjacent).
    let had: HashSet<&str> = region.fields.iter().map(|f| f.path.as_str()).collect();
    let mut units: Vec<Vec<&DescriptorField>> = Vec::new();
    let mut unit_of: HashMap<&str, usize> = HashMap::new();
    for field in other
        .fields
        .iter()
        .filter(|f| !had.contains(f.path.as_str()))
    {
        let key = field
            .path
            .find("[]")
            .map_or(field.path.as_str(), |at| &field.path[..at]);
        let index = *unit_of.entry(key).or_insert_with(|| {
            units.push(Vec::new());
            units.len() - 1
        });
        units[index].push(field);
    }
    let too_large = || forged("the migrated value would be too large".into());
    let mut end = region_size as u128;
    let mut align = region_align.max(1) as u128;
    let mut fields = region.fields.clone();
    for unit in &units {
        let unit_align = unit
            .iter()
            .filter_map(|f| {
                u8::try_from(f.primitive)
                    .ok()
                    .and_then(Primitive::from_code)
            })
            .map(|p| p.size() as u128)
            .max()
            .unwrap_or(1);
        let start = unit.iter().map(|f| u128::from(f.offset)).min().unwrap_or(0);
        let unit_end = unit
            .iter()
            .map(|f| extent(f))
            .try_fold(start, |m, e| Some(m.max(e?)))
            .ok_or_else(too_large)?;
        let at = align_up(end, unit_align);
        for field in unit {
            let offset =
                u64::try_from(u128::from(field.offset) - start + at).map_err(|_| too_large())?;
            fields.push(DescriptorField {
                offset,
                ..(*field).clone()
            });
        }
        end = at + (unit_end - start);
        align = align.max(unit_align);
    }
    let size = usize::try_from(align_up(end, align)).map_err(|_| too_large())?;
    let align = usize::try_from(align).map_err(|_| too_large())?;
    let region_kinds: HashSet<&str> = region.kinds.iter().map(|k| k.path.as_str()).collect();
    let mut kinds = region.kinds.clone();
    kinds.extend(
        other
            .kinds
            .iter()
            .filter(|k| !region_kinds.contains(k.path.as_str()))
            .cloned(),
    );
    let descriptor = Descriptor {
        type_name: region.type_name.clone(),
        fields,
        kinds,
    };
    Ok(StoredType::synthesized(descriptor, size, align))
}

/// The first byte past a row's last element (`None` past `u128`, which no row reaches).
fn extent(field: &DescriptorField) -> Option<u128> {
    let len = u8::try_from(field.primitive)
        .ok()
        .and_then(Primitive::from_code)
        .map_or(1, |p| p.size() as u128);
    let mut last = u128::from(field.offset);
    for &(count, stride) in &field.dims {
        if count == 0 {
            return Some(u128::from(field.offset));
        }
        last = last.checked_add(u128::from(count - 1).checked_mul(u128::from(stride))?)?;
    }
    last.checked_add(len)
}

fn align_up(at: u128, align: u128) -> u128 {
    at.div_ceil(align.max(1)) * align.max(1)
}

/// Checks what the target promises: it decodes as a region stores it; `other` finds every one
/// of its fields in it (it writes through without another migration); the region's own type
/// finds every field of the region the same (its binaries read and write it as before).
fn serves_both(
    region: &Descriptor,
    target: &StoredType,
    other: &Descriptor,
) -> Result<(), Refusal> {
    let descriptor = &target.descriptor;
    let decoded =
        Descriptor::decode(&descriptor.encode(), descriptor.format_version()).map_err(|why| {
            Refusal::Forged(format!("the migrated descriptor would not decode: {why}"))
        })?;
    if &decoded != descriptor {
        return Err(Refusal::Forged(
            "the migrated descriptor would not decode as itself".into(),
        ));
    }
    let for_other = compare(descriptor, other);
    if !for_other.is_compatible()
        || for_other
            .fields
            .iter()
            .any(|f| f.verdict == FieldVerdict::Added)
    {
        return Err(Refusal::Incompatible(
            "the migrated layout would not hold every field of the new type".into(),
        ));
    }
    let for_region = compare(descriptor, region);
    if !for_region
        .fields
        .iter()
        .all(|f| matches!(f.verdict, FieldVerdict::Same | FieldVerdict::Kept))
    {
        return Err(Refusal::Incompatible(
            "the migrated layout would not keep every field of the region's type".into(),
        ));
    }
    Ok(())
}
