//! C structs rebuilt from a region's stored field table.
//!
//! The descriptor flattens a type to its primitive leaves (`pos.x`, `wheels[].pressure` with
//! one dimension (count, stride)), without the names, sizes or alignments of the structs in
//! between. The paths still say how the leaves nest: every `.` enters a struct and every `[]`
//! an array of structs whose dimension is the next one of the leaf. So the structs are rebuilt
//! as a tree: a struct starts at its first leaf, an array element's size is its stride, and any
//! gap left is filled with an explicit `uint8_t _padN[]` member. Every member and every leaf
//! gets a `_Static_assert` on its offset, every struct one on its size: a header that does not
//! reproduce the stored layout byte for byte does not compile.
//!
//! Where C's natural alignment would move a member (a Rust `packed` struct) or grow a struct,
//! the struct is declared `__attribute__((packed))` and keeps its explicit padding; the
//! top-level type also gets `aligned(N)` to match the stored `payload_align`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use shmstore::inspect::FieldInfo;
use shmstore::layout::Primitive;

/// A layout this module cannot express as C structs (never produced by the derive).
#[derive(Debug)]
pub struct Unsupported(pub String);

/// The C declarations for a type: every struct, innermost first, and the assertions.
pub struct CTypes {
    /// The top-level struct's name.
    pub top: String,
    /// Struct definitions, each followed by its assertions.
    pub definitions: String,
    /// Offsets of the stored fields inside nested structs, through the top-level struct, as
    /// `_Static_assert`s (`offsetof(Robot, wheels[0].rpm) == 28`).
    pub field_asserts: String,
    /// Every identifier the declarations take from the region (struct and member names,
    /// not the `_padN` fillers): the header suspends any macro of that name around them
    /// (`#pragma push_macro`), since `st_atime` or `EINVAL` may be one where it is included.
    pub identifiers: BTreeSet<String>,
}

#[derive(Debug, Default)]
struct Node {
    members: Vec<(String, Child)>,
    /// Where each member's name is in `members`: a forged descriptor with a million fields
    /// must not make the lookups quadratic.
    index: BTreeMap<String, usize>,
}

/// The most structs a field path may pass through (`a.b.c` passes through two). Rust types
/// nest a few levels; a forged path 20 000 levels deep would overflow the stack of the
/// recursive tree walk below (and of the tree's drop).
pub const MAX_NESTING: usize = 64;

#[derive(Debug)]
enum Child {
    Leaf {
        primitive: Primitive,
        /// Absolute offset of the first element in the top-level type.
        offset: u64,
        /// `Some(n)` for a (flattened, contiguous) array of primitives.
        count: Option<u64>,
    },
    Struct {
        node: Node,
        /// One (count, stride) per `[]` after the member's name, outermost first.
        arrays: Vec<(u64, u64)>,
    },
}

/// A struct ready to print.
struct CStruct {
    name: String,
    members: Vec<CMember>,
    size: u64,
    packed: bool,
    align_attr: Option<u64>,
}

struct CMember {
    name: String,
    /// The C type: `uint32_t` or a struct name.
    c_type: String,
    /// `[4]`, `[2][3]`, or empty.
    suffix: String,
    offset: u64,
    /// False for padding: it gets no assertion.
    real: bool,
}

/// Builds the C structs for a type of `size` bytes and alignment `align` whose stored field
/// table is `fields`; `top` names the top-level struct.
pub fn build(
    top: &str,
    fields: &[FieldInfo],
    size: u64,
    align: u64,
) -> Result<CTypes, Unsupported> {
    for field in fields {
        check_field(field, size)?;
    }
    let mut root = Node::default();
    for field in fields {
        insert(&mut root, field)?;
    }
    let mut structs: Vec<CStruct> = Vec::new();
    let mut taken = BTreeSet::new();
    taken.insert(top.to_string());
    let base = node_base(&root).unwrap_or(0);
    if base != 0 {
        return Err(Unsupported(format!(
            "the first field is at offset {base}, not 0"
        )));
    }
    let (_, top_align) = emit(top, &root, 0, Some(size), &mut structs, &mut taken)?;
    // The top-level type's alignment is stored: match it exactly.
    let top_struct = structs
        .last_mut()
        .expect("emit pushes the top-level struct last");
    if align < top_align {
        top_struct.packed = true;
    }
    if align > 1 && (top_struct.packed || align > top_align) {
        top_struct.align_attr = Some(align);
    }

    let mut definitions = String::new();
    for s in &structs {
        definitions.push_str(&s.render());
        definitions.push('\n');
    }
    let mut field_asserts = String::new();
    for field in fields {
        let designator = designator(field);
        if !designator.contains(['.', '[']) {
            continue; // a member of the top-level struct: asserted with it
        }
        // The path is checked (`check_field`): it is an identifier path, safe in the message.
        let _ = writeln!(
            field_asserts,
            "_Static_assert(offsetof({top}, {designator}) == {}, \"field `{}` is at offset {} \
             of `{top}`\");",
            field.offset, field.path, field.offset
        );
    }
    let identifiers = structs
        .iter()
        .flat_map(|s| {
            let members = s.members.iter().filter(|m| m.real).map(|m| m.name.clone());
            std::iter::once(s.name.clone()).chain(members)
        })
        .collect();
    Ok(CTypes {
        top: top.to_string(),
        definitions,
        field_asserts,
        identifiers,
    })
}

/// Splits `wheels[].pressure` into `[("wheels", 1), ("pressure", 0)]`: each name with the
/// number of `[]` after it. The empty path of a primitive type is one unnamed segment.
fn segments(path: &str) -> Vec<(String, usize)> {
    path.split('.')
        .map(|segment| {
            let name = segment.trim_end_matches("[]");
            let arrays = (segment.len() - name.len()) / 2;
            (name.to_string(), arrays)
        })
        .collect()
}

/// Whether `segment` of a field path is a name C can spell: an ASCII identifier, or the digits
/// of a tuple field (`0`, spelled `_0`).
pub fn is_c_name(segment: &str) -> bool {
    let mut chars = segment.chars();
    match chars.next() {
        None => false,
        Some(first) if first.is_ascii_digit() => segment.chars().all(|c| c.is_ascii_digit()),
        Some(first) => {
            (first.is_ascii_alphabetic() || first == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
    }
}

/// Refuses a field the header could not spell safely or that lies outside the type: its path
/// must be a C identifier path (`pos.x`, `wheels[].rpm`, `[].x` or empty for a top-level
/// array or primitive), nest at most [`MAX_NESTING`] structs, and every array of it must lie
/// inside the type's `size` bytes. A region's descriptor is anyone's text: nothing of it
/// reaches the header unless it passed this.
fn check_field(field: &FieldInfo, size: u64) -> Result<(), Unsupported> {
    let shown = shmstore::printable(&field.path);
    let segments: Vec<&str> = field.path.split('.').collect();
    if segments.len() > MAX_NESTING + 1 {
        return Err(Unsupported(format!(
            "field `{shown}` is nested {} structs deep (at most {MAX_NESTING})",
            segments.len() - 1
        )));
    }
    for (i, segment) in segments.iter().enumerate() {
        let name = segment.trim_end_matches("[]");
        // Only the first segment may be unnamed: the whole value (`[].x`, or empty).
        let unnamed_top = i == 0 && name.is_empty() && (segments.len() == 1 || !segment.is_empty());
        if !(is_c_name(name) || unnamed_top) {
            return Err(Unsupported(format!(
                "field `{shown}`: `{}` is not a C identifier",
                shmstore::printable(segment)
            )));
        }
    }
    let Some(primitive) = field.primitive else {
        return Err(Unsupported(format!(
            "field `{shown}` has a primitive code this build does not know"
        )));
    };
    // Where the field's last element ends: the offset, plus (count - 1) × stride per
    // dimension, plus the primitive. A field with a dimension of length 0 has no element and
    // only its offset must be inside. And each array (count × stride) lies inside the type,
    // as the derive lays them out: that bounds every size the header declares.
    let empty = field.dims.iter().any(|(count, _)| *count == 0);
    let mut end = Some(field.offset);
    if !empty {
        end = end.and_then(|e| e.checked_add(primitive.size() as u64));
        for (count, stride) in &field.dims {
            end = end.and_then(|e| e.checked_add((count - 1).checked_mul(*stride)?));
        }
    }
    for (count, stride) in &field.dims {
        if count.checked_mul(*stride).is_none_or(|bytes| bytes > size) {
            end = None;
        }
    }
    if end.is_none_or(|end| end > size) {
        return Err(Unsupported(format!(
            "field `{shown}` at offset {} with dimensions {:?} does not lie inside the {size} \
             bytes of the type",
            field.offset, field.dims
        )));
    }
    Ok(())
}

fn insert(root: &mut Node, field: &FieldInfo) -> Result<(), Unsupported> {
    let primitive = field.primitive.ok_or_else(|| {
        Unsupported(format!(
            "field `{}` has a primitive code this build does not know",
            field.path
        ))
    })?;
    let segments = segments(&field.path);
    let struct_dims: usize = segments.iter().map(|(_, n)| n).sum();
    let count = match field.dims.len().checked_sub(struct_dims) {
        Some(0) => None,
        Some(1) => {
            let (count, stride) = field.dims[struct_dims];
            if stride != primitive.size() as u64 {
                return Err(Unsupported(format!(
                    "field `{}`: an array of {} with stride {stride}",
                    field.path,
                    primitive.name()
                )));
            }
            Some(count)
        }
        _ => {
            return Err(Unsupported(format!(
                "field `{}` has {} dimensions for {struct_dims} arrays of structs",
                field.path,
                field.dims.len()
            )))
        }
    };
    let mut node = root;
    let mut dims = field.dims.iter().copied();
    let (last, inner) = segments
        .split_last()
        .expect("split always yields a segment");
    if last.1 != 0 {
        return Err(Unsupported(format!(
            "field `{}` ends in an array of structs",
            field.path
        )));
    }
    for (name, arrays) in inner {
        let arrays: Vec<(u64, u64)> = dims.by_ref().take(*arrays).collect();
        let at = match node.index.get(name) {
            Some(&at) => at,
            None => {
                node.members.push((
                    name.clone(),
                    Child::Struct {
                        node: Node::default(),
                        arrays: arrays.clone(),
                    },
                ));
                node.index.insert(name.clone(), node.members.len() - 1);
                node.members.len() - 1
            }
        };
        node = match &mut node.members[at].1 {
            Child::Struct {
                node: inner,
                arrays: known,
            } if *known == arrays => inner,
            _ => {
                return Err(Unsupported(format!(
                    "field `{}`: `{name}` is both a struct and something else",
                    field.path
                )))
            }
        };
    }
    if node.index.contains_key(&last.0) {
        return Err(Unsupported(format!("field `{}` appears twice", field.path)));
    }
    node.index.insert(last.0.clone(), node.members.len());
    node.members.push((
        last.0.clone(),
        Child::Leaf {
            primitive,
            offset: field.offset,
            count,
        },
    ));
    Ok(())
}

/// Where a struct starts: at its first leaf (the derive leaves no padding, so no struct
/// starts with a gap).
fn node_base(node: &Node) -> Option<u64> {
    node.members.iter().filter_map(|(_, c)| child_base(c)).min()
}

fn child_base(child: &Child) -> Option<u64> {
    match child {
        Child::Leaf { offset, .. } => Some(*offset),
        Child::Struct { node, .. } => node_base(node),
    }
}

/// Prints `node` as struct `name` (after the structs it contains) and returns its size and
/// C alignment. `size` is known for the top level and for array elements (the stride).
fn emit(
    name: &str,
    node: &Node,
    base: u64,
    size: Option<u64>,
    out: &mut Vec<CStruct>,
    taken: &mut BTreeSet<String>,
) -> Result<(u64, u64), Unsupported> {
    // (member, offset in this struct, size, C alignment)
    let mut laid: Vec<(CMember, u64, u64)> = Vec::new();
    for (member_name, child) in &node.members {
        let c_name = c_identifier(member_name);
        let Some(child_at) = child_base(child) else {
            continue; // an empty struct (or array of length 0) takes no bytes
        };
        let offset = child_at - base;
        match child {
            Child::Leaf {
                primitive, count, ..
            } => {
                let one = primitive.size() as u64;
                let total = one * count.unwrap_or(1);
                let suffix = count.map_or_else(String::new, |n| format!("[{n}]"));
                laid.push((
                    CMember {
                        name: c_name,
                        c_type: c_type(*primitive).to_string(),
                        suffix,
                        offset,
                        real: true,
                    },
                    total,
                    one,
                ));
            }
            Child::Struct {
                node: inner,
                arrays,
            } => {
                let struct_name = unique(&format!("{name}_{c_name}"), taken);
                let element_size = arrays.last().map(|(_, stride)| *stride);
                for pair in arrays.windows(2) {
                    if pair[0].1 != pair[1].0 * pair[1].1 {
                        return Err(Unsupported(format!(
                            "`{member_name}`: nested array strides {} and {}x{} disagree",
                            pair[0].1, pair[1].0, pair[1].1
                        )));
                    }
                }
                let (inner_size, inner_align) =
                    emit(&struct_name, inner, child_at, element_size, out, taken)?;
                let total = arrays
                    .first()
                    .map_or(inner_size, |(count, stride)| count * stride);
                let suffix: String = arrays.iter().map(|(n, _)| format!("[{n}]")).collect();
                laid.push((
                    CMember {
                        name: c_name,
                        c_type: struct_name,
                        suffix,
                        offset,
                        real: true,
                    },
                    total,
                    inner_align,
                ));
            }
        }
    }
    laid.sort_by_key(|(m, _, _)| m.offset);

    let mut members = Vec::new();
    let mut cursor = 0u64;
    let mut align = 1u64;
    let mut packed = false;
    let mut pads = 0;
    for (member, bytes, member_align) in laid {
        if member.offset < cursor {
            return Err(Unsupported(format!(
                "`{name}.{}` at offset {} overlaps the member before it",
                member.name, member.offset
            )));
        }
        if member.offset > cursor {
            members.push(padding(&mut pads, cursor, member.offset - cursor));
        }
        if member.offset % member_align != 0 {
            packed = true;
        }
        align = align.max(member_align);
        cursor = member.offset + bytes;
        members.push(member);
    }
    let size = size.unwrap_or(cursor);
    if size < cursor {
        return Err(Unsupported(format!(
            "`{name}` has {cursor} bytes of fields in {size} bytes"
        )));
    }
    if size > cursor {
        members.push(padding(&mut pads, cursor, size - cursor));
    }
    if size % align != 0 {
        // C would round the size up to the alignment: only a packed struct keeps it.
        packed = true;
    }
    if packed {
        align = 1;
    }
    out.push(CStruct {
        name: name.to_string(),
        members,
        size,
        packed,
        align_attr: None,
    });
    Ok((size, align))
}

fn padding(pads: &mut usize, offset: u64, bytes: u64) -> CMember {
    let member = CMember {
        name: format!("_pad{pads}"),
        c_type: "uint8_t".to_string(),
        suffix: format!("[{bytes}]"),
        offset,
        real: false,
    };
    *pads += 1;
    member
}

impl CStruct {
    fn render(&self) -> String {
        let mut attrs = Vec::new();
        if self.packed {
            attrs.push("packed".to_string());
        }
        if let Some(align) = self.align_attr {
            attrs.push(format!("aligned({align})"));
        }
        let attr = if attrs.is_empty() {
            String::new()
        } else {
            format!(" __attribute__(({}))", attrs.join(", "))
        };
        let mut s = format!("typedef struct{attr} {} {{\n", self.name);
        for m in &self.members {
            let _ = writeln!(
                s,
                "    {} {}{}; /* offset {} */",
                m.c_type, m.name, m.suffix, m.offset
            );
        }
        let _ = writeln!(s, "}} {};", self.name);
        for m in self.members.iter().filter(|m| m.real) {
            let _ = writeln!(
                s,
                "_Static_assert(offsetof({0}, {1}) == {2}, \"{0}.{1} is at offset {2}\");",
                self.name, m.name, m.offset
            );
        }
        let _ = writeln!(
            s,
            "_Static_assert(sizeof({0}) == {1}, \"{0} is {1} bytes\");",
            self.name, self.size
        );
        s
    }
}

/// `wheels[0].pressure`: the member designator of a field's first element, for `offsetof`.
fn designator(field: &FieldInfo) -> String {
    segments(&field.path)
        .iter()
        .map(|(name, arrays)| format!("{}{}", c_identifier(name), "[0]".repeat(*arrays)))
        .collect::<Vec<_>>()
        .join(".")
}

/// The C type of a primitive.
pub fn c_type(primitive: Primitive) -> &'static str {
    match primitive {
        Primitive::U8 => "uint8_t",
        Primitive::U16 => "uint16_t",
        Primitive::U32 => "uint32_t",
        Primitive::U64 => "uint64_t",
        Primitive::U128 => "unsigned __int128",
        Primitive::I8 => "int8_t",
        Primitive::I16 => "int16_t",
        Primitive::I32 => "int32_t",
        Primitive::I64 => "int64_t",
        Primitive::I128 => "__int128",
        Primitive::F32 => "float",
        Primitive::F64 => "double",
    }
}

/// Words a Rust field may be called that C reserves (keywords of C11, GNU C and C23), and
/// macros the header itself uses inside its declarations or that glibc or GCC predefine:
/// such members get a trailing `_`. Any other macro of the same name is suspended around the
/// declarations instead (see [`CTypes::identifiers`]).
#[rustfmt::skip]
const C_RESERVED: &[&str] = &[
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef",
    "union", "unsigned", "void", "volatile", "while", "bool", "true", "false", "errno", "linux",
    "unix", "i386", "offsetof", "assert", "stdin", "stdout", "stderr", "NULL", "EOF", "asm",
    "typeof", "typeof_unqual", "alignas", "alignof", "constexpr", "nullptr", "static_assert",
    "thread_local",
];

/// A C identifier for a Rust name: tuple fields (`0`) become `_0`, reserved words get a `_`,
/// the empty name of a primitive type is `value`. Names C reserves for the implementation
/// (`__x`, `_X`: `_Static_assert` is a keyword), the header's own prefix (`shmstore_`,
/// `SHMSTORE_`, in any case) and its padding members (`_pad0`) get a `_` too, so that none can
/// collide.
pub fn c_identifier(name: &str) -> String {
    let mut id: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if id.is_empty() {
        id = "value".to_string();
    }
    if id.starts_with(|c: char| c.is_ascii_digit()) {
        id.insert(0, '_');
    }
    let implementation = id.starts_with("__")
        || (id.starts_with('_') && id[1..].starts_with(|c: char| c.is_ascii_uppercase()));
    let ours = id.to_ascii_lowercase().starts_with("shmstore_") || id.starts_with("_pad");
    if C_RESERVED.contains(&id.as_str()) || implementation || ours {
        id.push('_');
    }
    id
}

/// Whether a stored type name can name the C struct as it is: an identifier that starts with
/// an ASCII capital and has a lower-case letter (`Robot`, `GatewayLimits`). C and POSIX name
/// nothing that way (their types are `lower_case`, `*_t` or `FILE`, their macros upper case),
/// so such a typedef cannot clash with what a system header declares (`pthread_mutex_t`,
/// `stat`, `timespec`, `time`); nor may it start with the header's own prefix (`Shmstore_`).
/// Any other name is replaced.
pub fn is_own_type_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_uppercase())
        && name.contains(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.ends_with("_t")
        && !name.to_ascii_lowercase().starts_with("shmstore_")
}

fn unique(wanted: &str, taken: &mut BTreeSet<String>) -> String {
    let mut name = wanted.to_string();
    let mut n = 2;
    while !taken.insert(name.clone()) {
        name = format!("{wanted}_{n}");
        n += 1;
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_names_and_struct_arrays() {
        assert_eq!(
            segments("cells[][].x"),
            [("cells".to_string(), 2), ("x".to_string(), 0)]
        );
        assert_eq!(segments(""), [(String::new(), 0)]);
        assert_eq!(segments("[].x"), [(String::new(), 1), ("x".to_string(), 0)]);
    }

    #[test]
    fn rust_names_become_c_identifiers() {
        assert_eq!(c_identifier("rate_per_s"), "rate_per_s");
        assert_eq!(c_identifier("0"), "_0");
        assert_eq!(c_identifier("int"), "int_");
        assert_eq!(c_identifier(""), "value");
        assert_eq!(c_identifier("r#type"), "r_type");
        assert_eq!(c_identifier("_Static_assert"), "_Static_assert_");
        assert_eq!(c_identifier("_pad0"), "_pad0_");
        assert_eq!(c_identifier("SHMSTORE_TYPE_SIZE"), "SHMSTORE_TYPE_SIZE_");
        assert_eq!(c_identifier("Shmstore_x"), "Shmstore_x_");
        assert_eq!(c_identifier("_x"), "_x");
    }

    #[test]
    fn only_capitalised_names_keep_their_type_name() {
        assert!(is_own_type_name("Robot"));
        assert!(is_own_type_name("Gateway_Limits2"));
        for name in [
            "pthread_mutex_t",
            "stat",
            "FILE",
            "EINVAL",
            "Robot_t",
            "_Robot",
            "R",
            "Shmstore_Region",
        ] {
            assert!(!is_own_type_name(name), "{name}");
        }
    }
}
