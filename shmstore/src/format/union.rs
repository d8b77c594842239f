//! Migration targets: the stored type a region is migrated to when a writer of a compatible
//! type with fields the region lacks opens it (README, "Changing a region's type"; `FORMAT.md`,
//! "Writing through another type, and migration targets").
//!
//! Pure: a target is computed from the region's descriptor and the writer's layout, never from
//! a region's bytes; a forged stored descriptor makes [`migration`] refuse, never panic.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Bound;

use crate::layout::{Fnv, Primitive, TypeLayout};

use super::compat::{compare, FieldVerdict, Overall};
use super::descriptor::{Descriptor, DescriptorField};
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
    let regions_rows: BTreeSet<&str> = region.fields.iter().map(|f| f.path.as_str()).collect();
    let inside: Vec<String> = added
        .iter()
        .filter_map(|path| {
            let array = &path[..path.find("[]")?];
            has_rows_at_or_under(&regions_rows, array)
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

/// Whether a row lies at `path` or under it (`path.x`, `path[]…`), in `log n` whatever a forged
/// table holds.
fn has_rows_at_or_under(rows: &BTreeSet<&str>, path: &str) -> bool {
    if path.is_empty() {
        return !rows.is_empty();
    }
    rows.contains(path)
        || ['.', '['].into_iter().any(|separator| {
            let prefix = format!("{path}{separator}");
            rows.range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
                .next()
                .is_some_and(|row| row.starts_with(&prefix))
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Writeback;
    use crate::layout::ShmType;
    use crate::value::{EnumField, FixedStr, FixedVec, Flag};

    fn target<R: ShmType, O: ShmType>() -> Result<Option<Migration>, Refusal> {
        migration(
            &Descriptor::of(&R::LAYOUT),
            R::LAYOUT.size(),
            R::LAYOUT.align(),
            &O::LAYOUT,
        )
    }

    fn migrated<R: ShmType, O: ShmType>() -> Migration {
        target::<R, O>().expect("migrates").expect("a migration")
    }

    /// `path verdict` per field of `compare(region, other)`.
    fn verdicts(region: &Descriptor, other: &Descriptor) -> Vec<String> {
        compare(region, other)
            .fields
            .iter()
            .map(|f| format!("{} {}", f.path, f.verdict.name()))
            .collect()
    }

    /// What a migration target promises, checked from the outside: it decodes as itself, the
    /// new type finds every field (none added), the region's type finds its own fields the
    /// same (the rest kept).
    fn holds_both<R: ShmType, O: ShmType>(m: &Migration) {
        let d = &m.target.descriptor;
        assert_eq!(
            Descriptor::decode(&d.encode(), d.format_version()).as_ref(),
            Ok(d)
        );
        let new = verdicts(d, &Descriptor::of(&O::LAYOUT));
        assert!(!new.iter().any(|v| v.ends_with(" added")), "{new:?}");
        assert!(compare(d, &Descriptor::of(&O::LAYOUT)).is_compatible());
        let old = verdicts(d, &Descriptor::of(&R::LAYOUT));
        assert!(
            old.iter()
                .all(|v| v.ends_with(" same") || v.ends_with(" kept")),
            "{old:?}"
        );
        assert!(m.target.size >= R::LAYOUT.size());
        assert_eq!(m.target.size % m.target.align, 0);
    }

    macro_rules! versions {
        ($($name:ident { $($field:ident : $ty:ty),* $(,)? })*) => {$(
            #[derive(crate::ShmType, Clone, Copy)]
            #[repr(C)]
            #[shm(name = "Config")]
            #[allow(dead_code)]
            struct $name { $($field: $ty),* }
        )*};
    }

    versions! {
        Base { a: u32, b: i32 }
        BaseAdded { b: i32, a: u32, c: u64 }
        BaseWidened { a: u64, b: i64 }
        BaseWidenedAdded { a: u64, b: i32, c: u32 }
        BaseDroppedAdded { b: i32, c: u32 }
        BaseText { a: u64, b: i32, t: FixedStr<4>, u: [u8; 4] }
    }

    #[test]
    fn a_type_that_adds_fields_and_keeps_every_other_is_the_target() {
        let m = migrated::<Base, BaseAdded>();
        assert_eq!(m.target, StoredType::of(&BaseAdded::LAYOUT));
        holds_both::<Base, BaseAdded>(&m);
        // The carry moves the region's fields to the new type's offsets; `c` is zero.
        let mut out = BaseAdded {
            b: 0,
            a: 0,
            c: u64::MAX,
        };
        bytemuck::bytes_of_mut(&mut out).fill(0);
        m.carry.apply(
            bytemuck::bytes_of(&Base { a: 7, b: -1 }),
            bytemuck::bytes_of_mut(&mut out),
        );
        assert_eq!((out.a, out.b, out.c), (7, -1, 0));
    }

    #[test]
    fn nothing_added_needs_no_migration() {
        assert_eq!(target::<Base, Base>(), Ok(None));
        assert_eq!(target::<BaseAdded, Base>(), Ok(None), "only kept fields");
        assert_eq!(target::<Base, BaseWidened>(), Ok(None), "only widened");
    }

    #[test]
    fn a_type_that_widens_and_adds_gets_the_region_layout_with_its_fields_appended() {
        let region = Descriptor::of(&Base::LAYOUT);
        let m = migrated::<Base, BaseWidenedAdded>();
        holds_both::<Base, BaseWidenedAdded>(&m);
        let d = &m.target.descriptor;
        assert_eq!(d.fields[..2], region.fields[..], "every field where it was");
        assert_eq!(
            (d.fields[2].path.as_str(), d.fields[2].offset),
            ("c", 8),
            "appended after the end"
        );
        assert_eq!((m.target.size, m.target.align), (12, 4));
        assert_eq!(
            verdicts(d, &Descriptor::of(&BaseWidenedAdded::LAYOUT)),
            ["a widened", "b same", "c same"]
        );
        assert_ne!(m.target.fingerprint, Base::LAYOUT.fingerprint());
        assert_ne!(m.target.fingerprint, BaseWidenedAdded::LAYOUT.fingerprint());
        assert_eq!(migrated::<Base, BaseWidenedAdded>(), m, "deterministic");
        // The carry is the identity on the old bytes.
        let old = Base { a: 7, b: -1 };
        let mut new = vec![0xffu8; m.target.size];
        m.carry.apply(bytemuck::bytes_of(&old), &mut new);
        assert_eq!(&new[..8], bytemuck::bytes_of(&old));
        assert_eq!(m.carry.steps.len(), 1);
        // Both versions then read and write it: the new one through a write-back (`a` in
        // the region's range), the old one through its own.
        let new_type = Descriptor::of(&BaseWidenedAdded::LAYOUT);
        let mut target = vec![0u8; m.target.size];
        m.carry.apply(bytemuck::bytes_of(&old), &mut target);
        let writer = Writeback::plan(d, m.target.size, &new_type, 16).expect("no field added");
        writer
            .apply(
                bytemuck::bytes_of(&BaseWidenedAdded { a: 9, b: -1, c: 5 }),
                &mut target,
            )
            .unwrap();
        let reader = Projection::plan(d, m.target.size, &region, 8).unwrap();
        let mut seen = Base { a: 0, b: 0 };
        reader.apply(&target, bytemuck::bytes_of_mut(&mut seen));
        assert_eq!((seen.a, seen.b), (9, -1));
        let old_writer = Writeback::plan(d, m.target.size, &region, 8).unwrap();
        old_writer
            .apply(bytemuck::bytes_of(&Base { a: 1, b: 2 }), &mut target)
            .unwrap();
        let mut back = BaseWidenedAdded { a: 0, b: 0, c: 0 };
        Projection::plan(d, m.target.size, &new_type, 16)
            .unwrap()
            .apply(&target, bytemuck::bytes_of_mut(&mut back));
        assert_eq!(
            (back.a, back.b, back.c),
            (1, 2, 5),
            "the old writer keeps `c`"
        );
    }

    #[test]
    fn a_type_that_drops_a_field_and_adds_one_keeps_the_dropped_one() {
        let m = migrated::<Base, BaseDroppedAdded>();
        holds_both::<Base, BaseDroppedAdded>(&m);
        let d = &m.target.descriptor;
        let fields: Vec<(&str, u64)> = d
            .fields
            .iter()
            .map(|f| (f.path.as_str(), f.offset))
            .collect();
        assert_eq!(fields, [("a", 0), ("b", 4), ("c", 8)]);
        assert_eq!(
            verdicts(d, &Descriptor::of(&BaseDroppedAdded::LAYOUT)),
            ["a kept", "b same", "c same"]
        );
    }

    #[derive(crate::ShmType, Clone, Copy)]
    #[repr(C)]
    struct Wheel {
        pressure: f32,
        rpm: i32,
    }

    #[derive(crate::ShmType, Clone, Copy)]
    #[repr(C)]
    #[shm(name = "Wheel")]
    struct WheelT {
        pressure: f32,
        rpm: i32,
        temperature: f32,
    }

    versions! {
        Robot { id: u32, gone: u32, wheels: [Wheel; 2], peers: FixedVec<Wheel, 2> }
        RobotTemperature { id: u32, gone: u32, wheels: [WheelT; 2], peers: FixedVec<Wheel, 2> }
        RobotDroppedTemperature { id: u32, wheels: [WheelT; 2], peers: FixedVec<Wheel, 2> }
        RobotDroppedPeerTemperature { id: u32, wheels: [Wheel; 2], peers: FixedVec<WheelT, 2> }
    }

    #[test]
    fn a_field_added_inside_an_existing_array_or_list_is_refused_when_appending() {
        // Every other field the same: the new type is the target, its arrays laid out anew.
        let m = migrated::<Robot, RobotTemperature>();
        assert_eq!(m.target, StoredType::of(&RobotTemperature::LAYOUT));
        // With a field dropped the layout is kept, and the items cannot grow.
        for (refusal, path, inside) in [
            (
                target::<Robot, RobotDroppedTemperature>(),
                "`wheels[].temperature`",
                "inside `wheels`",
            ),
            (
                target::<Robot, RobotDroppedPeerTemperature>(),
                "`peers.items[].temperature`",
                "inside `peers.items`",
            ),
        ] {
            let Err(Refusal::Incompatible(why)) = refusal else {
                panic!("{refusal:?}")
            };
            assert!(why.contains(path), "{why}");
            assert!(why.contains(inside), "{why}");
            assert!(why.contains("add a new top-level field"), "{why}");
        }
    }

    #[test]
    fn rows_under_a_path_are_found_by_whole_names_only() {
        let rows: BTreeSet<&str> = ["wheels2.x", "id", "peers.items[].rpm", "w[].a"]
            .into_iter()
            .collect();
        for (path, found) in [
            ("wheels", false),
            ("wheels2", true),
            ("peers", true),
            ("peers.items", true),
            ("peers.item", false),
            ("w", true),
            ("i", false),
            ("id", true),
            ("", true),
        ] {
            assert_eq!(has_rows_at_or_under(&rows, path), found, "{path}");
        }
        assert!(!has_rows_at_or_under(&BTreeSet::new(), ""));
    }

    #[derive(crate::ShmEnum, Clone, Copy, Debug, PartialEq)]
    #[repr(u8)]
    enum Level {
        Error,
        Warn,
    }

    #[derive(crate::ShmType, Clone, Copy)]
    #[repr(C)]
    struct Spot {
        label: FixedStr<3>,
        up: Flag,
    }

    versions! {
        Named { id: u32, name: FixedStr<8> }
        NamedMore {
            id: u64,
            ports: FixedVec<u16, 3>,
            name: FixedStr<8>,
            tag: FixedStr<5>,
            level: EnumField<Level>,
            on: Flag,
            spots: [Spot; 2],
            extra: u8,
        }
    }

    #[test]
    fn added_values_with_kinds_carry_their_kinds_table_entries() {
        let m = migrated::<Named, NamedMore>();
        holds_both::<Named, NamedMore>(&m);
        let d = &m.target.descriptor;
        assert_eq!(d.format_version(), 2);
        let kinds: Vec<String> = d
            .kinds
            .iter()
            .map(|k| format!("{} {}", k.path, k.kind.describe()))
            .collect();
        assert_eq!(
            kinds,
            [
                "name text (capacity 8 bytes)",
                "ports list (capacity 3)",
                "tag text (capacity 5 bytes)",
                "level enum Level { Error = 0, Warn = 1 }",
                "on flag",
                "spots[].label text (capacity 3 bytes)",
                "spots[].up flag",
            ]
        );
        // The array of structs moved as one block: its rows keep their strides and relative
        // offsets, so each text's bytes still follow its length.
        let row = |path: &str| d.fields.iter().find(|f| f.path == path).unwrap();
        assert_eq!(
            row("spots[].label.bytes").offset,
            row("spots[].label.len").offset + 4
        );
        assert_eq!(
            row("spots[].up.value").offset,
            row("spots[].label.len").offset + 7
        );
        assert_eq!(row("spots[].up.value").dims, [(2, 8)]);
        assert_eq!(row("tag.bytes").offset, row("tag.len").offset + 4);
        assert_eq!(row("ports.items").offset % 2, 0, "natural alignment");
        for field in &d.fields[Descriptor::of(&Named::LAYOUT).fields.len()..] {
            assert!(field.offset >= Named::LAYOUT.size() as u64, "{field:?}");
        }
        // A region without kinds (format version 1) whose new type adds a text.
        let m = migrated::<Base, BaseText>();
        holds_both::<Base, BaseText>(&m);
        assert_eq!(m.target.descriptor.format_version(), 2);
        assert_eq!(Descriptor::of(&Base::LAYOUT).format_version(), 1);
    }

    #[test]
    fn a_region_table_that_leaves_its_value_is_refused_as_forged() {
        let region = Descriptor::of(&Base::LAYOUT);
        let refusal = migration(&region, 6, 4, &BaseWidenedAdded::LAYOUT);
        assert!(matches!(refusal, Err(Refusal::Forged(_))), "{refusal:?}");
        let refusal = migration(&region, 8, 4, &Named::LAYOUT);
        assert!(
            matches!(refusal, Err(Refusal::Incompatible(_))),
            "{refusal:?}"
        );
    }

    mod properties {
        use super::*;
        use crate::format::compat::tests::properties::descriptor;
        use crate::format::writeback::tests::properties::mutated;
        use proptest::prelude::*;

        proptest! {
            /// Forged versions of real region descriptors (with forged sizes and alignments)
            /// migrate or are refused without panicking; a migration's carry applies, and its
            /// target decodes as itself and holds its fields within its size.
            #[test]
            fn mutated_regions_never_panic(
                region in mutated(vec![
                    Descriptor::of(&Base::LAYOUT),
                    Descriptor::of(&Named::LAYOUT),
                    Descriptor::of(&Robot::LAYOUT),
                ]),
                size in 0usize..80,
                align in 0usize..17,
                fill in any::<u8>(),
            ) {
                for layout in [
                    &NamedMore::LAYOUT,
                    &BaseWidenedAdded::LAYOUT,
                    &BaseDroppedAdded::LAYOUT,
                    &RobotTemperature::LAYOUT,
                    &RobotDroppedTemperature::LAYOUT,
                ] {
                    if let Ok(Some(m)) = migration(&region, size, align, layout) {
                        let mut out = vec![0u8; m.target.size];
                        m.carry.apply(&vec![fill; size], &mut out);
                        let d = &m.target.descriptor;
                        let decoded = Descriptor::decode(&d.encode(), d.format_version());
                        prop_assert_eq!(decoded.as_ref(), Ok(d));
                        for field in &d.fields {
                            prop_assert!(extent(field).is_some_and(|end| end <= m.target.size as u128));
                        }
                    }
                }
            }

            /// Forged region descriptors, sizes and alignments migrate or are refused without
            /// panicking; a migration's carry applies, and its target holds both types.
            #[test]
            fn forged_regions_never_panic(
                region in descriptor(),
                size in 0usize..128,
                align in 0usize..17,
                fill in any::<u8>(),
            ) {
                for layout in [&NamedMore::LAYOUT, &BaseWidenedAdded::LAYOUT, &RobotTemperature::LAYOUT] {
                    if let Ok(Some(m)) = migration(&region, size, align, layout) {
                        let mut out = vec![0u8; m.target.size];
                        m.carry.apply(&vec![fill; size], &mut out);
                        let d = &m.target.descriptor;
                        let decoded = Descriptor::decode(&d.encode(), d.format_version());
                        prop_assert_eq!(decoded.as_ref(), Ok(d));
                    }
                }
            }
        }
    }
}
