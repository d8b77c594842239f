//! The `ShmType` trait and the layout descriptors the derive builds at compile time.
//!
//! A [`TypeLayout`] is a self-description of a type that may live in shared memory: its name,
//! size, alignment and fields (each with a name, an offset and the field type's own layout). It
//! is built entirely in const context, so its [`fingerprint`](TypeLayout::fingerprint) is a
//! compile-time constant that two binaries compare before they share a region.

use core::fmt;

/// A type that may live in shared memory: plain old data with a fixed, padding-free layout that
/// two processes — even two different binaries — interpret identically.
///
/// Derive it; never implement it by hand:
///
/// ```
/// use shmstore::ShmType;
///
/// #[derive(ShmType, Clone, Copy, Debug, PartialEq)]
/// #[repr(C)]
/// struct Limits {
///     version: u64,
///     rate_per_s: u32,
///     burst: u32,
///     name: [u8; 32],
/// }
///
/// assert_eq!(Limits::LAYOUT.size(), 48);
/// assert_eq!(Limits::LAYOUT.fields()[2].name(), "burst");
/// assert_eq!(Limits::LAYOUT.fields()[2].offset(), 12);
/// ```
///
/// # Safety
///
/// Unsafe code (the region, the latch and the seqlock of this crate) relies on every
/// implementor being:
///
/// - [`bytemuck::Pod`]: every bit pattern is a valid value, it has no padding, no drop glue and
///   no interior mutability, so bytes written by another process — even a malicious or crashed
///   one — can be read as a `Self` without undefined behaviour;
/// - free of pointers, references and pointer-sized integers, so a value means the same thing in
///   every process and in 32- and 64-bit builds;
/// - described exactly by [`LAYOUT`](Self::LAYOUT): its `size` and `align` equal
///   `size_of::<Self>()` and `align_of::<Self>()`, and each field's offset and layout are the
///   compiler's.
///
/// # Implementation
///
/// Do not implement this trait yourself: `#[derive(ShmType)]` proves every point above at compile
/// time (see the [derive's documentation](macro@crate::ShmType) for the analysis it runs). The
/// crate implements it for `u8`..`u128`, `i8`..`i128`, `f32`, `f64` and arrays `[T; N]` of
/// `ShmType`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot live in shared memory: it does not implement `ShmType`",
    label = "not a `ShmType`",
    note = "shared memory holds fixed-width integers (u8..u128, i8..i128), f32, f64, arrays of \
            them, and `#[repr(C)]` structs that `#[derive(ShmType)]`",
    note = "pointers, references, heap types, `bool`, `char`, `usize`/`isize`, `Option`, atomics \
            and cells cannot be shared between processes safely",
    note = "`shmstore::value` has text (`FixedStr`), lists (`FixedVec`), `Flag`, `Opt`, \
            `Timestamp` and enums (`EnumField`)"
)]
pub unsafe trait ShmType: bytemuck::Pod + Sync + 'static {
    /// The compile-time self-description of `Self`, stored in every region that holds a `Self`.
    const LAYOUT: TypeLayout;
}

/// A primitive scalar type, the leaves of every [`TypeLayout`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Primitive {
    /// `u8`
    U8,
    /// `u16`
    U16,
    /// `u32`
    U32,
    /// `u64`
    U64,
    /// `u128`
    U128,
    /// `i8`
    I8,
    /// `i16`
    I16,
    /// `i32`
    I32,
    /// `i64`
    I64,
    /// `i128`
    I128,
    /// `f32`
    F32,
    /// `f64`
    F64,
}

impl Primitive {
    /// Every primitive, in the order of their [`code`](Self::code)s.
    pub const ALL: [Primitive; 12] = [
        Primitive::U8,
        Primitive::U16,
        Primitive::U32,
        Primitive::U64,
        Primitive::U128,
        Primitive::I8,
        Primitive::I16,
        Primitive::I32,
        Primitive::I64,
        Primitive::I128,
        Primitive::F32,
        Primitive::F64,
    ];

    /// The Rust spelling of the type, such as `"u32"`.
    pub const fn name(self) -> &'static str {
        match self {
            Primitive::U8 => "u8",
            Primitive::U16 => "u16",
            Primitive::U32 => "u32",
            Primitive::U64 => "u64",
            Primitive::U128 => "u128",
            Primitive::I8 => "i8",
            Primitive::I16 => "i16",
            Primitive::I32 => "i32",
            Primitive::I64 => "i64",
            Primitive::I128 => "i128",
            Primitive::F32 => "f32",
            Primitive::F64 => "f64",
        }
    }

    /// Size in bytes.
    pub const fn size(self) -> usize {
        match self {
            Primitive::U8 | Primitive::I8 => 1,
            Primitive::U16 | Primitive::I16 => 2,
            Primitive::U32 | Primitive::I32 | Primitive::F32 => 4,
            Primitive::U64 | Primitive::I64 | Primitive::F64 => 8,
            Primitive::U128 | Primitive::I128 => 16,
        }
    }

    /// The stable one-byte code that identifies this primitive in a region's type descriptor
    /// (see `FORMAT.md`).
    pub const fn code(self) -> u8 {
        match self {
            Primitive::U8 => 1,
            Primitive::U16 => 2,
            Primitive::U32 => 3,
            Primitive::U64 => 4,
            Primitive::U128 => 5,
            Primitive::I8 => 6,
            Primitive::I16 => 7,
            Primitive::I32 => 8,
            Primitive::I64 => 9,
            Primitive::I128 => 10,
            Primitive::F32 => 11,
            Primitive::F64 => 12,
        }
    }

    /// The primitive whose [`code`](Self::code) is `code`, if any.
    pub const fn from_code(code: u8) -> Option<Primitive> {
        if code >= 1 && code <= 12 {
            Some(Primitive::ALL[(code - 1) as usize])
        } else {
            None
        }
    }
}

/// What a [`TypeLayout`] describes.
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    /// A primitive scalar.
    Primitive(Primitive),
    /// `[element; len]`.
    Array {
        /// The element type's layout.
        element: &'static TypeLayout,
        /// The number of elements.
        len: usize,
    },
    /// A `#[repr(C)]` or `#[repr(transparent)]` struct; its fields are in declaration order.
    Struct {
        /// The fields, in declaration (and, for `repr(C)`, offset) order.
        fields: &'static [Field],
    },
}

/// What a value means beyond its bytes: plain data, or one of the value types of
/// [`shmstore::value`](crate::value) (text, a flag, an optional value, a timestamp, an enum, a
/// list).
///
/// Every layout carries one ([`TypeLayout::kind`]); the derive and the primitives give
/// [`ValueKind::Plain`], and each value type sets its own with [`TypeLayout::with_kind`]. A
/// region's descriptor records every non-plain kind in its kinds table (format version 2, see
/// `FORMAT.md`, "Field kinds"), and the [fingerprint](TypeLayout::fingerprint) covers it: the
/// bytes and the primitives describe the value completely, and the kind says how to show,
/// check and parse it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValueKind {
    /// Plain data: a primitive, an array or a struct read field by field.
    Plain,
    /// [`FixedStr<N>`](crate::value::FixedStr): fields `len` (4 bytes, native byte order) and
    /// `bytes` (`[u8; capacity]`), UTF-8.
    Text {
        /// `N`, the most bytes the text may hold.
        capacity: usize,
    },
    /// [`Flag`](crate::value::Flag): one byte, any non-zero value is `true`.
    Flag,
    /// [`Opt<T>`](crate::value::Opt): fields `present` (a header as large as `value`, whose
    /// first byte, when not zero, means the value is present) and `value`.
    Optional,
    /// [`Timestamp`](crate::value::Timestamp): `i64` nanoseconds since the Unix epoch.
    Timestamp,
    /// [`EnumField<E>`](crate::value::EnumField): the raw discriminant of enum `name`.
    Enum {
        /// The enum's name.
        name: &'static str,
        /// Each variant's name and discriminant, in declaration order.
        variants: &'static [(&'static str, i128)],
    },
    /// [`FixedVec<T, N>`](crate::value::FixedVec): fields `len` (a header as large as one
    /// element whose first 1, 2 or 4 bytes, for an element of 1, of 2 or 3, or of 4 and more
    /// bytes, hold the length as an unsigned integer in the host's byte order) and `items`
    /// (`[T; capacity]`).
    List {
        /// `N`, the most elements the list may hold.
        capacity: usize,
    },
}

impl ValueKind {
    /// The kind's code in a region's kinds table (`FORMAT.md`, "Field kinds"): 0 for
    /// [`Plain`](Self::Plain) (never stored), then 1 text, 2 flag, 3 optional, 4 timestamp,
    /// 5 enum, 6 list.
    pub const fn code(&self) -> u32 {
        match self {
            ValueKind::Plain => 0,
            ValueKind::Text { .. } => 1,
            ValueKind::Flag => 2,
            ValueKind::Optional => 3,
            ValueKind::Timestamp => 4,
            ValueKind::Enum { .. } => 5,
            ValueKind::List { .. } => 6,
        }
    }

    /// The capacity of text (bytes) or of a list (elements); 0 for the other kinds.
    pub const fn capacity(&self) -> usize {
        match self {
            ValueKind::Text { capacity } | ValueKind::List { capacity } => *capacity,
            _ => 0,
        }
    }
}

/// The compile-time description of a [`ShmType`]: name, size, alignment, fields, fingerprint.
///
/// Built by `#[derive(ShmType)]` and by this crate's impls for primitives and arrays; read it
/// through [`ShmType::LAYOUT`]. Its [`Display`](fmt::Display) rendering is a readable
/// definition with offsets:
///
/// ```
/// use shmstore::ShmType;
///
/// #[derive(ShmType, Clone, Copy)]
/// #[repr(C)]
/// struct Point { x: f32, y: f32 }
///
/// let text = Point::LAYOUT.to_string();
/// assert!(text.starts_with("struct Point (size 8, align 4,"));
/// assert!(text.contains("@4 y: f32"));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct TypeLayout {
    name: &'static str,
    size: usize,
    align: usize,
    shape: Shape,
    fingerprint: u64,
    kind: ValueKind,
}

/// One field of a struct's [`TypeLayout`].
#[derive(Clone, Copy, Debug)]
pub struct Field {
    name: &'static str,
    offset: usize,
    layout: &'static TypeLayout,
}

impl Field {
    /// Describes a field. Used by the derive; the offset must be the compiler's.
    pub const fn new(name: &'static str, offset: usize, layout: &'static TypeLayout) -> Field {
        Field {
            name,
            offset,
            layout,
        }
    }

    /// The field's name as written in the struct (`"0"`, `"1"`… for tuple structs; raw
    /// identifiers without their `r#`).
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// Byte offset of the field from the start of the struct.
    pub const fn offset(&self) -> usize {
        self.offset
    }

    /// The layout of the field's type.
    pub const fn layout(&self) -> &'static TypeLayout {
        self.layout
    }
}

impl TypeLayout {
    /// The layout of a primitive.
    pub const fn primitive(primitive: Primitive) -> TypeLayout {
        let mut h = Fnv::new().str("primitive").str(primitive.name());
        h = h.usize(primitive.size());
        TypeLayout {
            name: primitive.name(),
            size: primitive.size(),
            align: primitive.size(),
            shape: Shape::Primitive(primitive),
            fingerprint: h.finish(),
            kind: ValueKind::Plain,
        }
    }

    /// The layout of `[element; len]`, whose size and alignment the compiler gives as `size`
    /// and `align`.
    ///
    /// # Panics
    ///
    /// At compile time, when `len` is 0: a zero-sized array has nothing to share.
    pub const fn array(
        element: &'static TypeLayout,
        len: usize,
        size: usize,
        align: usize,
    ) -> TypeLayout {
        assert!(
            len > 0,
            "a zero-length array cannot live in shared memory: it has no bytes to share; remove \
             the field"
        );
        let h = Fnv::new()
            .str("array")
            .usize(len)
            .u64(element.fingerprint)
            .usize(size)
            .usize(align);
        TypeLayout {
            name: "array",
            size,
            align,
            shape: Shape::Array { element, len },
            fingerprint: h.finish(),
            kind: ValueKind::Plain,
        }
    }

    /// The layout of a struct named `name` whose size and alignment the compiler gives as `size`
    /// and `align`, with `fields` in declaration order. Used by the derive.
    pub const fn structure(
        name: &'static str,
        size: usize,
        align: usize,
        fields: &'static [Field],
    ) -> TypeLayout {
        let mut h = Fnv::new()
            .str("struct")
            .str(name)
            .usize(size)
            .usize(align)
            .usize(fields.len());
        let mut i = 0;
        while i < fields.len() {
            let field = &fields[i];
            h = h
                .str(field.name)
                .usize(field.offset)
                .u64(field.layout.fingerprint);
            i += 1;
        }
        TypeLayout {
            name,
            size,
            align,
            shape: Shape::Struct { fields },
            fingerprint: h.finish(),
            kind: ValueKind::Plain,
        }
    }

    /// This layout, marked as holding a value of `kind` (see [`ValueKind`]). The size,
    /// alignment and fields are unchanged; the fingerprint then also covers the kind (its
    /// code, capacity, enum name and every variant's name and value), so that two enums of the
    /// same name and representation with other variants, for instance, do not share a region.
    /// [`ValueKind::Plain`] leaves the fingerprint as it is.
    pub const fn with_kind(self, kind: ValueKind) -> TypeLayout {
        let fingerprint = match kind {
            ValueKind::Plain => self.fingerprint,
            _ => {
                let (name, variants) = match kind {
                    ValueKind::Enum { name, variants } => (name, variants),
                    _ => ("", &[] as &[(&str, i128)]),
                };
                let mut h = Fnv::new()
                    .u64(self.fingerprint)
                    .str("kind")
                    .u64(kind.code() as u64)
                    .usize(kind.capacity())
                    .str(name)
                    .usize(variants.len());
                let mut i = 0;
                while i < variants.len() {
                    h = h.str(variants[i].0).bytes(&variants[i].1.to_le_bytes());
                    i += 1;
                }
                h.finish()
            }
        };
        TypeLayout {
            kind,
            fingerprint,
            ..self
        }
    }

    /// What the value means beyond its bytes: [`ValueKind::Plain`] unless a value type of
    /// [`shmstore::value`](crate::value) set it.
    pub const fn kind(&self) -> ValueKind {
        self.kind
    }

    /// The type's name: the struct's name (or its `#[shm(name = "...")]`), the primitive's
    /// spelling such as `"u32"`, or `"array"` (see [`type_name`](Self::type_name) for
    /// `[u32; 4]`).
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// `size_of` the type, in bytes.
    pub const fn size(&self) -> usize {
        self.size
    }

    /// `align_of` the type, in bytes.
    pub const fn align(&self) -> usize {
        self.align
    }

    /// Whether the type is a primitive, an array or a struct.
    pub const fn shape(&self) -> Shape {
        self.shape
    }

    /// The struct's fields in declaration order; empty for primitives and arrays.
    pub const fn fields(&self) -> &'static [Field] {
        match self.shape {
            Shape::Struct { fields } => fields,
            _ => &[],
        }
    }

    /// A 64-bit FNV-1a hash, computed at compile time, over the name, size and alignment of the
    /// type and, recursively, each field's name, offset and type. Two binaries share a region
    /// only when their fingerprints agree: reordering, renaming or retyping a field changes it,
    /// while a type alias and its target have the same one.
    ///
    /// ```
    /// use shmstore::ShmType;
    ///
    /// #[derive(ShmType, Clone, Copy)]
    /// #[repr(C)]
    /// struct A { x: u32, y: u32 }
    ///
    /// type B = A;
    /// const _: () = assert!(A::LAYOUT.fingerprint() == B::LAYOUT.fingerprint());
    /// assert_ne!(A::LAYOUT.fingerprint(), <[u32; 2]>::LAYOUT.fingerprint());
    /// ```
    pub const fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The Rust spelling of the type: `Limits`, `u32`, `[[u8; 4]; 2]`.
    pub fn type_name(&self) -> String {
        match self.shape {
            Shape::Array { element, len } => format!("[{}; {len}]", element.type_name()),
            _ => self.name.to_string(),
        }
    }

    /// Every primitive leaf of the type, flattened: a dotted path (`pos.x`), its offset from the
    /// start of the type, its primitive and how it repeats. An array of primitives (to any
    /// depth) is one leaf with one contiguous dimension; an array of structs adds a dimension
    /// to each leaf of the struct and `[]` to its path (`wheels[].pressure`). So the table's
    /// length depends on the type's shape, never on its array lengths. This is the field table
    /// stored in every region.
    ///
    /// ```
    /// use shmstore::layout::Dim;
    /// use shmstore::ShmType;
    ///
    /// #[derive(ShmType, Clone, Copy)]
    /// #[repr(C)]
    /// struct Wheel { pressure: f32, rpm: u32 }
    ///
    /// #[derive(ShmType, Clone, Copy)]
    /// #[repr(C)]
    /// struct Robot { id: u64, wheels: [Wheel; 4], samples: [[u16; 2]; 3], _pad: [u8; 4] }
    ///
    /// let leaves = Robot::LAYOUT.leaves();
    /// assert_eq!(leaves[1].path, "wheels[].pressure");
    /// assert_eq!(leaves[1].dims, [Dim { count: 4, stride: 8 }]);
    /// assert_eq!(leaves[3].path, "samples");
    /// assert_eq!(leaves[3].dims, [Dim { count: 6, stride: 2 }]);
    /// ```
    pub fn leaves(&self) -> Vec<Leaf> {
        let mut out = Vec::new();
        self.collect_leaves(String::new(), 0, &[], &mut out);
        out
    }

    fn collect_leaves(&self, path: String, base: usize, dims: &[Dim], out: &mut Vec<Leaf>) {
        match self.shape {
            Shape::Primitive(primitive) => out.push(Leaf {
                path,
                offset: base,
                primitive,
                dims: dims.to_vec(),
            }),
            Shape::Array { element, len } => {
                let mut dims = dims.to_vec();
                match element.primitive_run() {
                    // Arrays of primitives (to any depth) are contiguous: one dimension.
                    (Some(primitive), per_element) => {
                        dims.push(Dim {
                            count: len * per_element,
                            stride: primitive.size(),
                        });
                        out.push(Leaf {
                            path,
                            offset: base,
                            primitive,
                            dims,
                        });
                    }
                    (None, _) => {
                        dims.push(Dim {
                            count: len,
                            stride: element.size,
                        });
                        element.collect_leaves(format!("{path}[]"), base, &dims, out);
                    }
                }
            }
            Shape::Struct { fields } => {
                for field in fields {
                    field.layout.collect_leaves(
                        field_path(&path, field.name),
                        base + field.offset,
                        dims,
                        out,
                    );
                }
            }
        }
    }

    /// Every non-plain [`ValueKind`] inside the type, outermost first (a list before the text
    /// of its items), with the dotted path of the value that has it, spelled as
    /// [`leaves`](Self::leaves) spells paths (`service_name`, `peers[].name`, `ports.items[]`;
    /// empty for the top-level type itself): the kinds table stored in a region.
    pub(crate) fn kind_paths(&self) -> Vec<(String, ValueKind)> {
        let mut out = Vec::new();
        self.collect_kinds(String::new(), &mut out);
        out
    }

    /// Whether any part of the type has a non-plain kind: whether its region is format
    /// version 2. Without allocating, for the check on every open.
    pub(crate) fn has_kinds(&self) -> bool {
        self.kind != ValueKind::Plain
            || match self.shape {
                Shape::Primitive(_) => false,
                Shape::Array { element, .. } => element.has_kinds(),
                Shape::Struct { fields } => fields.iter().any(|f| f.layout.has_kinds()),
            }
    }

    fn collect_kinds(&self, path: String, out: &mut Vec<(String, ValueKind)>) {
        if self.kind != ValueKind::Plain {
            out.push((path.clone(), self.kind));
        }
        match self.shape {
            Shape::Primitive(_) => {}
            // As in `collect_leaves`: arrays of primitives hold no kinds, and arrays of structs
            // add `[]` to the path.
            Shape::Array { element, .. } => {
                if element.primitive_run().0.is_none() {
                    element.collect_kinds(format!("{path}[]"), out);
                }
            }
            Shape::Struct { fields } => {
                for field in fields {
                    field
                        .layout
                        .collect_kinds(field_path(&path, field.name), out);
                }
            }
        }
    }

    /// For a primitive or a (nested) array of one primitive: that primitive and how many of it
    /// one value holds.
    fn primitive_run(&self) -> (Option<Primitive>, usize) {
        match self.shape {
            Shape::Primitive(p) => (Some(p), 1),
            Shape::Array { element, len } => {
                let (p, n) = element.primitive_run();
                (p, n * len)
            }
            Shape::Struct { .. } => (None, 0),
        }
    }
}

/// The dotted path of the field `name` inside the value at `path` (`peers[].name`); a field of
/// the top-level type (empty `path`) is its bare name.
fn field_path(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// One primitive field of a flattened [`TypeLayout`]: see [`TypeLayout::leaves`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// Dotted path from the top-level type, such as `pos.x` or `wheels[].pressure`; empty for
    /// a top-level primitive or array of primitives.
    pub path: String,
    /// Offset of the first element from the start of the top-level type.
    pub offset: usize,
    /// The primitive type.
    pub primitive: Primitive,
    /// How the primitive repeats, outermost first: none for a scalar. Element `(i, j, …)` is at
    /// `offset + i * dims[0].stride + j * dims[1].stride + …`.
    pub dims: Vec<Dim>,
}

impl Leaf {
    /// How many primitives the leaf covers (the product of its dimensions' counts).
    pub fn count(&self) -> usize {
        self.dims.iter().map(|d| d.count).product()
    }
}

/// One dimension of a [`Leaf`]: `count` elements, `stride` bytes apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dim {
    /// Number of elements.
    pub count: usize,
    /// Bytes from one element to the next.
    pub stride: usize,
}

impl fmt::Display for TypeLayout {
    /// A readable definition: the header line, then one line per field with its offset.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.shape {
            Shape::Struct { fields } => {
                write!(
                    f,
                    "struct {} (size {}, align {}, fingerprint {:#018x})",
                    self.name, self.size, self.align, self.fingerprint
                )?;
                for field in fields {
                    write!(
                        f,
                        "\n  @{} {}: {}",
                        field.offset,
                        field.name,
                        field.layout.type_name()
                    )?;
                }
                Ok(())
            }
            _ => write!(
                f,
                "{} (size {}, align {}, fingerprint {:#018x})",
                self.type_name(),
                self.size,
                self.align,
                self.fingerprint
            ),
        }
    }
}

/// FNV-1a, 64-bit, usable in const context. Every input is length- or tag-prefixed so that
/// distinct field lists never hash the same byte stream.
#[derive(Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Fnv {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    pub(crate) const fn new() -> Fnv {
        Fnv(Self::OFFSET)
    }

    pub(crate) const fn bytes(self, bytes: &[u8]) -> Fnv {
        let mut h = self.0;
        let mut i = 0;
        while i < bytes.len() {
            h ^= bytes[i] as u64;
            h = h.wrapping_mul(Self::PRIME);
            i += 1;
        }
        Fnv(h)
    }

    pub(crate) const fn u64(self, v: u64) -> Fnv {
        self.bytes(&v.to_le_bytes())
    }

    pub(crate) const fn usize(self, v: usize) -> Fnv {
        self.u64(v as u64)
    }

    pub(crate) const fn str(self, s: &str) -> Fnv {
        self.usize(s.len()).bytes(s.as_bytes())
    }

    pub(crate) const fn finish(self) -> u64 {
        self.0
    }
}

macro_rules! impl_primitive {
    ($($ty:ty => $p:ident),* $(,)?) => {$(
        // The primitive's layout is size = align = width. Rust does not promise that alignment
        // (`u64` is 4-aligned on i686, `u128` was 8-aligned on x86-64 before Rust 1.77): a
        // target where it differs fails to build here instead of mis-describing the type.
        const _: () = assert!(
            core::mem::size_of::<$ty>() == Primitive::$p.size()
                && core::mem::align_of::<$ty>() == Primitive::$p.size(),
            concat!(stringify!($ty), " is not aligned to its width on this target")
        );

        // SAFETY: a fixed-width integer or float is `Pod` (every bit pattern valid, no padding,
        // no pointers), `Sync` and `'static`, has the same size on every target, and its
        // layout is exactly the primitive's: size = align = width, asserted at compile time
        // just above.
        unsafe impl ShmType for $ty {
            const LAYOUT: TypeLayout = TypeLayout::primitive(Primitive::$p);
        }
    )*};
}

impl_primitive!(
    u8 => U8, u16 => U16, u32 => U32, u64 => U64, u128 => U128,
    i8 => I8, i16 => I16, i32 => I32, i64 => I64, i128 => I128,
    f32 => F32, f64 => F64,
);

// SAFETY: an array of `Pod` elements is `Pod` (arrays have no padding between elements, and
// `T: ShmType` has none inside), `Sync` and `'static` when `T` is; its size and alignment are
// taken from the compiler, and its element layout is `T::LAYOUT`, which is exact by `T`'s own
// guarantee.
unsafe impl<T: ShmType, const N: usize> ShmType for [T; N] {
    const LAYOUT: TypeLayout = TypeLayout::array(
        &T::LAYOUT,
        N,
        core::mem::size_of::<[T; N]>(),
        core::mem::align_of::<[T; N]>(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, offset_of, size_of};

    #[test]
    fn primitive_layouts_match_the_compiler() {
        fn check<T: ShmType>() {
            assert_eq!(T::LAYOUT.size(), size_of::<T>(), "{}", T::LAYOUT.name());
            assert_eq!(T::LAYOUT.align(), align_of::<T>(), "{}", T::LAYOUT.name());
        }
        check::<u8>();
        check::<u16>();
        check::<u32>();
        check::<u64>();
        check::<u128>();
        check::<i8>();
        check::<i16>();
        check::<i32>();
        check::<i64>();
        check::<i128>();
        check::<f32>();
        check::<f64>();
        check::<[[u16; 3]; 5]>();
    }

    #[test]
    fn primitive_codes_round_trip() {
        for p in Primitive::ALL {
            assert_eq!(Primitive::from_code(p.code()), Some(p));
        }
        assert_eq!(Primitive::from_code(0), None);
        assert_eq!(Primitive::from_code(13), None);
    }

    #[test]
    fn every_primitive_and_array_length_has_its_own_fingerprint() {
        let mut seen = std::collections::HashSet::new();
        for p in Primitive::ALL {
            assert!(seen.insert(TypeLayout::primitive(p).fingerprint()));
        }
        assert!(seen.insert(<[u8; 4]>::LAYOUT.fingerprint()));
        assert!(seen.insert(<[u8; 5]>::LAYOUT.fingerprint()));
        assert!(seen.insert(<[[u8; 2]; 2]>::LAYOUT.fingerprint()));
        assert!(seen.insert(<[u16; 2]>::LAYOUT.fingerprint()));
    }

    use shmstore_derive::ShmType;

    #[derive(ShmType, Clone, Copy)]
    #[repr(C)]
    struct Pos {
        x: f32,
        y: f32,
    }

    #[derive(ShmType, Clone, Copy)]
    #[repr(C)]
    struct Robot {
        id: u64,
        pos: Pos,
        wheels: [Pos; 2],
        samples: [[u16; 2]; 3],
        _pad: [u8; 4],
    }

    mod reordered {
        use super::*;
        #[derive(ShmType, Clone, Copy)]
        #[repr(C)]
        pub struct Pos {
            pub y: f32,
            pub x: f32,
        }
    }
    mod renamed {
        use super::*;
        #[derive(ShmType, Clone, Copy)]
        #[repr(C)]
        pub struct Pos {
            pub x: f32,
            pub why: f32,
        }
    }
    mod retyped {
        use super::*;
        #[derive(ShmType, Clone, Copy)]
        #[repr(C)]
        pub struct Pos {
            pub x: f32,
            pub y: u32,
        }
    }
    mod aliased {
        use super::*;
        pub type Float = f32;
        #[derive(ShmType, Clone, Copy)]
        #[repr(C)]
        pub struct Pos {
            pub x: Float,
            pub y: f32,
        }
    }

    #[test]
    fn fingerprint_is_equal_for_an_alias_and_its_target() {
        type Alias = Pos;
        assert_eq!(Alias::LAYOUT.fingerprint(), Pos::LAYOUT.fingerprint());
        assert_eq!(
            aliased::Pos::LAYOUT.fingerprint(),
            Pos::LAYOUT.fingerprint(),
            "a field typed through an alias describes the same layout"
        );
    }

    #[test]
    fn fingerprint_changes_when_a_field_is_reordered_renamed_or_retyped() {
        let base = Pos::LAYOUT.fingerprint();
        assert_ne!(reordered::Pos::LAYOUT.fingerprint(), base);
        assert_ne!(renamed::Pos::LAYOUT.fingerprint(), base);
        assert_ne!(retyped::Pos::LAYOUT.fingerprint(), base);
    }

    #[test]
    fn fingerprint_of_a_nested_type_changes_with_its_inner_type() {
        #[derive(ShmType, Clone, Copy)]
        #[repr(C)]
        struct Outer {
            p: Pos,
        }
        #[derive(ShmType, Clone, Copy)]
        #[repr(C)]
        #[shm(name = "Outer")]
        struct Outer2 {
            p: reordered::Pos,
        }
        assert_eq!(Outer::LAYOUT.name(), Outer2::LAYOUT.name());
        assert_ne!(Outer::LAYOUT.fingerprint(), Outer2::LAYOUT.fingerprint());
    }

    #[test]
    fn descriptor_offsets_equal_offset_of() {
        let f = Robot::LAYOUT.fields();
        let names: Vec<_> = f.iter().map(|f| f.name()).collect();
        assert_eq!(names, ["id", "pos", "wheels", "samples", "_pad"]);
        assert_eq!(f[0].offset(), offset_of!(Robot, id));
        assert_eq!(f[1].offset(), offset_of!(Robot, pos));
        assert_eq!(f[2].offset(), offset_of!(Robot, wheels));
        assert_eq!(f[3].offset(), offset_of!(Robot, samples));
        assert_eq!(f[4].offset(), offset_of!(Robot, _pad));
        assert_eq!(Robot::LAYOUT.size(), size_of::<Robot>());
        assert_eq!(Robot::LAYOUT.align(), align_of::<Robot>());
        assert_eq!(f[1].layout().fields()[1].offset(), offset_of!(Pos, y));
    }

    #[test]
    fn leaves_flatten_structs_and_arrays_of_structs() {
        let leaves = Robot::LAYOUT.leaves();
        let rendered: Vec<_> = leaves
            .iter()
            .map(|l| {
                let dims: Vec<_> = l
                    .dims
                    .iter()
                    .map(|d| format!("{}/{}", d.count, d.stride))
                    .collect();
                format!("{}@{}:{}{:?}", l.path, l.offset, l.primitive.name(), dims)
            })
            .collect();
        assert_eq!(
            rendered,
            [
                "id@0:u64[]",
                "pos.x@8:f32[]",
                "pos.y@12:f32[]",
                "wheels[].x@16:f32[\"2/8\"]",
                "wheels[].y@20:f32[\"2/8\"]",
                "samples@32:u16[\"6/2\"]",
                "_pad@44:u8[\"4/1\"]",
            ]
        );
        assert_eq!(leaves[3].count(), 2);
        assert_eq!(leaves[0].count(), 1);
    }

    #[test]
    fn leaves_do_not_grow_with_array_lengths() {
        #[derive(ShmType, Clone, Copy)]
        #[repr(C)]
        struct Grid {
            cells: [[Pos; 300]; 200],
        }
        let leaves = Grid::LAYOUT.leaves();
        assert_eq!(leaves.len(), 2);
        assert_eq!(leaves[0].path, "cells[][].x");
        assert_eq!(
            leaves[0].dims,
            [
                Dim {
                    count: 200,
                    stride: 2400
                },
                Dim {
                    count: 300,
                    stride: 8
                }
            ]
        );
        assert_eq!(leaves[1].offset, 4);
        assert_eq!(leaves[1].count(), 60_000);
    }

    #[test]
    fn display_renders_fields_with_offsets() {
        let text = Robot::LAYOUT.to_string();
        assert!(text.contains("@16 wheels: [Pos; 2]"), "{text}");
        assert!(text.contains("@32 samples: [[u16; 2]; 3]"), "{text}");
    }
}
