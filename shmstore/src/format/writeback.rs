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
    /// What does not fit: `70000 does not fit the region's u16 (a binary of the narrower type
    /// shares the region)`.
    pub(crate) reason: String,
}

/// Why a widened value must fit the narrower one, appended to every [`Unfit`] reason.
const NARROWER_SHARES: &str = "(a binary of the narrower type shares the region)";

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

// Used by `Shm::open`'s guard, which the lead wires next.
#[allow(dead_code)]
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
            if let Ok(value) = integer(f, from) {
                write_integer(t, value, to);
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
