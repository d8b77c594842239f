//! A write-back: how to write a value of a compatible type *O* back into a region whose stored
//! type is *R*, the other half of a [`Projection`] (`FORMAT.md`, "Writing through another type,
//! and migration targets"; README, "Changing a region's type"). A handle of *O* whose guard
//! derefs to a projected *O* commits through it: only the fields *O* shares with the region are
//! written, each narrowed back to the region's type where *O*'s is wider, and only when every
//! one of them fits.
//!
//! Pure data and a pure function over byte slices, like [`Projection`]: no region, no
//! `unsafe`. A forged stored descriptor makes [`Writeback::plan`] refuse, never panic; and
//! [`Writeback::apply`] never panics or touches a byte outside its two slices.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::layout::Primitive;

use super::compat::{compare, paired_leaves, FieldVerdict, Overall};
use super::descriptor::{integer_range, outer_dims, Descriptor, DescriptorField, StoredKind};
use super::projection::{
    merged, read_integer, runs, write_integer, Conversion, Projection, Refusal, Side, Step,
};

/// Why a value of the other type cannot be written into the region: the first element that
/// does not fit the region's narrower field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unfit {
    /// The element's path, with its indices (`timeout_ms`, `wheels[2].pressure`,
    /// `ports.items[5]`, `name` for a text's length); empty when the slices given to
    /// [`Writeback::apply`] are not of the planned sizes.
    pub(crate) path: String,
    /// What does not fit: `70000 does not fit the region's u16 (the region keeps the narrower
    /// type, …)`.
    pub(crate) reason: String,
}

/// Why a widened value must fit the narrower one, appended to every [`Unfit`] reason.
const NARROWER_SHARES: &str =
    "(the region keeps the narrower type, so that binaries of it can open it)";

/// How one element of the other type's value is narrowed into the region's, checked first.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Narrowing {
    /// An integer into a narrower (or differently signed) one: only a value in its range.
    Integer {
        /// The other type's primitive.
        from: Primitive,
        /// The region's.
        to: Primitive,
    },
    /// `f64` into `f32`: only a value `f32` holds exactly (or a NaN).
    F64ToF32,
    /// A text's length (`[u8; 4]`, a native `u32`) into a text of a smaller capacity: only a
    /// length up to it. The bytes follow as a copy of the region's capacity.
    TextLength { capacity: u64 },
    /// A list's length header into a list of a smaller capacity (or a narrower header, for
    /// items that narrow): only a length up to the capacity, stored in the region's header
    /// width (`FORMAT.md`, "Field kinds").
    ListLength {
        /// The other type's header, in bytes.
        from_width: usize,
        /// The region's.
        to_width: usize,
        capacity: u64,
    },
    /// An enum's raw integer into an enum with fewer variants or a narrower `repr`: only one
    /// of the region's variants, by value, or the value the region holds now (written back
    /// unchanged, so nothing is lost).
    Enum {
        from: Primitive,
        to: Primitive,
        /// Its entry in [`Writeback::enums`].
        table: usize,
    },
}

impl Narrowing {
    fn source_len(&self) -> usize {
        match self {
            Narrowing::Integer { from, .. } | Narrowing::Enum { from, .. } => from.size(),
            Narrowing::F64ToF32 => 8,
            Narrowing::TextLength { .. } => 4,
            Narrowing::ListLength { from_width, .. } => *from_width,
        }
    }

    fn target_len(&self) -> usize {
        match self {
            Narrowing::Integer { to, .. } | Narrowing::Enum { to, .. } => to.size(),
            Narrowing::F64ToF32 => 4,
            Narrowing::TextLength { .. } => 4,
            Narrowing::ListLength { to_width, .. } => *to_width,
        }
    }
}

/// `count` elements narrowed from `src + i * src_stride` of the other type's value into
/// `dst + i * dst_stride` of the region's.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Checked {
    src: usize,
    dst: usize,
    count: usize,
    src_stride: usize,
    dst_stride: usize,
    narrowing: Narrowing,
    /// The path it names, as an entry of [`Writeback::paths`] (with `[]` for each outer
    /// dimension).
    path: usize,
    /// The indices of its outer dimensions.
    outer: Vec<usize>,
    /// Whether its elements are indexed (it walks a dimension of its own): `ports.items[3]`.
    indexed: bool,
}

/// An enum of the region whose raw values are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RegionEnum {
    /// The region's variant values, sorted.
    values: Vec<i128>,
    /// The region's enum, as a message names it.
    region: String,
    /// The other type's variants, to name a value that does not fit.
    other: Vec<(String, i128)>,
}

/// The plan that writes a value of a compatible type *O* (`other_size` bytes) back into a
/// region's value of type *R* (`region_size` bytes): the leaves whose primitive is the same on
/// both sides are copied (a [`Projection`] from *O* to *R*), the widened ones narrowed, checked.
/// Fields only the region has (kept) are never written, nor any byte outside the paired leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Writeback {
    other_size: usize,
    region_size: usize,
    copies: Projection,
    checked: Vec<Checked>,
    paths: Vec<String>,
    enums: Vec<RegionEnum>,
}

impl Writeback {
    /// The plan from `other` (the opener's descriptor, values of `other_size` bytes) back into
    /// `region` (the stored descriptor, `region_size` bytes). `Err` says why a value of `other`
    /// cannot be written through: the types are incompatible or share no field
    /// ([`Refusal::Incompatible`]); `other` has fields the region lacks (also
    /// `Incompatible`: the region must first be migrated to a layout that holds them, or
    /// their values would be lost); or a stored row leaves the value ([`Refusal::Forged`]).
    pub(crate) fn plan(
        region: &Descriptor,
        region_size: usize,
        other: &Descriptor,
        other_size: usize,
    ) -> Result<Writeback, Refusal> {
        let verdict = compare(region, other);
        if verdict.overall == Overall::Incompatible {
            return Err(Refusal::Incompatible("the layouts are incompatible".into()));
        }
        if !verdict.shares_a_field() {
            return Err(Refusal::Incompatible(
                "the two types have no field in common".into(),
            ));
        }
        let added: Vec<String> = verdict
            .fields
            .iter()
            .filter(|f| f.verdict == FieldVerdict::Added)
            .map(|f| format!("`{}`", f.path))
            .collect();
        if !added.is_empty() {
            return Err(Refusal::Incompatible(format!(
                "{} {} not in the region: writing through this type would lose {}; the region \
                 must first be migrated to a layout that holds {}",
                added.join(", "),
                if added.len() == 1 { "is" } else { "are" },
                if added.len() == 1 {
                    "its value"
                } else {
                    "their values"
                },
                if added.len() == 1 { "it" } else { "them" },
            )));
        }
        let mut plan = Planner {
            region_kinds: kinds_by_path(region),
            other_kinds: kinds_by_path(other),
            region_size,
            other_size,
            copies: Vec::new(),
            checked: Vec::new(),
            paths: Vec::new(),
            enums: Vec::new(),
        };
        for (theirs, mine) in paired_leaves(region, other) {
            plan.leaf(theirs, mine).map_err(Refusal::Forged)?;
        }
        Ok(Writeback {
            other_size,
            region_size,
            copies: Projection {
                src_size: other_size,
                dst_size: region_size,
                steps: merged(plan.copies),
            },
            checked: plan.checked,
            paths: plan.paths,
            enums: plan.enums,
        })
    }

    /// Writes `src` (a value of the other type) into `dst` (the region's value bytes, which
    /// hold the committed value), all or nothing: every narrowed element is checked first,
    /// and only when all fit are the shared fields written. `Err` names the first element
    /// that does not fit; `dst` is then untouched. Slices of other sizes than planned are
    /// refused the same way (an `Unfit` with an empty path), never written.
    pub(crate) fn apply(&self, src: &[u8], dst: &mut [u8]) -> Result<(), Unfit> {
        if src.len() != self.other_size || dst.len() != self.region_size {
            return Err(Unfit {
                path: String::new(),
                reason: format!(
                    "a value of {} bytes into one of {}, where {} and {} were planned",
                    src.len(),
                    dst.len(),
                    self.other_size,
                    self.region_size
                ),
            });
        }
        for step in &self.checked {
            for i in 0..step.count {
                let Some((from, to)) = element(step, i, src, dst) else {
                    continue;
                };
                self.check(&step.narrowing, from, to)
                    .map_err(|reason| Unfit {
                        path: self.element_path(step, i),
                        reason,
                    })?;
            }
        }
        self.copies.apply(src, dst);
        for step in &self.checked {
            let (from_len, to_len) = (step.narrowing.source_len(), step.narrowing.target_len());
            for i in 0..step.count {
                let s = step.src + i * step.src_stride;
                let d = step.dst + i * step.dst_stride;
                // Checked when planned; `get` keeps a mistake a no-op rather than a panic.
                let (Some(from), Some(to)) = (src.get(s..s + from_len), dst.get_mut(d..d + to_len))
                else {
                    continue;
                };
                narrow(&step.narrowing, from, to);
            }
        }
        Ok(())
    }

    /// Whether `from` (an element of the other type's value) fits the region's element, whose
    /// committed bytes are `now`: `Err` says why not.
    fn check(&self, narrowing: &Narrowing, from: &[u8], now: &[u8]) -> Result<(), String> {
        match *narrowing {
            Narrowing::Integer { from: f, to } => {
                let value = integer(f, from);
                if fits_integer(value, to) {
                    Ok(())
                } else {
                    Err(format!(
                        "{} does not fit the region's {} {NARROWER_SHARES}",
                        show(value),
                        to.name()
                    ))
                }
            }
            Narrowing::F64ToF32 => {
                let value = f64::from_ne_bytes(from.try_into().unwrap_or([0; 8]));
                if value.is_nan() || f64::from(value as f32) == value {
                    Ok(())
                } else {
                    Err(format!(
                        "{value} is not exactly an f32, the region's type {NARROWER_SHARES}"
                    ))
                }
            }
            Narrowing::TextLength { capacity } => {
                let len = u32::from_ne_bytes(from.try_into().unwrap_or([0; 4]));
                if u64::from(len) <= capacity {
                    Ok(())
                } else {
                    Err(format!(
                        "a text of {len} bytes does not fit the region's capacity of {capacity} \
                         bytes {NARROWER_SHARES}"
                    ))
                }
            }
            Narrowing::ListLength {
                to_width, capacity, ..
            } => {
                let len = read_count(from);
                if len <= capacity && len <= max_count(to_width) {
                    Ok(())
                } else {
                    Err(format!(
                        "{len} items do not fit the region's capacity of {capacity} \
                         {NARROWER_SHARES}"
                    ))
                }
            }
            Narrowing::Enum { from: f, to, table } => {
                let value = integer(f, from);
                let Some(known) = self.enums.get(table) else {
                    return Ok(());
                };
                let unchanged = value == integer(to, now);
                let a_variant = matches!(value, Ok(v) if known.values.binary_search(&v).is_ok());
                if (unchanged || a_variant) && fits_integer(value, to) {
                    return Ok(());
                }
                let name = match value {
                    Ok(v) => known
                        .other
                        .iter()
                        .find(|(_, value)| *value == v)
                        .map(|(name, _)| format!(" (`{name}`)"))
                        .unwrap_or_default(),
                    Err(_) => String::new(),
                };
                Err(format!(
                    "{}{name} is not a variant of the region's {} {NARROWER_SHARES}",
                    show(value),
                    known.region
                ))
            }
        }
    }

    /// `wheels[2].pressure`: the step's path with the element's indices.
    fn element_path(&self, step: &Checked, i: usize) -> String {
        let template = self.paths.get(step.path).map_or("", String::as_str);
        let mut indices = step.outer.clone();
        if step.indexed {
            indices.push(i);
        }
        let mut out = String::with_capacity(template.len() + 4 * indices.len());
        let mut rest = template;
        let mut indices = indices.into_iter();
        while let Some(at) = rest.find("[]") {
            out.push_str(&rest[..at]);
            match indices.next() {
                Some(index) => {
                    let _ = write!(out, "[{index}]");
                }
                None => out.push_str("[]"),
            }
            rest = &rest[at + 2..];
        }
        out.push_str(rest);
        for index in indices {
            let _ = write!(out, "[{index}]");
        }
        out
    }
}

/// The `i`th element of `step` in both values, `None` outside either (a plan never has one).
fn element<'s>(
    step: &Checked,
    i: usize,
    src: &'s [u8],
    dst: &'s [u8],
) -> Option<(&'s [u8], &'s [u8])> {
    let s = step.src + i * step.src_stride;
    let d = step.dst + i * step.dst_stride;
    Some((
        src.get(s..s + step.narrowing.source_len())?,
        dst.get(d..d + step.narrowing.target_len())?,
    ))
}

/// Writes a checked element: `from` narrowed into `to`.
fn narrow(narrowing: &Narrowing, from: &[u8], to: &mut [u8]) {
    match *narrowing {
        Narrowing::Integer { from: f, to: t } | Narrowing::Enum { from: f, to: t, .. } => {
            match integer(f, from) {
                Ok(value) => write_integer(t, value, to),
                // Checked: only a `u128` holds it.
                Err(huge) if t == Primitive::U128 && to.len() == 16 => {
                    to.copy_from_slice(&huge.to_ne_bytes())
                }
                Err(_) => {}
            }
        }
        Narrowing::F64ToF32 => {
            let value = f64::from_ne_bytes(from.try_into().unwrap_or([0; 8]));
            if to.len() == 4 {
                to.copy_from_slice(&(value as f32).to_ne_bytes());
            }
        }
        Narrowing::TextLength { .. } => {
            if to.len() == from.len() {
                to.copy_from_slice(from);
            }
        }
        Narrowing::ListLength { to_width, .. } => write_count(to, read_count(from), to_width),
    }
}

/// An integer of primitive `p` from its native-endian bytes: `Err` holds a `u128` above
/// `i128::MAX`, which no narrower primitive holds.
fn integer(p: Primitive, bytes: &[u8]) -> Result<i128, u128> {
    if p == Primitive::U128 {
        let value = u128::from_ne_bytes(bytes.try_into().unwrap_or([0; 16]));
        return i128::try_from(value).map_err(|_| value);
    }
    Ok(read_integer(p, bytes))
}

/// Whether `value` is one that primitive `p` holds.
fn fits_integer(value: Result<i128, u128>, p: Primitive) -> bool {
    match (value, p) {
        (Err(_), Primitive::U128) => true,
        (Err(_), _) => false,
        (Ok(v), p) => integer_range(p).is_some_and(|(min, max)| min <= v && v <= max),
    }
}

fn show(value: Result<i128, u128>) -> String {
    match value {
        Ok(v) => v.to_string(),
        Err(v) => v.to_string(),
    }
}

/// How many leading bytes of a `width`-byte list header hold the count: as
/// `value::slot::count_width` for an element of `width` bytes (1, 2 for 2 or 3, else 4).
fn count_width(width: usize) -> usize {
    match width {
        0 | 1 => 1,
        2 | 3 => 2,
        _ => 4,
    }
}

/// The largest count a `width`-byte header holds.
fn max_count(width: usize) -> u64 {
    match count_width(width) {
        1 => u64::from(u8::MAX),
        2 => u64::from(u16::MAX),
        _ => u64::from(u32::MAX),
    }
}

/// The count in a list header's leading bytes (0 for a header too short, which a plan never
/// passes).
fn read_count(header: &[u8]) -> u64 {
    match (count_width(header.len()), header) {
        (1, [a, ..]) => u64::from(*a),
        (2, [a, b, ..]) => u64::from(u16::from_ne_bytes([*a, *b])),
        (_, [a, b, c, d, ..]) => u64::from(u32::from_ne_bytes([*a, *b, *c, *d])),
        _ => 0,
    }
}

/// Zeroes `header` and stores `count` (checked to fit) in its leading bytes, as
/// `value::slot::write_count` does.
fn write_count(header: &mut [u8], count: u64, width: usize) {
    if header.len() != width {
        return;
    }
    header.fill(0);
    match count_width(width) {
        1 => header[0] = count as u8,
        2 => header[..2].copy_from_slice(&(count as u16).to_ne_bytes()),
        _ => header[..4].copy_from_slice(&(count as u32).to_ne_bytes()),
    }
}

/// Each kinds table path's first entry.
fn kinds_by_path(descriptor: &Descriptor) -> HashMap<&str, &StoredKind> {
    let mut by_path = HashMap::with_capacity(descriptor.kinds.len());
    for entry in &descriptor.kinds {
        by_path.entry(entry.path.as_str()).or_insert(&entry.kind);
    }
    by_path
}

/// A row's parent value and last name: (`peers[].name`, `len`) for `peers[].name.len`, (``,
/// `len`) for `len`.
fn split_leaf(path: &str) -> (&str, &str) {
    path.rsplit_once('.').unwrap_or(("", path))
}

/// A value's primitive from its stored code.
fn primitive(code: u32) -> Option<Primitive> {
    u8::try_from(code).ok().and_then(Primitive::from_code)
}

/// The plan being built.
struct Planner<'d> {
    region_kinds: HashMap<&'d str, &'d StoredKind>,
    other_kinds: HashMap<&'d str, &'d StoredKind>,
    region_size: usize,
    other_size: usize,
    copies: Vec<Step>,
    checked: Vec<Checked>,
    paths: Vec<String>,
    enums: Vec<RegionEnum>,
}

impl<'d> Planner<'d> {
    /// The steps of one pair of rows at one path: `theirs` the region's, `mine` the other
    /// type's.
    fn leaf(
        &mut self,
        theirs: &'d DescriptorField,
        mine: &'d DescriptorField,
    ) -> Result<(), String> {
        let (parent, last) = split_leaf(&theirs.path);
        let kinds = (
            self.region_kinds.get(parent).copied(),
            self.other_kinds.get(parent).copied(),
        );
        let whole = match (last, kinds) {
            (
                "len",
                (Some(StoredKind::Text { capacity: r }), Some(StoredKind::Text { capacity: o })),
            ) if r != o => Some(Narrowing::TextLength { capacity: *r }),
            (
                "len",
                (Some(StoredKind::List { capacity: r }), Some(StoredKind::List { capacity: o })),
            ) => {
                let outer = outer_dims(parent);
                let from_width = header_width(mine, outer)?;
                let to_width = header_width(theirs, outer)?;
                (r != o || from_width != to_width).then_some(Narrowing::ListLength {
                    from_width,
                    to_width,
                    capacity: *r,
                })
            }
            (
                "raw",
                (
                    Some(StoredKind::Enum {
                        variants: region,
                        name,
                    }),
                    Some(StoredKind::Enum {
                        variants: other, ..
                    }),
                ),
            ) => {
                let (Some(from), Some(to)) =
                    (primitive(mine.primitive), primitive(theirs.primitive))
                else {
                    return Err(format!("field `{}` has an unknown primitive", theirs.path));
                };
                if integer_range(from).is_none() || integer_range(to).is_none() {
                    return Err(format!(
                        "enum `{parent}` has a raw value that is not an integer"
                    ));
                }
                let mut values: Vec<i128> = region.iter().map(|(_, v)| *v).collect();
                values.sort_unstable();
                values.dedup();
                let mut theirs_values: Vec<i128> = other.iter().map(|(_, v)| *v).collect();
                theirs_values.sort_unstable();
                theirs_values.dedup();
                if from == to && values == theirs_values {
                    None
                } else {
                    self.enums.push(RegionEnum {
                        values,
                        region: StoredKind::Enum {
                            name: name.clone(),
                            variants: region.clone(),
                        }
                        .describe(),
                        other: other.clone(),
                    });
                    Some(Narrowing::Enum {
                        from,
                        to,
                        table: self.enums.len() - 1,
                    })
                }
            }
            _ => None,
        };
        match whole {
            // The value's length (or raw integer) taken whole: over the arrays of structs around
            // the value only, named by the value's path.
            Some(narrowing) => {
                let outer = outer_dims(parent);
                let dims_of =
                    |field: &'d DescriptorField| &field.dims[..outer.min(field.dims.len())];
                self.checked_runs(
                    parent,
                    Side {
                        dims: dims_of(mine),
                        ..Side::of(mine, self.other_size, narrowing.source_len())
                    },
                    Side {
                        dims: dims_of(theirs),
                        ..Side::of(theirs, self.region_size, narrowing.target_len())
                    },
                    narrowing,
                )
            }
            None => self.element_runs(theirs, mine),
        }
    }

    /// A row narrowed or copied element by element, by its primitives.
    fn element_runs(
        &mut self,
        theirs: &'d DescriptorField,
        mine: &'d DescriptorField,
    ) -> Result<(), String> {
        let (Some(from), Some(to)) = (primitive(mine.primitive), primitive(theirs.primitive))
        else {
            return Err(format!(
                "field `{}` has primitive codes {} and {}, which cannot be converted",
                theirs.path, theirs.primitive, mine.primitive
            ));
        };
        let integer = |p| integer_range(p).is_some();
        let narrowing = if from == to {
            let len = from.size();
            let budget = self.other_size.max(1);
            let copies = &mut self.copies;
            let checked = self.checked.len();
            return runs(
                Side::of(mine, self.other_size, len),
                Side::of(theirs, self.region_size, len),
                |run, _| {
                    copies.push(Step {
                        src: run.a,
                        dst: run.b,
                        count: run.count,
                        src_stride: run.a_stride,
                        dst_stride: run.b_stride,
                        conversion: Conversion::Copy { len },
                    });
                    within_budget(copies.len() + checked, budget)
                },
            );
        } else if integer(from) && integer(to) {
            Narrowing::Integer { from, to }
        } else if (from, to) == (Primitive::F64, Primitive::F32) {
            Narrowing::F64ToF32
        } else {
            return Err(format!(
                "field `{}`: {} cannot be written back as {}",
                theirs.path,
                from.name(),
                to.name()
            ));
        };
        self.checked_runs(
            &theirs.path,
            Side::of(mine, self.other_size, narrowing.source_len()),
            Side::of(theirs, self.region_size, narrowing.target_len()),
            narrowing,
        )
    }

    /// The checked steps of one pair of sides, named `path`.
    fn checked_runs(
        &mut self,
        path: &str,
        mine: Side<'_>,
        theirs: Side<'_>,
        narrowing: Narrowing,
    ) -> Result<(), String> {
        self.paths.push(path.to_string());
        let path = self.paths.len() - 1;
        let indexed = !mine.dims.is_empty();
        let budget = self.other_size.max(1);
        let copies = self.copies.len();
        let checked = &mut self.checked;
        runs(mine, theirs, |run, outer| {
            checked.push(Checked {
                src: run.a,
                dst: run.b,
                count: run.count,
                src_stride: run.a_stride,
                dst_stride: run.b_stride,
                narrowing: narrowing.clone(),
                path,
                outer: outer.to_vec(),
                indexed,
            });
            within_budget(copies + checked.len(), budget)
        })
    }
}

/// Each step reads at least one distinct element of the other type's value, a real type: more
/// steps than its bytes is a forged table.
fn within_budget(steps: usize, budget: usize) -> Result<(), String> {
    if steps > budget {
        Err("the stored field table has more elements than the value".into())
    } else {
        Ok(())
    }
}

/// The width in bytes of a list's length header `field` (`[u8; w]`, or one `u8`) inside
/// `outer` arrays of structs.
fn header_width(field: &DescriptorField, outer: usize) -> Result<usize, String> {
    let own = field.dims.get(outer..).unwrap_or(&[]);
    let width = match own {
        [] => 1,
        [(count, 1)] => *count,
        _ => 0,
    };
    if field.primitive != u32::from(Primitive::U8.code()) || width == 0 {
        return Err(format!(
            "field `{}` is not a list's length header",
            field.path
        ));
    }
    usize::try_from(width).map_err(|_| format!("field `{}` lies outside the value", field.path))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::layout::ShmType;
    use crate::value::{EnumField, FixedStr, FixedVec, Flag, Opt, Timestamp};

    fn plan<R: ShmType, O: ShmType>() -> Result<Writeback, Refusal> {
        Writeback::plan(
            &Descriptor::of(&R::LAYOUT),
            std::mem::size_of::<R>(),
            &Descriptor::of(&O::LAYOUT),
            std::mem::size_of::<O>(),
        )
    }

    fn project<R: ShmType, O: ShmType>(value: &R) -> O {
        let plan = Projection::plan(
            &Descriptor::of(&R::LAYOUT),
            std::mem::size_of::<R>(),
            &Descriptor::of(&O::LAYOUT),
            std::mem::size_of::<O>(),
        )
        .expect("compatible");
        let mut out = O::zeroed();
        plan.apply(bytemuck::bytes_of(value), bytemuck::bytes_of_mut(&mut out));
        out
    }

    /// `value` written back into `region` (which holds the committed value).
    fn write_back<R: ShmType, O: ShmType>(value: &O, region: &mut R) -> Result<(), Unfit> {
        plan::<R, O>()
            .expect("a write-back plan")
            .apply(bytemuck::bytes_of(value), bytemuck::bytes_of_mut(region))
    }

    /// The refusal of writing `value` into `region`, which stays as it was.
    fn unfit<R: ShmType, O: ShmType>(value: &O, region: &R) -> Unfit {
        let mut after = *region;
        let refusal = write_back(value, &mut after).expect_err("refused");
        assert_eq!(
            bytemuck::bytes_of(&after),
            bytemuck::bytes_of(region),
            "a refused write-back writes nothing"
        );
        refusal
    }

    #[derive(crate::ShmEnum, Clone, Copy, Debug, PartialEq)]
    #[repr(u8)]
    enum Level {
        Error,
        Warn,
    }

    #[derive(crate::ShmEnum, Clone, Copy, Debug, PartialEq)]
    #[repr(u16)]
    enum LevelV2 {
        Error,
        Warn,
        Debug,
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
    struct WheelV2 {
        rpm: i64,
        pressure: f64,
    }

    /// Every kind of field, ordered by alignment (the derive refuses padding).
    #[derive(crate::ShmType, Clone, Copy)]
    #[repr(C)]
    #[shm(name = "Config")]
    struct V1 {
        at: Timestamp,
        big: u64,
        workers: u32,
        ratio: f32,
        gone: u32,
        wheels: [Wheel; 3],
        peers: FixedVec<Wheel, 2>,
        delta: i16,
        ports: FixedVec<u16, 3>,
        limit: Opt<u16>,
        level: EnumField<Level>,
        on: Flag,
        name: FixedStr<8>,
        names: FixedVec<FixedStr<4>, 2>,
    }

    /// V1 with every field widened that can be, `gone` dropped (kept), none added.
    #[derive(crate::ShmType, Clone, Copy)]
    #[repr(C)]
    #[shm(name = "Config")]
    struct V2 {
        big: u128,
        at: Timestamp,
        workers: u64,
        ratio: f64,
        delta: i64,
        wheels: [WheelV2; 3],
        peers: FixedVec<WheelV2, 4>,
        ports: FixedVec<u32, 6>,
        limit: Opt<u32>,
        level: EnumField<LevelV2>,
        on: Flag,
        name: FixedStr<33>,
        names: FixedVec<FixedStr<9>, 3>,
    }

    fn v1() -> V1 {
        let wheel = |pressure, rpm| Wheel { pressure, rpm };
        V1 {
            workers: u32::MAX,
            ratio: 0.25,
            delta: -7,
            level: EnumField::new(Level::Warn),
            on: Flag::new(true),
            name: FixedStr::new("hello").unwrap(),
            ports: FixedVec::from_slice(&[80, 443]).unwrap(),
            limit: Opt::some(9),
            at: Timestamp::from_unix_nanos(1_234),
            gone: 0x5eed,
            wheels: [wheel(1.5, -3), wheel(2.0, 4), wheel(-0.5, 5)],
            peers: FixedVec::from_slice(&[wheel(7.25, 70)]).unwrap(),
            names: FixedVec::from_slice(&[FixedStr::new("ab").unwrap()]).unwrap(),
            big: u64::MAX,
        }
    }

    #[test]
    fn writing_back_a_projection_restores_every_field_and_keeps_the_others() {
        let region = v1();
        let read: V2 = project(&region);
        // Into a region that holds another committed value (all zero) beside the same kept
        // `gone`: every paired field comes back.
        let mut committed: V1 = bytemuck::Zeroable::zeroed();
        committed.gone = region.gone;
        write_back(&read, &mut committed).expect("fits");
        assert_eq!(bytemuck::bytes_of(&committed), bytemuck::bytes_of(&region));
        // Into the region itself: nothing changes.
        let mut same = region;
        write_back(&read, &mut same).expect("fits");
        assert_eq!(bytemuck::bytes_of(&same), bytemuck::bytes_of(&region));
    }

    #[test]
    fn changes_that_fit_reach_the_region_and_kept_fields_stay() {
        let mut read: V2 = project(&v1());
        read.workers = 12;
        read.ratio = -0.125;
        read.delta = i64::from(i16::MIN);
        read.level.set(LevelV2::Error);
        read.name.set("new name").unwrap();
        read.ports = FixedVec::from_slice(&[1, 2, 65_535]).unwrap();
        read.limit.set(None);
        read.wheels[1].pressure = 3.5;
        read.peers
            .push(WheelV2 {
                rpm: -1,
                pressure: 0.0,
            })
            .unwrap();
        read.names.as_mut_slice().unwrap()[0].set("abcd").unwrap();
        let mut region = v1();
        write_back(&read, &mut region).expect("fits");
        assert_eq!(region.workers, 12);
        assert_eq!(region.ratio, -0.125);
        assert_eq!(region.delta, i16::MIN);
        assert_eq!(region.level.get().ok(), Some(Level::Error));
        assert_eq!(region.name.as_str().unwrap(), "new name");
        assert_eq!(region.ports.as_slice().unwrap(), [1, 2, 65_535]);
        assert_eq!(region.limit.get(), None);
        assert_eq!(region.wheels[1].pressure, 3.5);
        assert_eq!(region.peers.len(), 2);
        assert_eq!(region.peers.as_slice().unwrap()[1].rpm, -1);
        assert_eq!(
            region.names.as_slice().unwrap()[0].as_str().unwrap(),
            "abcd"
        );
        assert_eq!(region.gone, 0x5eed, "a kept field is never written");
        // And the region read back through V2 is what was written.
        let again: V2 = project(&region);
        assert_eq!(bytemuck::bytes_of(&again), bytemuck::bytes_of(&read));
    }

    #[test]
    fn each_value_that_does_not_fit_is_refused_naming_its_field_and_value() {
        let region = v1();
        let read: V2 = project(&region);
        let check = |edit: &dyn Fn(&mut V2), path: &str, why: &str| {
            let mut value = read;
            edit(&mut value);
            let refusal = unfit(&value, &region);
            assert_eq!(refusal.path, path, "{refusal:?}");
            assert!(refusal.reason.contains(why), "{refusal:?}\n  lacks {why}");
            assert!(
                refusal.reason.contains(NARROWER_SHARES),
                "{}",
                refusal.reason
            );
        };
        check(
            &|v| v.workers = 70_000_000_000,
            "workers",
            "70000000000 does not fit the region's u32",
        );
        check(
            &|v| v.delta = -40_000,
            "delta",
            "-40000 does not fit the region's i16",
        );
        check(&|v| v.ratio = 0.1, "ratio", "0.1 is not exactly an f32");
        check(
            &|v| v.big = u128::MAX,
            "big",
            &format!("{} does not fit the region's u64", u128::MAX),
        );
        check(
            &|v| v.big = u128::from(u64::MAX) + 1,
            "big",
            "18446744073709551616 does not fit the region's u64",
        );
        check(
            &|v| v.name.set("a longer name").unwrap(),
            "name",
            "a text of 13 bytes does not fit the region's capacity of 8 bytes",
        );
        check(
            &|v| v.ports = FixedVec::from_slice(&[1, 2, 3, 4]).unwrap(),
            "ports",
            "4 items do not fit the region's capacity of 3",
        );
        check(
            &|v| v.ports = FixedVec::from_slice(&[1, 70_000]).unwrap(),
            "ports.items[1]",
            "70000 does not fit the region's u16",
        );
        check(
            &|v| v.level.set(LevelV2::Debug),
            "level",
            "2 (`Debug`) is not a variant of the region's enum Level { Error = 0, Warn = 1 }",
        );
        check(
            &|v| v.limit.set(Some(1 << 20)),
            "limit.value",
            "1048576 does not fit the region's u16",
        );
        check(
            &|v| v.wheels[2].pressure = 0.1,
            "wheels[2].pressure",
            "0.1 is not exactly an f32",
        );
        check(
            &|v| v.wheels[1].rpm = 1 << 40,
            "wheels[1].rpm",
            "1099511627776 does not fit the region's i32",
        );
        check(
            &|v| {
                let wheel = WheelV2 {
                    rpm: 1,
                    pressure: 1.0,
                };
                v.peers.extend_from_slice(&[wheel, wheel]).unwrap()
            },
            "peers",
            "3 items do not fit the region's capacity of 2",
        );
        check(
            &|v| v.peers.as_mut_slice().unwrap()[0].rpm = -(1 << 40),
            "peers.items[0].rpm",
            "-1099511627776 does not fit the region's i32",
        );
        check(
            &|v| {
                let name = FixedStr::new("x").unwrap();
                v.names.extend_from_slice(&[name, name]).unwrap()
            },
            "names",
            "3 items do not fit the region's capacity of 2",
        );
        check(
            &|v| v.names.as_mut_slice().unwrap()[0].set("fivee").unwrap(),
            "names.items[0]",
            "a text of 5 bytes does not fit the region's capacity of 4 bytes",
        );
    }

    #[test]
    fn one_value_that_does_not_fit_writes_nothing_at_all() {
        let region = v1();
        let mut value: V2 = project(&region);
        // Many fields that fit, changed; one, late in the value, that does not.
        value.workers = 1;
        value.name.set("other").unwrap();
        value.ports = FixedVec::from_slice(&[9]).unwrap();
        value.wheels[0].pressure = 8.0;
        value.big = u128::MAX;
        let refusal = unfit(&value, &region);
        assert_eq!(refusal.path, "big");
    }

    #[test]
    fn wider_values_that_the_narrower_type_holds_are_written() {
        let mut value: V2 = project(&v1());
        for x in [
            f64::NAN,
            f64::INFINITY,
            -0.0,
            16_777_216.0,
            f64::from(f32::MAX),
        ] {
            value.ratio = x;
            let mut region = v1();
            write_back(&value, &mut region).expect("exact");
            assert_eq!(region.ratio.to_bits(), (x as f32).to_bits());
        }
        let mut region = v1();
        value.workers = u64::from(u32::MAX);
        value.delta = i64::from(i16::MAX);
        value.big = u128::from(u64::MAX);
        write_back(&value, &mut region).expect("in range");
        assert_eq!(
            (region.workers, region.delta, region.big),
            (u32::MAX, i16::MAX, u64::MAX)
        );
    }

    #[test]
    fn an_enum_value_the_region_already_holds_is_written_back_unchanged() {
        // A raw value no variant has (a zeroed region of an enum without 0, or a peer's raw
        // write) is read and written back as it is: nothing is lost.
        let mut region = v1();
        region.level = EnumField::from_raw(7);
        let value: V2 = project(&region);
        write_back(&value, &mut region).expect("unchanged");
        assert_eq!(region.level.raw(), 7);
        let mut other = value;
        other.level = EnumField::from_raw(8);
        let refusal = unfit(&other, &region);
        assert_eq!(refusal.path, "level");
        assert!(
            refusal.reason.starts_with("8 is not a variant"),
            "{refusal:?}"
        );
    }

    #[derive(crate::ShmType, Clone, Copy)]
    #[repr(C, packed)]
    #[shm(name = "Small")]
    struct Small {
        a: u8,
        b: u32,
        c: u16,
    }

    #[derive(crate::ShmType, Clone, Copy)]
    #[repr(C, packed)]
    #[shm(name = "Small")]
    struct SmallWide {
        b: u64,
        a: u8,
    }

    #[derive(crate::ShmType, Clone, Copy)]
    #[repr(C, packed)]
    #[shm(name = "Small")]
    struct SmallMore {
        a: u8,
        b: u32,
        c: u16,
        d: u32,
    }

    #[test]
    fn bytes_outside_the_paired_fields_are_untouched() {
        // A region whose value has 5 bytes no row describes (a forged or future table): they
        // are never written, nor the kept `c`.
        let size = std::mem::size_of::<Small>() + 5;
        let plan = Writeback::plan(
            &Descriptor::of(&Small::LAYOUT),
            size,
            &Descriptor::of(&SmallWide::LAYOUT),
            std::mem::size_of::<SmallWide>(),
        )
        .unwrap();
        let mut region = vec![0xeeu8; size];
        let value = SmallWide { b: 5, a: 2 };
        plan.apply(bytemuck::bytes_of(&value), &mut region)
            .expect("fits");
        let mut expected = vec![0xeeu8; size];
        expected[0] = 2;
        expected[1..5].copy_from_slice(&5u32.to_ne_bytes());
        assert_eq!(region, expected, "`c` and the undescribed bytes untouched");
        // Slices of other sizes are refused, never written.
        let before = region.clone();
        let wrong = plan.apply(&[0; 3], &mut region).unwrap_err();
        assert_eq!(wrong.path, "");
        assert_eq!(region, before);
        assert!(plan
            .apply(bytemuck::bytes_of(&value), &mut region[..4])
            .is_err());
    }

    #[derive(crate::ShmType, Clone, Copy)]
    #[repr(C)]
    #[shm(name = "Small")]
    struct Unrelated {
        z: u32,
    }

    #[test]
    fn plans_refuse_added_incompatible_and_unrelated_types() {
        let added = plan::<Small, SmallMore>().unwrap_err();
        let Refusal::Incompatible(why) = added else {
            panic!("{added:?}")
        };
        assert!(why.contains("`d` is not in the region"), "{why}");
        assert!(why.contains("migrated"), "{why}");
        assert_eq!(
            plan::<SmallWide, Small>().unwrap_err(),
            Refusal::Incompatible("the layouts are incompatible".into())
        );
        assert_eq!(
            plan::<Unrelated, Small>().unwrap_err(),
            Refusal::Incompatible("the two types have no field in common".into())
        );
        // The same type: copies only, nothing checked.
        let same = plan::<V1, V1>().unwrap();
        assert!(same.checked.is_empty());
    }

    /// Also the generator of the migration's properties.
    pub(crate) mod properties {
        use super::*;
        use crate::format::compat::tests::properties::descriptor;
        use proptest::prelude::*;

        /// One of `real`, with up to 4 rows or kinds forged: an offset, a primitive, a count or
        /// a stride moved, a dimension added, a capacity changed. Close enough to a real type
        /// that plans get built, and then must stay within the values.
        pub(crate) fn mutated(real: Vec<Descriptor>) -> impl Strategy<Value = Descriptor> {
            let edit = (any::<prop::sample::Index>(), 0u8..6, 0u64..200, 0u32..14);
            (
                prop::sample::select(real),
                prop::collection::vec(edit, 0..4),
            )
                .prop_map(|(mut d, edits)| {
                    for (index, what, n, code) in edits {
                        if what == 5 {
                            if !d.kinds.is_empty() {
                                match &mut index.get_mut(&mut d.kinds).kind {
                                    StoredKind::Text { capacity }
                                    | StoredKind::List { capacity } => *capacity = n % 40,
                                    _ => {}
                                }
                            }
                            continue;
                        }
                        if d.fields.is_empty() {
                            continue;
                        }
                        let field = index.get_mut(&mut d.fields);
                        match (what, field.dims.first_mut()) {
                            (0, _) => field.offset = n,
                            (1, _) => field.primitive = code,
                            (2, Some(dim)) => dim.0 = n % 40,
                            (3, Some(dim)) => dim.1 = n % 40,
                            _ => field.dims.push((n % 5, n % 40)),
                        }
                    }
                    d
                })
        }

        proptest! {
            /// Forged pairs of descriptors and sizes plan or refuse, and a plan applies to
            /// slices of any size, without panicking.
            #[test]
            fn forged_descriptors_never_panic(
                region in descriptor(),
                other in descriptor(),
                region_size in 0usize..96,
                other_size in 0usize..96,
                fill in any::<u8>(),
            ) {
                for (r, o) in [(&region, &other), (&region, &region)] {
                    if let Ok(plan) = Writeback::plan(r, region_size, o, other_size) {
                        let src = vec![fill; other_size];
                        let mut dst = vec![!fill; region_size];
                        let _ = plan.apply(&src, &mut dst);
                        let _ = plan.apply(&src[..other_size / 2], &mut dst);
                    }
                }
            }

            /// A real type against a forged version of the region's, and the reverse: the plans
            /// that get built apply within both values.
            #[test]
            fn mutated_region_descriptors_never_panic(
                region in mutated(vec![Descriptor::of(&V1::LAYOUT), Descriptor::of(&V2::LAYOUT)]),
                slack in 0usize..32,
                fill in any::<u8>(),
            ) {
                let size = std::mem::size_of::<V1>() + slack - 16;
                for (other, other_size) in [
                    (Descriptor::of(&V2::LAYOUT), std::mem::size_of::<V2>()),
                    (Descriptor::of(&V1::LAYOUT), std::mem::size_of::<V1>()),
                ] {
                    if let Ok(plan) = Writeback::plan(&region, size, &other, other_size) {
                        let mut dst = vec![!fill; size];
                        let _ = plan.apply(&vec![fill; other_size], &mut dst);
                    }
                    if let Ok(plan) = Writeback::plan(&other, other_size, &region, size) {
                        let mut dst = vec![!fill; other_size];
                        let _ = plan.apply(&vec![fill; size], &mut dst);
                    }
                }
            }

            /// A real type against a forged region descriptor, and the reverse.
            #[test]
            fn real_and_forged_descriptors_never_panic(
                forged in descriptor(),
                size in 0usize..256,
                fill in any::<u8>(),
            ) {
                let real = Descriptor::of(&V2::LAYOUT);
                let real_size = std::mem::size_of::<V2>();
                if let Ok(plan) = Writeback::plan(&forged, size, &real, real_size) {
                    let _ = plan.apply(&vec![fill; real_size], &mut vec![fill; size]);
                }
                if let Ok(plan) = Writeback::plan(&real, real_size, &forged, size) {
                    let _ = plan.apply(&vec![fill; size], &mut vec![fill; real_size]);
                }
            }
        }
    }
}
