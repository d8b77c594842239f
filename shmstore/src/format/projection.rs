//! A projection: how to turn a snapshot of a region's value (stored type *R*) into the bytes
//! of a compatible type *O* (`FORMAT.md`, "Comparing two descriptors"; README, "Changing a
//! region's type"). Built once, when a handle opens, from the leaves both descriptors have
//! ([`paired_leaves`](super::compat::paired_leaves)); applied to each snapshot.
//!
//! The reverse, writing a value of the compatible type back into the region, is a
//! [`Writeback`](super::writeback::Writeback), which walks the same pairs of rows ([`runs`]).
//!
//! Pure data and a pure function over byte slices: no region, no `unsafe`. A forged stored
//! descriptor can make [`Projection::plan`] refuse, never make it or [`Projection::apply`]
//! panic or touch a byte outside the two slices.

use crate::layout::Primitive;

use super::compat::{compare, paired_leaves, Overall};
use super::descriptor::{Descriptor, DescriptorField};

/// How one element is carried from the snapshot into the projected value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Conversion {
    /// The same primitive: `len` bytes copied as they are.
    Copy {
        /// Bytes per element (all of a run's bytes once runs are merged).
        len: usize,
    },
    /// An integer widened: zero extension from an unsigned type, sign extension from a signed
    /// one (an enum's raw integer, a text or list length, any integer field).
    Integer {
        /// The region's primitive.
        from: Primitive,
        /// The projected type's.
        to: Primitive,
    },
    /// `f32` to `f64` (exact).
    F32ToF64,
}

impl Conversion {
    fn source_len(self) -> usize {
        match self {
            Conversion::Copy { len } => len,
            Conversion::Integer { from, .. } => from.size(),
            Conversion::F32ToF64 => 4,
        }
    }

    fn target_len(self) -> usize {
        match self {
            Conversion::Copy { len } => len,
            Conversion::Integer { to, .. } => to.size(),
            Conversion::F32ToF64 => 8,
        }
    }
}

/// `count` elements, the `i`th read at `src + i * src_stride` of the snapshot and written at
/// `dst + i * dst_stride` of the projected value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Step {
    pub(crate) src: usize,
    pub(crate) dst: usize,
    pub(crate) count: usize,
    pub(crate) src_stride: usize,
    pub(crate) dst_stride: usize,
    pub(crate) conversion: Conversion,
}

/// Why a region cannot be read through another type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The types are incompatible, have no field in common, or (for a write-back or a
    /// migration) differ in a way the operation cannot carry: why, in a sentence (the
    /// `LayoutMismatch` of opening says which fields are incompatible).
    Incompatible(String),
    /// The stored field table contradicts the stored value's size (forged): why.
    Forged(String),
}

/// The steps that project a `src_size`-byte value of the region's type onto a zeroed
/// `dst_size`-byte value of a compatible type. Bytes no step writes stay zero: the added
/// fields (and list items or text bytes past the region's capacity) read as zero; the kept
/// fields are never read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Projection {
    pub(crate) src_size: usize,
    pub(crate) dst_size: usize,
    pub(crate) steps: Vec<Step>,
}

impl Projection {
    /// The plan from `region` (the stored descriptor, of values of `src_size` bytes) to
    /// `other` (the opener's, `dst_size` bytes); `Err` says why the region cannot be read
    /// through `other` (incompatible, nothing in common, or a stored row that leaves the
    /// value — only a forged descriptor has one).
    pub(crate) fn plan(
        region: &Descriptor,
        src_size: usize,
        other: &Descriptor,
        dst_size: usize,
    ) -> Result<Projection, Refusal> {
        let verdict = compare(region, other);
        if verdict.overall == Overall::Incompatible {
            return Err(Refusal::Incompatible("the layouts are incompatible".into()));
        }
        if !verdict.shares_a_field() {
            return Err(Refusal::Incompatible(
                "the two types have no field in common".into(),
            ));
        }
        let mut steps = Vec::new();
        // Each step writes at least one distinct element of `other`'s value, a real type: more
        // steps than its bytes is a forged table.
        let budget = dst_size.max(1);
        for (theirs, mine) in paired_leaves(region, other) {
            leaf_steps(theirs, mine, src_size, dst_size, &mut steps).map_err(Refusal::Forged)?;
            if steps.len() > budget {
                return Err(Refusal::Forged(
                    "the stored field table has more elements than the value".into(),
                ));
            }
        }
        Ok(Projection {
            src_size,
            dst_size,
            steps: merged(steps),
        })
    }

    /// Writes the projection of `src` (a snapshot of the region's value) into `dst` (the
    /// projected value's bytes, zeroed by the caller). Does nothing when the slices are not of
    /// the planned sizes.
    pub(crate) fn apply(&self, src: &[u8], dst: &mut [u8]) {
        if src.len() != self.src_size || dst.len() != self.dst_size {
            return;
        }
        for step in &self.steps {
            let (from_len, to_len) = (step.conversion.source_len(), step.conversion.target_len());
            for i in 0..step.count {
                let s = step.src + i * step.src_stride;
                let d = step.dst + i * step.dst_stride;
                // Checked when planned; `get` keeps a mistake a no-op rather than a panic.
                let (Some(from), Some(to)) = (src.get(s..s + from_len), dst.get_mut(d..d + to_len))
                else {
                    continue;
                };
                convert(step.conversion, from, to);
            }
        }
    }
}

/// One element: `from` (the region's bytes) into `to`.
fn convert(conversion: Conversion, from: &[u8], to: &mut [u8]) {
    match conversion {
        Conversion::Copy { .. } => to.copy_from_slice(from),
        Conversion::F32ToF64 => {
            let mut word = [0; 4];
            word.copy_from_slice(from);
            to.copy_from_slice(&f64::from(f32::from_ne_bytes(word)).to_ne_bytes());
        }
        Conversion::Integer { from: f, to: t } => {
            let value = read_integer(f, from);
            write_integer(t, value, to);
        }
    }
}

/// An integer of primitive `p` from its native-endian bytes, sign- or zero-extended by its
/// type (0 for bytes of another length, which a plan never passes).
pub(super) fn read_integer(p: Primitive, bytes: &[u8]) -> i128 {
    macro_rules! read {
        ($t:ty) => {
            bytes
                .try_into()
                .map_or(0, |b| <$t>::from_ne_bytes(b) as i128)
        };
    }
    match p {
        Primitive::U8 => read!(u8),
        Primitive::U16 => read!(u16),
        Primitive::U32 => read!(u32),
        Primitive::U64 => read!(u64),
        Primitive::U128 => read!(u128),
        Primitive::I8 => read!(i8),
        Primitive::I16 => read!(i16),
        Primitive::I32 => read!(i32),
        Primitive::I64 => read!(i64),
        Primitive::I128 => read!(i128),
        _ => 0,
    }
}

/// `value` as primitive `p`'s native-endian bytes (the plan only widens, so the value
/// fits); nothing written into a slice of another length.
pub(super) fn write_integer(p: Primitive, value: i128, to: &mut [u8]) {
    macro_rules! write {
        ($t:ty) => {
            if to.len() == std::mem::size_of::<$t>() {
                to.copy_from_slice(&(value as $t).to_ne_bytes())
            }
        };
    }
    match p {
        Primitive::U8 => write!(u8),
        Primitive::U16 => write!(u16),
        Primitive::U32 => write!(u32),
        Primitive::U64 => write!(u64),
        Primitive::U128 => write!(u128),
        Primitive::I8 => write!(i8),
        Primitive::I16 => write!(i16),
        Primitive::I32 => write!(i32),
        Primitive::I64 => write!(i64),
        Primitive::I128 => write!(i128),
        _ => {}
    }
}

/// The conversion from a leaf of primitive code `from` to one of `to`.
fn conversion(from: u32, to: u32) -> Result<Conversion, String> {
    let known = |code: u32| u8::try_from(code).ok().and_then(Primitive::from_code);
    let (Some(f), Some(t)) = (known(from), known(to)) else {
        return Err(format!(
            "primitive codes {from} and {to} cannot be converted"
        ));
    };
    use Primitive::*;
    let integer = |p| matches!(p, U8 | U16 | U32 | U64 | U128 | I8 | I16 | I32 | I64 | I128);
    if f == t {
        Ok(Conversion::Copy { len: f.size() })
    } else if (f, t) == (F32, F64) {
        Ok(Conversion::F32ToF64)
    } else if integer(f) && integer(t) && t.size() > f.size() {
        Ok(Conversion::Integer { from: f, to: t })
    } else {
        Err(format!("{} cannot be read as {}", f.name(), t.name()))
    }
}

/// The steps of one pair of leaves: one per run of the innermost dimension (see [`runs`]).
fn leaf_steps(
    theirs: &DescriptorField,
    mine: &DescriptorField,
    src_size: usize,
    dst_size: usize,
    steps: &mut Vec<Step>,
) -> Result<(), String> {
    let conversion = conversion(theirs.primitive, mine.primitive)?;
    runs(
        Side::of(theirs, src_size, conversion.source_len()),
        Side::of(mine, dst_size, conversion.target_len()),
        |run, _| {
            steps.push(Step {
                src: run.a,
                dst: run.b,
                count: run.count,
                src_stride: run.a_stride,
                dst_stride: run.b_stride,
                conversion,
            });
            if steps.len() > dst_size.max(1) {
                return Err("the stored field table has more elements than the value".into());
            }
            Ok(())
        },
    )
}

/// One side of a pair of leaves, as [`runs`] walks it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Side<'a> {
    /// The leaf's path (for messages).
    pub(super) path: &'a str,
    pub(super) offset: u64,
    /// The dimensions walked: the row's, or only its outer ones for a value taken whole (a
    /// text's or a list's length header).
    pub(super) dims: &'a [(u64, u64)],
    /// The value's size: every element must lie within it.
    pub(super) size: usize,
    /// The bytes of one element.
    pub(super) len: usize,
}

impl<'a> Side<'a> {
    /// The row `field` of a `size`-byte value, walked element by element of `len` bytes.
    pub(super) fn of(field: &'a DescriptorField, size: usize, len: usize) -> Side<'a> {
        Side {
            path: &field.path,
            offset: field.offset,
            dims: &field.dims,
            size,
            len,
        }
    }
}

/// `count` elements of a pair of leaves, the `i`th at `a + i * a_stride` on the first side and
/// at `b + i * b_stride` on the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Run {
    pub(super) a: usize,
    pub(super) b: usize,
    pub(super) count: usize,
    pub(super) a_stride: usize,
    pub(super) b_stride: usize,
}

/// The runs of a pair of leaves at one path: one per index of the outer dimensions, over the
/// innermost one, each dimension taken up to the smaller count (a list's or a text's capacity
/// may differ; every other count is equal in a compatible pair). `emit` gets each non-empty run
/// with the indices of its outer dimensions, after checking that every element of it lies
/// within both values; `Err` when one does not (only a forged row), or when `emit` refuses.
pub(super) fn runs(
    a: Side<'_>,
    b: Side<'_>,
    mut emit: impl FnMut(Run, &[usize]) -> Result<(), String>,
) -> Result<(), String> {
    let refuse = || format!("field `{}` lies outside the value", a.path);
    if a.dims.len() != b.dims.len() {
        return Err(format!("field `{}` changed its dimensions", a.path));
    }
    let as_usize = |v: u64| usize::try_from(v).map_err(|_| refuse());
    let dims: Vec<(usize, usize, usize)> = a
        .dims
        .iter()
        .zip(b.dims)
        .map(|(&(ac, as_), &(bc, bs))| Ok((as_usize(ac.min(bc))?, as_usize(as_)?, as_usize(bs)?)))
        .collect::<Result<_, String>>()?;
    let (outer, inner) = match dims.split_last() {
        Some((&inner, outer)) => (outer, inner),
        None => (&[][..], (1, 0, 0)),
    };
    let (count, a_stride, b_stride) = inner;
    if outer.iter().any(|&(c, _, _)| c == 0) {
        return Ok(());
    }
    // Every index of the outer dimensions, odometer style.
    let mut index = vec![0usize; outer.len()];
    loop {
        let mut at_a = as_usize(a.offset)?;
        let mut at_b = as_usize(b.offset)?;
        for (&i, &(_, sa, sb)) in index.iter().zip(outer) {
            at_a = i
                .checked_mul(sa)
                .and_then(|o| at_a.checked_add(o))
                .ok_or_else(refuse)?;
            at_b = i
                .checked_mul(sb)
                .and_then(|o| at_b.checked_add(o))
                .ok_or_else(refuse)?;
        }
        if count > 0 {
            if !fits(at_a, a_stride, count, a.len, a.size)
                || !fits(at_b, b_stride, count, b.len, b.size)
            {
                return Err(refuse());
            }
            let run = Run {
                a: at_a,
                b: at_b,
                count,
                a_stride,
                b_stride,
            };
            emit(run, &index)?;
        }
        // The next index.
        let mut d = outer.len();
        loop {
            if d == 0 {
                return Ok(());
            }
            d -= 1;
            index[d] += 1;
            if index[d] < outer[d].0 {
                break;
            }
            index[d] = 0;
        }
    }
}

/// Whether `count` elements of `len` bytes from `start`, `stride` apart, lie within `size`.
fn fits(start: usize, stride: usize, count: usize, len: usize, size: usize) -> bool {
    (count - 1)
        .checked_mul(stride)
        .and_then(|last| start.checked_add(last))
        .and_then(|last| last.checked_add(len))
        .is_some_and(|end| end <= size)
}

/// Contiguous copies as single runs, and runs that follow each other on both sides as one.
pub(super) fn merged(steps: Vec<Step>) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::with_capacity(steps.len());
    for step in steps {
        let step = match step.conversion {
            Conversion::Copy { len }
                if step.count > 1 && step.src_stride == len && step.dst_stride == len =>
            {
                Step {
                    count: 1,
                    conversion: Conversion::Copy {
                        len: len * step.count,
                    },
                    ..step
                }
            }
            _ => step,
        };
        if let (Some(last), Conversion::Copy { len }) = (out.last_mut(), step.conversion) {
            if let Conversion::Copy { len: before } = last.conversion {
                if last.count == 1
                    && step.count == 1
                    && last.src + before == step.src
                    && last.dst + before == step.dst
                {
                    last.conversion = Conversion::Copy { len: before + len };
                    continue;
                }
            }
        }
        out.push(step);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::ShmType;
    use crate::value::{EnumField, FixedStr, FixedVec, Flag, Opt, Timestamp};

    fn project<R: ShmType, O: ShmType>(value: R) -> O {
        let plan = Projection::plan(
            &Descriptor::of(&R::LAYOUT),
            std::mem::size_of::<R>(),
            &Descriptor::of(&O::LAYOUT),
            std::mem::size_of::<O>(),
        )
        .expect("compatible");
        let mut out = O::zeroed();
        plan.apply(bytemuck::bytes_of(&value), bytemuck::bytes_of_mut(&mut out));
        out
    }

    #[test]
    fn every_integer_widening_extends_by_signedness() {
        use Primitive::*;
        let cases: [(Primitive, &[u8], Primitive, i128); 8] = [
            (U8, &[0xff], U16, 0xff),
            (U8, &[0xff], I16, 0xff),
            (I8, &[0xff], I64, -1),
            (I16, &(-300i16).to_ne_bytes(), I32, -300),
            (U32, &u32::MAX.to_ne_bytes(), U64, u32::MAX as i128),
            (U32, &u32::MAX.to_ne_bytes(), I64, u32::MAX as i128),
            (I64, &i64::MIN.to_ne_bytes(), I128, i64::MIN as i128),
            (U64, &u64::MAX.to_ne_bytes(), U128, u64::MAX as i128),
        ];
        for (from, bytes, to, expected) in cases {
            let c = conversion(from.code().into(), to.code().into()).unwrap();
            assert_eq!(c, Conversion::Integer { from, to });
            let mut out = vec![0u8; to.size()];
            convert(c, bytes, &mut out);
            let got = read_integer(to, &out);
            assert_eq!(got, expected, "{} -> {}", from.name(), to.name());
        }
    }

    #[test]
    fn f32_widens_to_f64_exactly_and_the_rest_is_refused() {
        let c = conversion(Primitive::F32.code().into(), Primitive::F64.code().into()).unwrap();
        let mut out = [0u8; 8];
        convert(c, &1.1f32.to_ne_bytes(), &mut out);
        assert_eq!(f64::from_ne_bytes(out), f64::from(1.1f32));
        for (f, t) in [
            (Primitive::F64, Primitive::F32),
            (Primitive::U32, Primitive::F64),
            (Primitive::U32, Primitive::U16),
        ] {
            assert!(conversion(f.code().into(), t.code().into()).is_err());
        }
        assert!(conversion(99, 1).is_err());
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
    #[repr(C, packed)]
    #[shm(name = "Config")]
    struct V1 {
        workers: u32,
        ratio: f32,
        delta: i16,
        level: EnumField<Level>,
        on: Flag,
        name: FixedStr<8>,
        ports: FixedVec<u16, 3>,
        limit: Opt<u16>,
        at: Timestamp,
        gone: u32,
    }

    #[derive(crate::ShmType, Clone, Copy)]
    #[repr(C, packed)]
    #[shm(name = "Config")]
    struct V2 {
        retries: u64,
        at: Timestamp,
        name: FixedStr<24>,
        workers: u64,
        ratio: f64,
        delta: i64,
        level: EnumField<LevelV2>,
        on: Flag,
        ports: FixedVec<u32, 6>,
        limit: Opt<u32>,
    }

    #[test]
    fn every_kind_projects_added_zero_kept_skipped_widened_converted() {
        let v1 = V1 {
            workers: u32::MAX,
            ratio: 0.25,
            delta: -7,
            level: EnumField::new(Level::Warn),
            on: Flag::new(true),
            name: FixedStr::try_from("hello").unwrap(),
            ports: FixedVec::try_from(&[80u16, 443][..]).unwrap(),
            limit: Opt::some(9),
            at: Timestamp::from_unix_nanos(1_234),
            gone: 5,
        };
        let v2: V2 = project(v1);
        // Packed: each field copied out before use.
        let (retries, workers, ratio, delta) =
            ({ v2.retries }, { v2.workers }, { v2.ratio }, { v2.delta });
        let (level, on, name, ports, limit, at) = (
            { v2.level },
            { v2.on },
            { v2.name },
            { v2.ports },
            { v2.limit },
            { v2.at },
        );
        assert_eq!(retries, 0);
        assert_eq!(workers, u64::from(u32::MAX));
        assert_eq!(ratio, 0.25);
        assert_eq!(delta, -7);
        assert_eq!(level.get().ok(), Some(LevelV2::Warn));
        assert!(on.get());
        assert_eq!(name.as_str().unwrap(), "hello");
        assert_eq!(ports.as_slice().unwrap(), [80u32, 443]);
        assert_eq!(limit.get(), Some(9));
        assert_eq!(at.unix_nanos(), 1_234);
    }

    #[test]
    fn identical_layouts_are_one_copy_and_incompatible_ones_are_refused() {
        let d = Descriptor::of(&V1::LAYOUT);
        let size = std::mem::size_of::<V1>();
        let plan = Projection::plan(&d, size, &d, size).unwrap();
        assert_eq!(plan.steps.len(), 1, "{:?}", plan.steps);
        let back = Projection::plan(
            &Descriptor::of(&V2::LAYOUT),
            std::mem::size_of::<V2>(),
            &d,
            size,
        );
        assert_eq!(
            back.unwrap_err(),
            Refusal::Incompatible("the layouts are incompatible".into())
        );
        let none = Projection::plan(
            &Descriptor::of(&<u16>::LAYOUT),
            2,
            &Descriptor::of(&V1::LAYOUT),
            size,
        );
        assert!(matches!(none, Err(Refusal::Incompatible(_))), "{none:?}");
    }

    mod properties {
        use super::*;
        use crate::format::DescriptorField;
        use proptest::prelude::*;

        fn descriptor() -> impl Strategy<Value = Descriptor> {
            let field = (
                prop::sample::select(vec!["", "a", "b", "a.b", "w[].p", "a.items"]),
                0u64..80,
                0u32..15,
                prop::collection::vec((0u64..12, 0u64..12), 0..3),
            )
                .prop_map(|(path, offset, primitive, dims)| DescriptorField {
                    path: path.into(),
                    offset,
                    primitive,
                    dims,
                });
            prop::collection::vec(field, 0..6).prop_map(|fields| Descriptor {
                type_name: "T".into(),
                fields,
                kinds: vec![],
            })
        }

        proptest! {
            /// Forged pairs of descriptors and sizes plan or refuse, and a plan applies,
            /// without panicking or leaving either slice.
            #[test]
            fn forged_descriptors_never_panic(
                a in descriptor(),
                b in descriptor(),
                src_size in 0usize..96,
                dst_size in 0usize..96,
            ) {
                if let Ok(plan) = Projection::plan(&a, src_size, &b, dst_size) {
                    let src = vec![0xa5u8; src_size];
                    let mut dst = vec![0u8; dst_size];
                    plan.apply(&src, &mut dst);
                    plan.apply(&src[..src_size / 2], &mut dst);
                }
            }
        }
    }
}
