//! Typed values of any region, for tools: the bytes of a value decoded by the region's stored
//! field table and kinds table (text, flags, optional values, timestamps, enums, lists), and
//! text parsed into the bytes to write (`shmstore get` and `shmstore set`).
//!
//! Everything here works from what the region says about itself (a peer may have written any
//! bytes and any descriptor the reader accepted), so every read is bounded by the value's bytes
//! and a value that cannot be read is reported, never a panic.

use std::fmt;

use crate::error::{Error, Result};
use crate::format::{
    integer_range, join_path, outer_dims, Descriptor, KindEntry, PathIndex, StoredKind,
};
use crate::inspect::{FieldInfo, Scalar};
use crate::layout::Primitive;
use crate::value::{Timestamp, ValueError};

/// One value of a region, decoded by its kind: what `shmstore get` prints and `--json` emits.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// A plain number (a primitive field).
    Number(Scalar),
    /// Text ([`FixedStr`](crate::value::FixedStr)); an error when the stored length is above
    /// the capacity or the bytes are not UTF-8.
    Text(std::result::Result<String, ValueError>),
    /// A flag ([`Flag`](crate::value::Flag)).
    Flag(bool),
    /// A timestamp ([`Timestamp`]); displays as RFC 3339.
    Timestamp(Timestamp),
    /// An enum value ([`EnumField`](crate::value::EnumField)): the variant's name, or `None`
    /// when the stored value names no variant (a newer writer's, or a corrupt one).
    Enum {
        /// The variant's name, if the value names one.
        variant: Option<String>,
        /// The stored value.
        raw: i128,
    },
    /// An optional value ([`Opt`](crate::value::Opt)).
    Optional(Option<Box<Value>>),
    /// A list: a [`FixedVec`](crate::value::FixedVec)'s elements (an error when the stored
    /// length is above the capacity), an array's elements, or an array of structs.
    List(std::result::Result<Vec<Value>, ValueError>),
    /// A struct: its fields in declaration order.
    Struct(Vec<(String, Value)>),
    /// Bytes that cannot be decoded: outside the value that was read (the region could not
    /// be read), or a primitive this build does not know.
    Unreadable,
}

impl fmt::Display for Value {
    /// Text quoted (with Rust's escapes), flags as `true`/`false`, enums by variant name (the
    /// raw value with `(unknown variant)` otherwise), timestamps in RFC 3339, an absent
    /// optional value as `none`, lists as `[a, b]`, structs as `{ a: 1, b: 2 }`, and a value
    /// that cannot be read as `<error: why>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Number(n) => write!(f, "{n}"),
            Value::Text(Ok(text)) => write!(f, "{text:?}"),
            Value::Text(Err(e)) | Value::List(Err(e)) => write!(f, "<error: {e}>"),
            Value::Flag(b) => write!(f, "{b}"),
            Value::Timestamp(t) => write!(f, "{t}"),
            Value::Enum {
                variant: Some(name),
                ..
            } => write!(f, "{name}"),
            Value::Enum { variant: None, raw } => write!(f, "{raw} (unknown variant)"),
            Value::Optional(None) => write!(f, "none"),
            Value::Optional(Some(v)) => write!(f, "{v}"),
            Value::List(Ok(items)) => {
                write!(f, "[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{item}")?;
                }
                write!(f, "]")
            }
            Value::Struct(fields) => {
                write!(f, "{{ ")?;
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{name}: {value}")?;
                }
                write!(f, " }}")
            }
            Value::Unreadable => write!(f, "?"),
        }
    }
}

/// Bytes to store at `offset` in a value (from its first byte), as
/// [`Inspector::parse_assignment`](crate::inspect::Inspector::parse_assignment) computes them and
/// [`Editor::commit`](crate::inspect::Editor::commit) applies them, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByteWrite {
    /// The offset from the start of the value.
    pub offset: u64,
    /// The bytes to store there.
    pub bytes: Vec<u8>,
}

/// A region's stored type as the untyped tools ([`Inspector`](crate::inspect::Inspector),
/// [`Editor`](crate::inspect::Editor)) hold it: its name and its field and kinds tables,
/// decoded from the descriptor.
pub(crate) struct StoredType {
    pub(crate) type_name: String,
    pub(crate) fields: Vec<FieldInfo>,
    pub(crate) kinds: Vec<KindEntry>,
}

impl StoredType {
    /// The type the descriptor bytes of region `name` describe, as of `format_version`.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] when the bytes are not a descriptor of that format version.
    pub(crate) fn decode(name: &str, descriptor: &[u8], format_version: u32) -> Result<Self> {
        let descriptor = Descriptor::decode(descriptor, format_version)
            .map_err(|why| Error::corrupt(name, why))?;
        Ok(StoredType {
            type_name: descriptor.type_name,
            fields: descriptor
                .fields
                .iter()
                .map(FieldInfo::from_descriptor)
                .collect(),
            kinds: descriptor.kinds,
        })
    }

    /// The tables, indexed, for region `name` whose values are `size` bytes.
    pub(crate) fn schema<'a>(&'a self, name: &'a str, size: u64) -> Schema<'a> {
        Schema::new(name, &self.fields, &self.kinds, size)
    }
}

/// A region's stored field table and kinds table, read together, indexed by path (a forged
/// descriptor may hold hundreds of thousands of entries).
pub(crate) struct Schema<'a> {
    /// The region's name, for messages.
    name: &'a str,
    fields: PathIndex<'a, FieldInfo>,
    kinds: PathIndex<'a, KindEntry>,
    /// The value's size in bytes: no field of a sound layout is larger, so a capacity or
    /// width above it comes from a forged descriptor and must not size an allocation.
    size: u64,
    /// The bytes the field table's leaves take together (saturated). The leaves of a sound
    /// layout tile the value (a `ShmType` has no padding), so more than `size` means a forged
    /// table, whose arrays could make a 100-byte value decode as millions of values.
    leaf_bytes: u128,
}

/// Why text cannot be set into a field: [`Error::InvalidField`].
fn invalid(name: &str, field: &str, reason: impl Into<String>) -> Error {
    Error::InvalidField {
        name: name.to_string(),
        field: field.to_string(),
        reason: reason.into(),
    }
}

impl<'a> Schema<'a> {
    pub(crate) fn new(
        name: &'a str,
        fields: &'a [FieldInfo],
        kinds: &'a [KindEntry],
        size: u64,
    ) -> Self {
        let leaf_bytes = fields
            .iter()
            .map(|field| {
                let width = field.primitive.map_or(1, |p| p.size() as u128);
                field
                    .dims
                    .iter()
                    .fold(width, |n, (count, _)| n.saturating_mul(u128::from(*count)))
            })
            .fold(0u128, u128::saturating_add);
        Schema {
            name,
            fields: PathIndex::new(fields, |f| f.path.as_str()),
            kinds: PathIndex::new(kinds, |k| k.path.as_str()),
            size,
            leaf_bytes,
        }
    }

    /// [`Error::Corrupt`] when the field table claims more bytes than the value has.
    fn check_tiles(&self) -> Result<()> {
        if self.leaf_bytes > u128::from(self.size) {
            return Err(Error::corrupt(
                self.name,
                format!(
                    "its descriptor's fields take {} bytes, more than the {}-byte value: the \
                     descriptor is corrupt; recreate the region",
                    self.leaf_bytes, self.size
                ),
            ));
        }
        Ok(())
    }

    /// `bytes`, the size a field's stored layout gives one of its parts, if the value holds
    /// that many bytes; an error saying the region is corrupt otherwise.
    fn room(&self, path: &str, bytes: u64) -> Result<usize> {
        match usize::try_from(bytes) {
            Ok(room) if bytes <= self.size => Ok(room),
            _ => Err(invalid(
                self.name,
                path,
                format!(
                    "its stored layout gives it {bytes} bytes, more than the whole {}-byte \
                     value: the region's descriptor is corrupt; recreate the region",
                    self.size
                ),
            )),
        }
    }

    fn kind_at(&self, path: &str) -> Option<&StoredKind> {
        self.kinds.get(path).map(|k| &k.kind)
    }

    fn leaf(&self, path: &str) -> Option<&FieldInfo> {
        self.fields.get(path)
    }

    /// Any leaf at or under `path`.
    fn any_under(&self, path: &str) -> Option<&FieldInfo> {
        self.fields.at_or_under(path).first().copied()
    }

    /// The top-level values: each field of a struct, or the one value of another type (with
    /// an empty path).
    pub(crate) fn values(&self, bytes: &[u8]) -> Vec<(String, Value)> {
        if self.check_tiles().is_err() {
            return vec![(String::new(), Value::Unreadable)];
        }
        if self.kind_at("").is_none() && self.leaf("").is_none() && self.any_under("[]").is_none() {
            if let Value::Struct(fields) = self.node("", 0, bytes) {
                return fields;
            }
        }
        vec![(String::new(), self.node("", 0, bytes))]
    }

    /// The value at a user's path (`limits.rate`, `peers[1].name`; see [`resolve`]).
    pub(crate) fn value(&self, bytes: &[u8], path: &str) -> Result<Value> {
        self.check_tiles()?;
        let (table_path, shift) = self.resolve(path)?;
        Ok(self.node(&table_path, shift, bytes))
    }

    /// A user's path (`peers[1].name`) as the table spells it (`peers[].name`) and the byte
    /// shift its indices add; an error naming the known fields when it names none.
    pub(crate) fn resolve(&self, path: &str) -> Result<(String, u64)> {
        if path.is_empty() {
            // The whole value.
            return Ok((String::new(), 0));
        }
        if too_deep(path) {
            return Err(invalid(
                self.name,
                path,
                format!("the path nests more than {MAX_NESTING} levels deep, as no field does"),
            ));
        }
        let mut table = String::new();
        let mut shift = 0u64;
        let mut depth = 0usize;
        for (n, segment) in path.split('.').enumerate() {
            let (field, mut indices) = match segment.find('[') {
                Some(at) => (&segment[..at], &segment[at..]),
                None => (segment, ""),
            };
            // Only a top-level array of structs starts with no name (`[2].x`).
            if field.is_empty() && (n != 0 || indices.is_empty()) {
                return Err(invalid(self.name, path, "the path has an empty field name"));
            }
            if !field.is_empty() {
                table = join_path(&table, field);
            }
            while !indices.is_empty() {
                let Some(close) = indices.find(']') else {
                    return Err(invalid(self.name, path, "a `[` has no `]`"));
                };
                let index: u64 = indices[1..close].parse().map_err(|_| {
                    invalid(
                        self.name,
                        path,
                        format!(
                            "`{}` is not an index: write a number, such as `[0]`",
                            &indices[..=close]
                        ),
                    )
                })?;
                indices = &indices[close + 1..];
                if !indices.is_empty() && !indices.starts_with('[') {
                    return Err(invalid(self.name, path, "write `.` between fields"));
                }
                table.push_str("[]");
                let dim = self
                    .any_under(&table)
                    .and_then(|f| f.dims.get(depth).copied());
                let Some((count, stride)) = dim else {
                    let outer = &table[..table.len() - 2];
                    let what = match self.kind_at(outer) {
                        Some(StoredKind::List { .. }) => {
                            "a list: read or set it whole, such as \
                                                         `name=[1, 2]`"
                        }
                        _ => "not an array of structs: leave out the `[…]`",
                    };
                    let shown = if outer.is_empty() {
                        "the value".to_string()
                    } else {
                        format!("`{outer}`")
                    };
                    return Err(invalid(self.name, path, format!("{shown} is {what}")));
                };
                if index >= count {
                    return Err(invalid(
                        self.name,
                        path,
                        format!("index {index} is past the end: it has {count} elements"),
                    ));
                }
                shift = index
                    .checked_mul(stride)
                    .and_then(|s| s.checked_add(shift))
                    .ok_or_else(|| invalid(self.name, path, "the index is too large"))?;
                depth += 1;
            }
        }
        if self.kind_at(&table).is_some() || self.any_under(&table).is_some() {
            Ok((table, shift))
        } else {
            let known: Vec<String> = match self.values(&[]).as_slice() {
                [(name, _)] if name.is_empty() => Vec::new(),
                values => values.iter().map(|(name, _)| name.clone()).collect(),
            };
            Err(invalid(
                self.name,
                path,
                format!(
                    "no such field; the type has {}",
                    if known.is_empty() {
                        "no fields (give no path)".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ))
        }
    }

    /// The value at table path `q`, its bytes shifted by `shift` (the indices of the arrays of
    /// structs around it).
    fn node(&self, q: &str, shift: u64, bytes: &[u8]) -> Value {
        if too_deep(q) {
            return Value::Unreadable;
        }
        if let Some(kind) = self.kind_at(q) {
            return self.kind(q, kind, shift, bytes);
        }
        if let Some(leaf) = self.leaf(q) {
            return plain_leaf(leaf, outer_dims(q), shift, bytes);
        }
        let array = format!("{q}[]");
        if let Some(leaf) = self.any_under(&array) {
            let Some(&(count, stride)) = leaf.dims.get(outer_dims(q)) else {
                return Value::Unreadable;
            };
            // Every element takes at least one byte of the value: a forged count cannot make
            // this allocate more than the value's size.
            if count > bytes.len() as u64 {
                return Value::Unreadable;
            }
            return Value::List(Ok((0..count)
                .map(|i| {
                    self.node(
                        &array,
                        shift.saturating_add(i.saturating_mul(stride)),
                        bytes,
                    )
                })
                .collect()));
        }
        let mut names: Vec<&str> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for field in self.fields.at_or_under(q) {
            if field.path == q {
                continue;
            }
            let rest = &field.path[q.len()..];
            let rest = rest.strip_prefix('.').unwrap_or(rest);
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            let name = &rest[..end];
            if !name.is_empty() && seen.insert(name) {
                names.push(name);
            }
        }
        if names.is_empty() {
            return Value::Unreadable;
        }
        Value::Struct(
            names
                .into_iter()
                .map(|name| {
                    (
                        name.to_string(),
                        self.node(&join_path(q, name), shift, bytes),
                    )
                })
                .collect(),
        )
    }

    fn kind(&self, q: &str, kind: &StoredKind, shift: u64, bytes: &[u8]) -> Value {
        let at = |name: &str| {
            self.leaf(&join_path(q, name))
                .and_then(|leaf| leaf.offset.checked_add(shift))
        };
        match kind {
            StoredKind::Text { capacity } => {
                let (Some(len_at), Some(bytes_at)) = (at("len"), at("bytes")) else {
                    return Value::Unreadable;
                };
                let Some(len) =
                    read(bytes, len_at, 4).map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                else {
                    return Value::Unreadable;
                };
                if u64::from(len) > *capacity {
                    return Value::Text(Err(ValueError::LengthAboveCapacity {
                        what: "text",
                        len: u64::from(len),
                        capacity: *capacity as usize,
                    }));
                }
                let Some(text) = read(bytes, bytes_at, len as usize) else {
                    return Value::Unreadable;
                };
                Value::Text(
                    String::from_utf8(text.to_vec()).map_err(|e| ValueError::InvalidUtf8 {
                        valid_up_to: e.utf8_error().valid_up_to(),
                        len: len as usize,
                    }),
                )
            }
            StoredKind::Flag => match at("value").and_then(|a| read(bytes, a, 1)) {
                Some(b) => Value::Flag(b[0] != 0),
                None => Value::Unreadable,
            },
            StoredKind::Timestamp => match at("unix_nanos")
                .and_then(|a| scalar(Primitive::I64, bytes, a))
            {
                Some(Scalar::Signed(n)) => Value::Timestamp(Timestamp::from_unix_nanos(n as i64)),
                _ => Value::Unreadable,
            },
            StoredKind::Enum { variants, .. } => {
                let raw = self.leaf(&join_path(q, "raw")).and_then(|leaf| {
                    scalar(leaf.primitive?, bytes, leaf.offset.checked_add(shift)?)
                });
                let raw = match raw {
                    Some(Scalar::Signed(n)) => n,
                    Some(Scalar::Unsigned(n)) => i128::try_from(n).unwrap_or(i128::MAX),
                    _ => return Value::Unreadable,
                };
                Value::Enum {
                    variant: variants
                        .iter()
                        .find(|(_, v)| *v == raw)
                        .map(|(name, _)| name.clone()),
                    raw,
                }
            }
            StoredKind::Optional => match at("present").and_then(|a| read(bytes, a, 1)) {
                Some(b) if b[0] != 0 => Value::Optional(Some(Box::new(self.node(
                    &join_path(q, "value"),
                    shift,
                    bytes,
                )))),
                Some(_) => Value::Optional(None),
                None => Value::Unreadable,
            },
            StoredKind::List { capacity } => {
                let Some((len_at, width)) = self.list_header(q, shift) else {
                    return Value::Unreadable;
                };
                let Some(len) = read(bytes, len_at, width as usize).map(list_length) else {
                    return Value::Unreadable;
                };
                if len > *capacity {
                    return Value::List(Err(ValueError::LengthAboveCapacity {
                        what: "list",
                        len,
                        capacity: *capacity as usize,
                    }));
                }
                // Within a capacity that a forged descriptor made larger than the value: the
                // elements are not all there, and each would be one more `Value` to allocate.
                if len.saturating_mul(width) > bytes.len() as u64 {
                    return Value::Unreadable;
                }
                let items = join_path(q, "items");
                let element_at = |i: u64| len_at.saturating_add(width.saturating_mul(i + 1));
                let values = (0..len).map(|i| {
                    if let Some(leaf) = self.leaf(&items) {
                        // Primitives, or arrays of them: `per` primitives an element.
                        let per = width / leaf.primitive.map_or(1, |p| p.size() as u64).max(1);
                        let Some(p) = leaf.primitive else {
                            return Value::Unreadable;
                        };
                        let one = |j: u64| {
                            scalar(p, bytes, element_at(i).saturating_add(j * p.size() as u64))
                                .map_or(Value::Unreadable, Value::Number)
                        };
                        if per == 1 {
                            one(0)
                        } else {
                            Value::List(Ok((0..per).map(one).collect()))
                        }
                    } else {
                        self.node(
                            &format!("{items}[]"),
                            shift.saturating_add(i.saturating_mul(width)),
                            bytes,
                        )
                    }
                });
                Value::List(Ok(values.collect()))
            }
        }
    }

    /// Where a list's (or an optional value's) header is and how wide it is (one element).
    fn list_header(&self, q: &str, shift: u64) -> Option<(u64, u64)> {
        let header = self
            .leaf(&join_path(q, "len"))
            .or_else(|| self.leaf(&join_path(q, "present")))?;
        let width = match header.dims.get(outer_dims(q)) {
            None => 1,
            Some((count, _)) => *count,
        };
        Some((header.offset.checked_add(shift)?, width))
    }

    /// The writes that store `text` in the field at the user's `path`: parsed by the field's
    /// kind and primitive, checked (range, capacity, UTF-8, known variant name).
    pub(crate) fn parse_assignment(&self, path: &str, text: &str) -> Result<Vec<ByteWrite>> {
        self.check_tiles()?;
        let (table, shift) = self.resolve(path)?;
        // The parts of a value type (a text's `len`, a list's `items`, an optional value's
        // `value`…) are written only through it: on their own they could store a length above
        // the capacity, bytes that are not UTF-8 or elements past the length.
        // A value type at the top level has the empty path: every other path is inside it.
        let top = (!path.is_empty()).then_some(0);
        let boundaries = path.match_indices(['.', '[']).map(|(at, _)| at);
        for at in top.into_iter().chain(boundaries) {
            let whole = &path[..at];
            if let Some(kind) = self.kind_at(&table_form(whole)) {
                return Err(invalid(
                    self.name,
                    path,
                    if whole.is_empty() {
                        format!(
                            "it is part of the value, of kind {}: set the value as a whole, \
                             with no field name",
                            kind.describe()
                        )
                    } else {
                        format!(
                            "it is part of a value of kind {}: set `{whole}` as a whole, such \
                             as `{whole}=…`",
                            kind.describe()
                        )
                    },
                ));
            }
        }
        let mut writes = Vec::new();
        self.encode(path, &table, shift, text, &mut writes)?;
        Ok(writes)
    }

    fn encode(
        &self,
        path: &str,
        q: &str,
        shift: u64,
        text: &str,
        out: &mut Vec<ByteWrite>,
    ) -> Result<()> {
        let at = |name: &str| -> Result<u64> {
            self.leaf(&join_path(q, name))
                .and_then(|leaf| leaf.offset.checked_add(shift))
                .ok_or_else(|| invalid(self.name, path, "its stored layout is incomplete"))
        };
        let fail = |reason: String| Err(invalid(self.name, path, reason));
        if too_deep(q) {
            return fail(format!(
                "its stored layout nests more than {MAX_NESTING} levels deep: the region's \
                 descriptor is corrupt; recreate the region"
            ));
        }
        match self.kind_at(q) {
            Some(StoredKind::Text { capacity }) => {
                if text.len() as u64 > *capacity {
                    return fail(format!(
                        "it holds text of at most {capacity} bytes, and this is {} bytes: \
                         shorten it",
                        text.len()
                    ));
                }
                out.push(ByteWrite {
                    offset: at("len")?,
                    bytes: (text.len() as u32).to_ne_bytes().to_vec(),
                });
                let mut bytes = text.as_bytes().to_vec();
                bytes.resize(self.room(path, *capacity)?, 0);
                out.push(ByteWrite {
                    offset: at("bytes")?,
                    bytes,
                });
            }
            Some(StoredKind::Flag) => {
                let value = match text {
                    "true" => 1,
                    "false" => 0,
                    _ => return fail(format!("it is a flag: write true or false, not `{text}`")),
                };
                out.push(ByteWrite {
                    offset: at("value")?,
                    bytes: vec![value],
                });
            }
            Some(StoredKind::Timestamp) => {
                let time = if text == "now" {
                    Timestamp::now()
                } else {
                    parse_rfc3339(text).ok_or_else(|| {
                        invalid(
                            self.name,
                            path,
                            format!(
                                "it is a timestamp: write an RFC 3339 time such as \
                                 2026-12-06T16:05:00Z (or with an offset such as +01:00, and \
                                 up to 9 decimals of seconds) between 1677 and 2262, or `now`, \
                                 not `{text}`"
                            ),
                        )
                    })?
                };
                out.push(ByteWrite {
                    offset: at("unix_nanos")?,
                    bytes: time.unix_nanos().to_ne_bytes().to_vec(),
                });
            }
            Some(StoredKind::Enum { variants, .. }) => {
                let Some((_, value)) = variants.iter().find(|(name, _)| name == text) else {
                    let names: Vec<&str> = variants.iter().map(|(n, _)| n.as_str()).collect();
                    return fail(format!(
                        "it takes one of {}, not `{text}`",
                        names.join(", ")
                    ));
                };
                let raw = self
                    .leaf(&join_path(q, "raw"))
                    .and_then(|leaf| leaf.primitive)
                    .ok_or_else(|| invalid(self.name, path, "its stored layout is incomplete"))?;
                out.push(ByteWrite {
                    offset: at("raw")?,
                    bytes: integer_bytes(*value, raw.size()),
                });
            }
            Some(StoredKind::Optional) => {
                let (present_at, width) = self
                    .list_header(q, shift)
                    .ok_or_else(|| invalid(self.name, path, "its stored layout is incomplete"))?;
                let mut header = vec![0u8; self.room(path, width)?];
                // `none` clears the value too, as `Opt::set(None)` does: no stale bytes stay.
                out.push(ByteWrite {
                    offset: present_at.saturating_add(width),
                    bytes: header.clone(),
                });
                if text != "none" {
                    header[0] = 1;
                    self.encode(path, &join_path(q, "value"), shift, text, out)?;
                }
                out.push(ByteWrite {
                    offset: present_at,
                    bytes: header,
                });
            }
            Some(StoredKind::List { capacity }) => {
                let items = split_list(text).map_err(|why| invalid(self.name, path, why))?;
                if items.len() as u64 > *capacity {
                    return fail(format!(
                        "it holds at most {capacity} elements, and this is {}: remove some",
                        items.len()
                    ));
                }
                let (len_at, width) = self
                    .list_header(q, shift)
                    .ok_or_else(|| invalid(self.name, path, "its stored layout is incomplete"))?;
                let mut header = vec![0u8; self.room(path, width)?];
                let items_room = self.room(path, width.saturating_mul(*capacity))?;
                let len = items.len() as u32;
                let len_bytes = len.to_ne_bytes();
                let used = match width {
                    1 => 1,
                    2 | 3 => 2,
                    _ => 4,
                };
                // Native byte order: the low bytes of the length, in the host's order.
                let low: &[u8] = if cfg!(target_endian = "little") {
                    &len_bytes[..used]
                } else {
                    &len_bytes[4 - used..]
                };
                header[..used].copy_from_slice(low);
                out.push(ByteWrite {
                    offset: len_at,
                    bytes: header,
                });
                // Every element zeroed first (the unused tail stays zero, as `FixedVec`
                // keeps it), then each given element written.
                out.push(ByteWrite {
                    offset: len_at.saturating_add(width),
                    bytes: vec![0; items_room],
                });
                let items_path = join_path(q, "items");
                for (i, item) in items.iter().enumerate() {
                    let element = len_at.saturating_add(width.saturating_mul(i as u64 + 1));
                    match self.leaf(&items_path) {
                        Some(leaf) => {
                            let p = leaf.primitive.ok_or_else(|| {
                                invalid(self.name, path, "its elements' primitive is unknown")
                            })?;
                            let per = (width / p.size() as u64).max(1);
                            let numbers = if per == 1 {
                                vec![item.clone()]
                            } else {
                                let n = split_list(item)
                                    .map_err(|why| invalid(self.name, path, why))?;
                                if n.len() as u64 != per {
                                    return fail(format!(
                                        "each element is {per} numbers, and element {i} has {}",
                                        n.len()
                                    ));
                                }
                                n
                            };
                            for (j, number) in numbers.iter().enumerate() {
                                out.push(ByteWrite {
                                    offset: element.saturating_add(j as u64 * p.size() as u64),
                                    bytes: parse_number(p, number)
                                        .map_err(|why| invalid(self.name, path, why))?,
                                });
                            }
                        }
                        None => self.encode(
                            path,
                            &format!("{items_path}[]"),
                            shift.saturating_add(width.saturating_mul(i as u64)),
                            item,
                            out,
                        )?,
                    }
                }
            }
            None => {
                let Some(leaf) = self.leaf(q) else {
                    let fields = match self.node(q, 0, &[]) {
                        Value::Struct(fields) => fields
                            .into_iter()
                            .map(|(name, _)| join_path(path, &name))
                            .collect::<Vec<_>>()
                            .join(", "),
                        _ => String::new(),
                    };
                    return fail(if fields.is_empty() {
                        "it is an array of structs: set one element's fields, such as \
                         `name[0].field=…`"
                            .to_string()
                    } else {
                        format!("it is a struct: set its fields one by one ({fields})")
                    });
                };
                let Some(p) = leaf.primitive else {
                    return fail("its primitive is unknown to this build".into());
                };
                let offset = leaf
                    .offset
                    .checked_add(shift)
                    .ok_or_else(|| invalid(self.name, path, "its offset is out of range"))?;
                match leaf.dims.get(outer_dims(q)..).unwrap_or(&[]) {
                    [] => out.push(ByteWrite {
                        offset,
                        bytes: parse_number(p, text)
                            .map_err(|why| invalid(self.name, path, why))?,
                    }),
                    [(count, stride)] => {
                        let items =
                            split_list(text).map_err(|why| invalid(self.name, path, why))?;
                        if items.len() as u64 != *count {
                            return fail(format!(
                                "it is an array of {count} {}: give {count} elements, such as \
                                 [1, 2, …], and this has {}",
                                p.name(),
                                items.len()
                            ));
                        }
                        for (i, item) in items.iter().enumerate() {
                            out.push(ByteWrite {
                                offset: offset.saturating_add(stride.saturating_mul(i as u64)),
                                bytes: parse_number(p, item)
                                    .map_err(|why| invalid(self.name, path, why))?,
                            });
                        }
                    }
                    _ => return fail("its stored layout has too many dimensions".into()),
                }
            }
        }
        Ok(())
    }
}

/// The most levels of structs, arrays and value types a value is decoded or encoded through:
/// each level is one recursion, and a forged path (`a.a.a…`, 100 000 deep in 200 KB) must not
/// overflow the stack (a level takes a few KiB of it in a debug build, and a thread has 2 MiB
/// by default). Real types nest far less deep.
const MAX_NESTING: usize = 64;

/// Whether table path `q` lies more than [`MAX_NESTING`] levels deep.
fn too_deep(q: &str) -> bool {
    q.matches(['.', '[']).nth(MAX_NESTING).is_some()
}

/// A user's path (`peers[1].name`) as the table spells it (`peers[].name`): every index
/// dropped from its brackets.
fn table_form(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push_str("[]");
            }
            ']' => in_index = false,
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}

/// A plain leaf's value: a number, or the list of its elements.
fn plain_leaf(leaf: &FieldInfo, outer: usize, shift: u64, bytes: &[u8]) -> Value {
    let Some(p) = leaf.primitive else {
        return Value::Unreadable;
    };
    let Some(start) = leaf.offset.checked_add(shift) else {
        return Value::Unreadable;
    };
    match leaf.dims.get(outer..).unwrap_or(&[]) {
        [] => scalar(p, bytes, start).map_or(Value::Unreadable, Value::Number),
        [(count, stride)] if *count <= bytes.len() as u64 => Value::List(Ok((0..*count)
            .map(|i| {
                scalar(p, bytes, start.saturating_add(i.saturating_mul(*stride)))
                    .map_or(Value::Unreadable, Value::Number)
            })
            .collect())),
        _ => Value::Unreadable,
    }
}

fn read(bytes: &[u8], at: u64, len: usize) -> Option<&[u8]> {
    let at = usize::try_from(at).ok()?;
    bytes.get(at..at.checked_add(len)?)
}

fn scalar(p: Primitive, bytes: &[u8], at: u64) -> Option<Scalar> {
    Scalar::decode(p, bytes, at)
}

/// A list's length from its header: the first 1, 2 or 4 bytes, by its width.
fn list_length(header: &[u8]) -> u64 {
    match header.len() {
        1 => u64::from(header[0]),
        2 | 3 => u64::from(u16::from_ne_bytes([header[0], header[1]])),
        _ => u64::from(u32::from_ne_bytes([
            header[0], header[1], header[2], header[3],
        ])),
    }
}

/// The `size` low bytes of `value`, in native byte order.
fn integer_bytes(value: i128, size: usize) -> Vec<u8> {
    let le = value.to_le_bytes();
    let mut out = le[..size].to_vec();
    if cfg!(target_endian = "big") {
        out.reverse();
    }
    out
}

/// `text` as a `p`, in native byte order; the error says what to type instead.
fn parse_number(p: Primitive, text: &str) -> std::result::Result<Vec<u8>, String> {
    let text = text.trim();
    match p {
        Primitive::F32 | Primitive::F64 => {
            let v: f64 = text.parse().map_err(|_| {
                format!(
                    "it is an {}: write a number such as 1.5, not `{text}`",
                    p.name()
                )
            })?;
            let is_f32 = matches!(p, Primitive::F32);
            // Rust's parser rounds a number too large for the type to infinity; only a user
            // who writes `inf` asks for it.
            let rounded = if is_f32 { f64::from(v as f32) } else { v };
            let asks_infinity = matches!(
                text.trim_start_matches(['+', '-'])
                    .to_ascii_lowercase()
                    .as_str(),
                "inf" | "infinity"
            );
            if rounded.is_infinite() && !asks_infinity {
                return Err(format!(
                    "{text} is outside what an {} holds (at most {:e}): write a smaller \
                     number, or `inf`",
                    p.name(),
                    if is_f32 {
                        f64::from(f32::MAX)
                    } else {
                        f64::MAX
                    }
                ));
            }
            Ok(if is_f32 {
                (v as f32).to_ne_bytes().to_vec()
            } else {
                v.to_ne_bytes().to_vec()
            })
        }
        Primitive::U128 => text
            .parse::<u128>()
            // `-0` is 0, as for every other integer type.
            .or_else(|e| if text == "-0" { Ok(0) } else { Err(e) })
            .map(|v| v.to_ne_bytes().to_vec())
            .map_err(|_| {
                format!(
                    "it is a u128: write a whole number from 0 to {}, not `{text}`",
                    u128::MAX
                )
            }),
        _ => {
            let Some((min, max)) = integer_range(p) else {
                return Err("its primitive is not a number".into());
            };
            match text.parse::<i128>() {
                Ok(v) if (min..=max).contains(&v) => Ok(integer_bytes(v, p.size())),
                _ => Err(format!(
                    "it is a {}: write a whole number from {min} to {max}, not `{text}`",
                    p.name()
                )),
            }
        }
    }
}

/// The elements of a list written as `[a, b, c]` (the brackets may be left out): split at
/// commas outside double quotes; a quoted element keeps its spaces and commas and may escape
/// `\"` and `\\`.
fn split_list(text: &str) -> std::result::Result<Vec<String>, String> {
    let trimmed = text.trim();
    let inner = match trimmed.strip_prefix('[') {
        Some(rest) => rest
            .strip_suffix(']')
            .ok_or_else(|| format!("the list `{text}` has a `[` without its `]`"))?,
        None => trimmed,
    };
    if inner.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut items = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut item = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match unescape(&mut chars) {
                        Some(c) => item.push(c),
                        None => {
                            return Err(format!(
                                "in `{text}`, write `\\\"`, `\\\\`, `\\n`, `\\t`, `\\r`, `\\0`, \
                                 `\\'` or `\\u{{…}}` (a character's hex code) after a backslash"
                            ))
                        }
                    },
                    Some(c) => item.push(c),
                    None => return Err(format!("in `{text}`, a quote is not closed")),
                }
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            match chars.peek() {
                None | Some(',') => {}
                Some(_) => {
                    return Err(format!("in `{text}`, write a comma after a quoted element"))
                }
            }
        } else {
            // An element may itself be a list (`[[1, 2], [3, 4]]`, as a list of arrays
            // prints): a comma inside its brackets, or inside quotes, does not end it.
            let (mut depth, mut quoted, mut escaped) = (0usize, false, false);
            while let Some(c) = chars.next_if(|c| *c != ',' || depth > 0 || quoted) {
                match c {
                    _ if escaped => escaped = false,
                    '\\' if quoted => escaped = true,
                    '"' => quoted = !quoted,
                    '[' if !quoted => depth += 1,
                    ']' if !quoted => {
                        depth = depth.checked_sub(1).ok_or_else(|| {
                            format!(
                                "in `{text}`, a `]` has no `[`: put an element that holds \
                                 brackets in double quotes"
                            )
                        })?;
                    }
                    _ => {}
                }
                item.push(c);
            }
            if depth > 0 || quoted {
                return Err(format!(
                    "in `{text}`, an element's `[` has no `]` or a quote is not closed"
                ));
            }
            item = item.trim_end().to_string();
        }
        items.push(item);
        if chars.next().is_none() {
            return Ok(items);
        }
    }
}

/// The character an escape in a quoted list element stands for, the backslash already read:
/// the escapes Rust's `{:?}` writes (what `get` prints), so that what it printed sets back.
fn unescape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<char> {
    Some(match chars.next()? {
        c @ ('"' | '\\' | '\'') => c,
        'n' => '\n',
        't' => '\t',
        'r' => '\r',
        '0' => '\0',
        'u' => {
            if chars.next()? != '{' {
                return None;
            }
            let mut code = String::new();
            loop {
                match chars.next()? {
                    '}' => break,
                    digit if digit.is_ascii_hexdigit() && code.len() < 6 => code.push(digit),
                    _ => return None,
                }
            }
            char::from_u32(u32::from_str_radix(&code, 16).ok()?)?
        }
        _ => return None,
    })
}

/// An RFC 3339 time (`2026-12-06T16:05:00Z`, `…T17:05:00.5+01:00`; `t` or a space between the
/// date and the time), if it is one within a [`Timestamp`]'s range.
fn parse_rfc3339(text: &str) -> Option<Timestamp> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let digits = b.get(from..from + len)?;
        digits.iter().all(u8::is_ascii_digit).then(|| {
            digits
                .iter()
                .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'))
        })
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day < 1
        || day > month_days[(month - 1) as usize]
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut at = 19;
    let mut nanos = 0i64;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        let digits = at - start;
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = num(start, digits)? * 10i64.pow((9 - digits) as u32);
    }
    let offset_seconds = match &b[at..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (num(at + 1, 2)?, num(at + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let magnitude = h * 3600 + m * 60;
            if *sign == b'+' {
                magnitude
            } else {
                -magnitude
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    let total = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
    i64::try_from(total).ok().map(Timestamp::from_unix_nanos)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`,
/// the inverse of the one `Timestamp`'s `Display` uses).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

impl crate::inspect::Inspector {
    /// The value's top-level fields decoded by their kinds, from `bytes` (a snapshot from
    /// [`read`](Self::read)): `(field name, value)` in declaration order, or one entry with an
    /// empty name for a type that is not a struct. Text comes back as text, flags as `bool`,
    /// enums by variant name, lists as lists; fields of an array of structs as a list of
    /// structs. A value another process stored wrongly (a length above its capacity, text
    /// that is not UTF-8, an unknown enum value) is reported in its [`Value`], never a panic.
    pub fn values(&self, bytes: &[u8]) -> Vec<(String, Value)> {
        self.schema().values(bytes)
    }

    /// The value at `path` in `bytes`: a field (`log_level`), a field of a nested struct
    /// (`limits.rate`), of one element of an array of structs (`peers[1].name`), or the whole
    /// value (`""` for a type that is not a struct).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidField`] when the path names no field (the message lists the fields) or
    /// an index is past the end.
    pub fn value(&self, bytes: &[u8], path: &str) -> Result<Value> {
        self.schema().value(bytes, path)
    }

    /// The bytes that store `text` in the field at `path` (as in [`value`](Self::value)),
    /// parsed by the field's kind and primitive and checked: numbers within their primitive's
    /// range, text within its capacity, `true`/`false` for flags, a variant's name for an
    /// enum, RFC 3339 (or `now`) for a timestamp, `none` or the value for an optional value,
    /// `[a, b]` for a list or an array (elements in double quotes may hold commas, brackets and
    /// the escapes `get` prints: `\"`, `\\`, `\n`, `\t`, `\r`, `\0`, `\u{1b}`; a list of arrays
    /// is `[[1, 2], [3, 4]]`). Apply them in order with
    /// [`Editor::commit`](crate::inspect::Editor::commit). The parts of a value
    /// type (a text's `len`, a list's `items`, an optional value's `value`) are refused: set
    /// the value as a whole, so that its checks hold.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidField`], saying what to type instead (such as "it takes one of Error,
    /// Warn, Info, Debug").
    pub fn parse_assignment(&self, path: &str, text: &str) -> Result<Vec<ByteWrite>> {
        self.schema().parse_assignment(path, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::{Editor, Inspector};
    use crate::value::{EnumField, FixedStr, FixedVec, Flag, Opt};
    use crate::{Shm, ShmQueue};

    #[derive(crate::ShmEnum, Clone, Copy, Debug, PartialEq)]
    #[repr(u8)]
    enum Level {
        Error,
        Warn,
        Info,
        Debug,
    }

    #[derive(crate::ShmType, Clone, Copy)]
    #[repr(C)]
    struct Peer {
        name: FixedStr<7>,
        up: Flag,
    }

    #[derive(crate::ShmType, Clone, Copy)]
    #[repr(C)]
    struct Config {
        updated_at: Timestamp,
        deadline: Opt<Timestamp>,
        rate: f64,
        limit: Opt<u32>,
        ports: FixedVec<u16, 4>,
        service: FixedStr<10>,
        level: EnumField<Level>,
        verbose: Flag,
        peers: [Peer; 2],
        tags: FixedVec<FixedStr<3>, 2>,
        spare: [u8; 1],
    }

    fn config() -> Config {
        let mut c: Config = crate::zeroed();
        c.updated_at = Timestamp::from_unix_nanos(1_796_554_822_666_698_771);
        c.rate = 1.5;
        c.limit.set(Some(100));
        c.ports.extend_from_slice(&[8080, 8081]).unwrap();
        c.service.set("billing").unwrap();
        c.level.set(Level::Info);
        c.verbose.set(true);
        c.peers[0].name.set("a").unwrap();
        c.peers[0].up.set(true);
        c.peers[1].name.set("b").unwrap();
        c.tags.push(FixedStr::new("x").unwrap()).unwrap();
        c.tags.push(FixedStr::new("yz").unwrap()).unwrap();
        c
    }

    fn unique(test: &str) -> String {
        format!("unit-values-{test}-{}", std::process::id())
    }

    fn rendered(values: &[(String, Value)]) -> Vec<String> {
        values.iter().map(|(n, v)| format!("{n} = {v}")).collect()
    }

    fn apply(bytes: &mut [u8], writes: &[ByteWrite]) {
        for w in writes {
            let at = w.offset as usize;
            bytes[at..at + w.bytes.len()].copy_from_slice(&w.bytes);
        }
    }

    #[test]
    fn every_kind_decodes_and_round_trips_through_parse_and_encode() {
        let name = unique("round-trip");
        let _shm = Shm::<Config>::options()
            .unlink_on_drop(true)
            .create(&name, config())
            .unwrap();
        let view = Inspector::open(&name).unwrap();
        assert_eq!(view.header_fields().format_version, 2);
        let bytes = view.read();
        assert_eq!(
            rendered(&view.values(&bytes)),
            [
                "updated_at = 2026-12-06T11:00:22.666698771Z",
                "deadline = none",
                "rate = 1.5",
                "limit = 100",
                "ports = [8080, 8081]",
                "service = \"billing\"",
                "level = Info",
                "verbose = true",
                "peers = [{ name: \"a\", up: true }, { name: \"b\", up: false }]",
                "tags = [\"x\", \"yz\"]",
                "spare = [0]",
            ]
        );
        assert_eq!(
            view.value(&bytes, "level").unwrap(),
            Value::Enum {
                variant: Some("Info".into()),
                raw: 2
            }
        );
        assert_eq!(
            view.value(&bytes, "peers[1].name").unwrap(),
            Value::Text(Ok("b".into()))
        );
        let cases = [
            (
                "updated_at",
                "2026-12-06T12:00:22.5+01:00",
                "2026-12-06T11:00:22.500000000Z",
            ),
            (
                "deadline",
                "1970-01-01T00:00:01Z",
                "1970-01-01T00:00:01.000000000Z",
            ),
            ("deadline", "none", "none"),
            ("rate", "-2.25", "-2.25"),
            ("limit", "none", "none"),
            ("limit", "7", "7"),
            ("ports", "[1, 2, 3, 4]", "[1, 2, 3, 4]"),
            ("ports", "[]", "[]"),
            ("service", "héllo, x", "\"héllo, x\""),
            ("level", "Debug", "Debug"),
            ("verbose", "false", "false"),
            ("peers[1].name", "zed", "\"zed\""),
            ("peers[1].up", "true", "true"),
            ("tags", "[\"a,b\", c]", "[\"a,b\", \"c\"]"),
            ("spare", "[9]", "[9]"),
        ];
        let mut edited = bytes.clone();
        for (path, text, shown) in cases {
            let writes = view.parse_assignment(path, text).unwrap();
            apply(&mut edited, &writes);
            assert_eq!(
                view.value(&edited, path).unwrap().to_string(),
                shown,
                "{path}={text}"
            );
        }
        // The typed view agrees, and cleared elements left no stale bytes.
        let typed: Config = bytemuck::pod_read_unaligned(&edited);
        assert_eq!(typed.level.get(), Ok(Level::Debug));
        assert_eq!(typed.ports.as_slice().unwrap(), []);
        assert_eq!(bytemuck::bytes_of(&typed.ports), [0u8; 10]);
        assert_eq!(typed.deadline.get(), None);
        assert_eq!(bytemuck::bytes_of(&typed.deadline), [0u8; 16]);
        assert_eq!(typed.tags.as_slice().unwrap()[0], "a,b");
        assert_eq!(typed.peers[1].name, "zed");
        assert_eq!(typed.limit.get(), Some(7));
    }

    #[test]
    fn forged_values_decode_as_errors_and_unknowns() {
        let name = unique("forged");
        let _shm = Shm::<Config>::options()
            .unlink_on_drop(true)
            .create(&name, config())
            .unwrap();
        let view = Inspector::open(&name).unwrap();
        let mut bytes = view.read();
        let offset = |path: &str| {
            view.fields()
                .iter()
                .find(|f| f.path == path)
                .unwrap()
                .offset as usize
        };
        bytes[offset("service.len")..][..4].copy_from_slice(&11u32.to_ne_bytes());
        bytes[offset("peers[].name.len")..][..4].copy_from_slice(&2u32.to_ne_bytes());
        bytes[offset("peers[].name.bytes")..][..2].copy_from_slice(&[0xc3, 0x28]);
        bytes[offset("level.raw")] = 200;
        bytes[offset("ports.len")..][..2].copy_from_slice(&5u16.to_ne_bytes());
        bytes[offset("tags.items[].len") + 7..][..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        let values = view.values(&bytes);
        let get = |name: &str| &values.iter().find(|(n, _)| n == name).unwrap().1;
        assert!(matches!(
            get("service"),
            Value::Text(Err(ValueError::LengthAboveCapacity {
                len: 11,
                capacity: 10,
                ..
            }))
        ));
        assert_eq!(
            view.value(&bytes, "peers[0].name").unwrap(),
            Value::Text(Err(ValueError::InvalidUtf8 {
                valid_up_to: 0,
                len: 2
            }))
        );
        assert_eq!(
            get("level"),
            &Value::Enum {
                variant: None,
                raw: 200
            }
        );
        assert_eq!(get("level").to_string(), "200 (unknown variant)");
        assert!(matches!(
            get("ports"),
            Value::List(Err(ValueError::LengthAboveCapacity {
                len: 5,
                capacity: 4,
                ..
            }))
        ));
        let Value::List(Ok(tags)) = get("tags") else {
            panic!("{:?}", get("tags"));
        };
        assert!(matches!(tags[1], Value::Text(Err(_))));
        assert!(get("service")
            .to_string()
            .starts_with("<error: the stored text length 11"));
        // Bytes that are not there (an object that shrank) decode as unreadable.
        for (_, value) in view.values(&bytes[..20]).iter().skip(3) {
            assert!(
                matches!(
                    value,
                    Value::Unreadable | Value::List(Ok(_)) | Value::Optional(_)
                ),
                "{value:?}"
            );
        }
    }

    #[test]
    fn bad_text_says_what_to_type_instead() {
        let name = unique("refusals");
        let _shm = Shm::<Config>::options()
            .unlink_on_drop(true)
            .create(&name, config())
            .unwrap();
        let view = Inspector::open(&name).unwrap();
        let cases = [
            (
                "level",
                "Trace",
                "it takes one of Error, Warn, Info, Debug, not `Trace`",
            ),
            (
                "service",
                "0123456789a",
                "at most 10 bytes, and this is 11 bytes",
            ),
            ("verbose", "yes", "write true or false"),
            ("updated_at", "yesterday", "write an RFC 3339 time"),
            (
                "updated_at",
                "2026-02-30T00:00:00Z",
                "write an RFC 3339 time",
            ),
            (
                "updated_at",
                "3000-01-01T00:00:00Z",
                "between 1677 and 2262",
            ),
            (
                "ports",
                "[1, 2, 3, 4, 5]",
                "at most 4 elements, and this is 5",
            ),
            (
                "ports",
                "[1, 70000]",
                "it is a u16: write a whole number from 0 to 65535",
            ),
            ("limit", "-1", "it is a u32"),
            ("rate", "fast", "it is an f64"),
            ("spare", "[1, 2]", "give 1 elements"),
            ("peers", "x", "it is an array of structs"),
            (
                "peers[2].name",
                "x",
                "index 2 is past the end: it has 2 elements",
            ),
            ("peers[x].name", "x", "is not an index"),
            (
                "nope",
                "1",
                "no such field; the type has updated_at, deadline, rate",
            ),
            ("tags", "[\"a]", "a quote is not closed"),
        ];
        for (path, text, want) in cases {
            let error = view.parse_assignment(path, text).unwrap_err();
            assert!(matches!(error, Error::InvalidField { .. }), "{error:?}");
            let message = error.to_string();
            assert!(message.contains(want), "{path}={text}: {message}");
            assert!(message.contains(&format!("field `{path}`")), "{message}");
        }
    }

    #[test]
    fn a_value_type_at_the_top_level_is_the_value_with_an_empty_path() {
        let name = unique("top-level");
        let _shm = Shm::<FixedVec<FixedStr<4>, 3>>::options()
            .unlink_on_drop(true)
            .create(&name, crate::zeroed())
            .unwrap();
        let view = Inspector::open(&name).unwrap();
        let writes = view.parse_assignment("", "[ab, \"c d\"]").unwrap();
        let inside = view.parse_assignment("len", "[9, 0, 0, 0]").unwrap_err();
        assert!(
            inside.to_string().contains("set the value as a whole"),
            "{inside}"
        );
        let mut bytes = view.read();
        assert_eq!(rendered(&view.values(&bytes)), [" = []"]);
        apply(&mut bytes, &writes);
        assert_eq!(
            view.value(&bytes, "").unwrap().to_string(),
            "[\"ab\", \"c d\"]"
        );
        let editor = Editor::open(&name).unwrap();
        editor.commit(&writes).unwrap();
        assert_eq!(editor.value("").unwrap().to_string(), "[\"ab\", \"c d\"]");
    }

    #[test]
    fn rfc3339_parses_what_display_prints() {
        for nanos in [
            0,
            -1,
            1_796_554_822_666_698_771,
            i64::MAX,
            i64::MIN,
            951_782_400_000_000_000,
        ] {
            let t = Timestamp::from_unix_nanos(nanos);
            assert_eq!(parse_rfc3339(&t.to_string()), Some(t), "{t}");
        }
        assert_eq!(
            parse_rfc3339("1970-01-01 01:00:00-01:30"),
            Some(Timestamp::from_unix_nanos(9_000_000_000_000))
        );
        for bad in [
            "",
            "1970-01-01T00:00:00",
            "1970-13-01T00:00:00Z",
            "1970-01-01T00:00:00.Z",
            "1970-01-01T00:00:00+1:00",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_editor_commits_writes_together_and_refuses_what_it_must() {
        let name = unique("editor");
        let shm = Shm::<Config>::options()
            .unlink_on_drop(true)
            .create(&name, config())
            .unwrap();
        let editor = Editor::open(&name).unwrap();
        let before = shm.version();
        let mut writes = editor.parse_assignment("level", "Warn").unwrap();
        writes.extend(editor.parse_assignment("service", "api").unwrap());
        writes.extend(editor.parse_assignment("ports", "[9]").unwrap());
        let committed = editor.commit(&writes).unwrap();
        assert!(!committed.poisoned);
        assert!(committed.version > before);
        let c = shm.read();
        assert_eq!(c.level.get(), Ok(Level::Warn));
        assert_eq!(c.service, "api");
        assert_eq!(c.ports.as_slice().unwrap(), [9]);
        assert_eq!(
            editor.value("service").unwrap(),
            Value::Text(Ok("api".into()))
        );
        // Nothing outside the value is written.
        let outside = ByteWrite {
            offset: 110,
            bytes: vec![0; 3],
        };
        assert!(matches!(
            editor.commit(&[outside]),
            Err(Error::InvalidField { .. })
        ));

        let in_place = unique("editor-in-place");
        let _p = Shm::<Config>::options()
            .in_place(true)
            .unlink_on_drop(true)
            .create(&in_place, config())
            .unwrap();
        let error = Editor::open(&in_place).unwrap_err();
        assert!(matches!(error, Error::PermissionDenied { .. }), "{error}");
        assert!(error.to_string().contains("--in-place"), "{error}");
        let editor = Editor::options().in_place(true).open(&in_place).unwrap();
        editor
            .commit(&editor.parse_assignment("verbose", "false").unwrap())
            .unwrap();
        assert!(!_p.read().verbose.get());

        let queue = unique("editor-queue");
        let _q = ShmQueue::<u32, 2>::options()
            .unlink_on_drop(true)
            .create(&queue)
            .unwrap();
        assert!(matches!(Editor::open(&queue), Err(Error::WrongKind { .. })));
    }

    /// Attacks by a peer that forged the region's descriptor, and by hostile text.
    mod hostile {
        use super::*;
        use crate::format::DescriptorField;

        fn leaf(path: &str, p: Primitive, offset: u64, dims: &[(u64, u64)]) -> FieldInfo {
            FieldInfo::from_descriptor(&DescriptorField {
                path: path.into(),
                offset,
                primitive: u32::from(p.code()),
                dims: dims.to_vec(),
            })
        }

        fn kind(path: &str, kind: StoredKind) -> KindEntry {
            KindEntry {
                path: path.into(),
                kind,
            }
        }

        fn schema<'a>(fields: &'a [FieldInfo], kinds: &'a [KindEntry], size: u64) -> Schema<'a> {
            Schema::new("forged", fields, kinds, size)
        }

        #[test]
        fn a_forged_text_capacity_is_refused_not_allocated() {
            // A terabyte of text in a 16-byte value: the descriptor decoder cannot know the
            // value's size, so the encoder must not trust the capacity with an allocation.
            let capacity = 1u64 << 40;
            let fields = [
                leaf("s.len", Primitive::U8, 0, &[(4, 1)]),
                leaf("s.bytes", Primitive::U8, 4, &[(capacity, 1)]),
            ];
            let kinds = [kind("s", StoredKind::Text { capacity })];
            let error = schema(&fields, &kinds, 16)
                .parse_assignment("s", "x")
                .unwrap_err()
                .to_string();
            assert!(error.contains("corrupt"), "{error}");
        }

        #[test]
        fn a_forged_list_capacity_is_refused_not_allocated() {
            let capacity = 1u64 << 40;
            let fields = [
                leaf("l.len", Primitive::U8, 0, &[(4, 1)]),
                leaf("l.items", Primitive::U32, 4, &[(capacity, 4)]),
            ];
            let kinds = [kind("l", StoredKind::List { capacity })];
            let forged = schema(&fields, &kinds, 16);
            let error = forged.parse_assignment("l", "[1]").unwrap_err().to_string();
            assert!(error.contains("corrupt"), "{error}");
            // A stored length of u32::MAX, within the forged capacity: not 4 billion values.
            let bytes = [0xffu8; 16];
            let values = forged.values(&bytes);
            assert_eq!(values.len(), 1);
            assert!(
                matches!(values[0].1, Value::Unreadable | Value::List(Err(_))),
                "{}",
                values[0].1
            );
        }

        #[test]
        fn a_forged_table_of_many_fields_decodes_in_n_log_n() {
            // 150 000 top-level fields and as many flags (a descriptor of a few MiB, within
            // the 16 MiB bound): looking each up by a scan of the table is ~10^10 steps, which
            // kept `shmstore inspect` busy for minutes.
            let count = 150_000u64;
            let fields: Vec<FieldInfo> = (0..count)
                .map(|i| leaf(&format!("f{i}.value"), Primitive::U8, i, &[]))
                .collect();
            let kinds: Vec<KindEntry> = (0..count)
                .map(|i| kind(&format!("f{i}"), StoredKind::Flag))
                .collect();
            let (done, finished) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let forged = schema(&fields, &kinds, count);
                let bytes = vec![1u8; count as usize];
                let values = forged.values(&bytes);
                let last = forged.value(&bytes, &format!("f{}", count - 1));
                let _ = done.send((values.len(), last.map(|v| v.to_string())));
            });
            let (len, last) = finished
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("decoding took more than a minute");
            assert_eq!(len, count as usize);
            assert_eq!(last.unwrap(), "true");
        }

        #[test]
        fn a_forged_path_nested_a_hundred_thousand_deep_is_unreadable_not_a_stack_overflow() {
            // 200 KB of `a.a.a…`: a struct in a struct 100 000 deep, and optional values in
            // optional values 2 000 deep; decoding and encoding recursed once per level and
            // overflowed the stack.
            let deep = vec!["a"; 100_000].join(".");
            let fields = [leaf(&deep, Primitive::U8, 0, &[])];
            let forged = schema(&fields, &[], 1);
            let shown = forged.values(&[7]).remove(0).1.to_string();
            assert!(shown.contains("{ a: ? }"), "{}", &shown[shown.len() / 2..]);
            assert!(forged.parse_assignment(&deep, "1").is_err());
            let mut kinds = Vec::new();
            let mut fields = Vec::new();
            let mut path = "o".to_string();
            for _ in 0..2_000 {
                fields.push(leaf(
                    &format!("{path}.present"),
                    Primitive::U8,
                    0,
                    &[(1, 1)],
                ));
                kinds.push(kind(&path, StoredKind::Optional));
                path.push_str(".value");
            }
            fields.push(leaf(&path, Primitive::U8, 1, &[]));
            let forged = schema(&fields, &kinds, 2_001);
            let shown = forged.values(&[1; 2_001]).remove(0).1.to_string();
            assert!(shown.ends_with('?'), "{}", &shown[shown.len() - 10..]);
            assert!(forged.parse_assignment("o", "1").is_err());
        }

        #[test]
        fn a_forged_table_that_claims_more_bytes_than_the_value_is_corrupt() {
            // Arrays of structs 100 × 100 × 100 with stride 0, in a 100-byte value: a million
            // values decoded from 100 bytes (32 dimensions of them would never end). The leaves
            // of a sound layout tile the value (a ShmType has no padding), so they can never
            // take more bytes than it has.
            let fields = [leaf(
                "a[][][].x",
                Primitive::U8,
                0,
                &[(100, 0), (100, 0), (100, 0)],
            )];
            let forged = schema(&fields, &[], 100);
            let bytes = [0u8; 100];
            let values = forged.values(&bytes);
            assert!(
                matches!(values.as_slice(), [(_, Value::Unreadable)]),
                "{}",
                values.len()
            );
            for error in [
                forged.value(&bytes, "a").unwrap_err(),
                forged.parse_assignment("a[0][0][0].x", "1").unwrap_err(),
            ] {
                assert!(matches!(error, Error::Corrupt { .. }), "{error:?}");
                let message = error.to_string();
                assert!(
                    message.contains("1000000 bytes, more than the 100-byte value"),
                    "{message}"
                );
            }
        }

        #[test]
        fn a_forged_header_width_is_refused_not_allocated() {
            let fields = [
                leaf("o.present", Primitive::U8, 0, &[(1 << 40, 1)]),
                leaf("o.value", Primitive::U8, 1, &[]),
            ];
            let kinds = [kind("o", StoredKind::Optional)];
            let error = schema(&fields, &kinds, 2)
                .parse_assignment("o", "1")
                .unwrap_err()
                .to_string();
            assert!(error.contains("corrupt"), "{error}");
        }
    }

    /// Hostile or unusual text given to the parsers.
    mod text {
        use super::*;

        #[test]
        fn text_in_a_list_with_escapes_sets_back_as_get_prints_it() {
            // `get` prints text with Rust's escapes (`\n`, `\t`, `\u{1b}`, `\"`): `set` of
            // what it printed must store the same text.
            let name = unique("escapes");
            let _shm = Shm::<Config>::options()
                .unlink_on_drop(true)
                .create(&name, config())
                .unwrap();
            let editor = Editor::open(&name).unwrap();
            let writes = editor
                .parse_assignment("tags", "[\"\t\\\"\", \"\u{1b}\0\"]")
                .unwrap();
            editor.commit(&writes).unwrap();
            let shown = editor.value("tags").unwrap().to_string();
            assert_eq!(shown, r#"["\t\"", "\u{1b}\0"]"#);
            let again = editor.parse_assignment("tags", &shown).unwrap();
            assert_eq!(again, writes);
            for bad in [
                r#"["\x41"]"#,
                r#"["\u{110000}"]"#,
                r#"["\u{41"]"#,
                r#"["\q"]"#,
            ] {
                let error = editor
                    .parse_assignment("tags", bad)
                    .unwrap_err()
                    .to_string();
                assert!(error.contains("after a backslash"), "{bad}: {error}");
            }
        }

        #[derive(crate::ShmType, Clone, Copy)]
        #[repr(C)]
        struct Nested {
            twice: Opt<Opt<u8>>,
            maybe: FixedVec<Opt<u16>, 3>,
            names: [FixedStr<8>; 4],
            levels: FixedVec<EnumField<Level>, 3>,
        }

        #[test]
        fn nested_value_types_round_trip_and_match_the_typed_view() {
            let name = unique("nested");
            let shm = Shm::<Nested>::options()
                .unlink_on_drop(true)
                .create(&name, crate::zeroed())
                .unwrap();
            let editor = Editor::open(&name).unwrap();
            for (path, text, shown) in [
                ("twice", "7", "7"),
                ("maybe", "[1, none, 3]", "[1, none, 3]"),
                ("names[3]", "été", "\"été\""),
                ("levels", "[Debug, Warn]", "[Debug, Warn]"),
            ] {
                editor
                    .commit(&editor.parse_assignment(path, text).unwrap())
                    .unwrap();
                assert_eq!(editor.value(path).unwrap().to_string(), shown, "{path}");
            }
            let typed = shm.read();
            assert_eq!(typed.twice.get().and_then(|inner| inner.get()), Some(7));
            let maybe: Vec<Option<u16>> = typed.maybe.iter().unwrap().map(|o| o.get()).collect();
            assert_eq!(maybe, [Some(1), None, Some(3)]);
            assert_eq!(typed.names[3], "été");
            assert_eq!(typed.names[0], "");
            let levels: Vec<_> = typed.levels.iter().unwrap().map(|l| l.get()).collect();
            assert_eq!(levels, [Ok(Level::Debug), Ok(Level::Warn)]);
            editor
                .commit(&editor.parse_assignment("twice", "none").unwrap())
                .unwrap();
            assert_eq!(shm.read().twice.get().map(|inner| inner.get()), None);
            let error = editor
                .parse_assignment("names[4]", "x")
                .unwrap_err()
                .to_string();
            assert!(error.contains("index 4 is past the end"), "{error}");
            let error = editor
                .parse_assignment("names[0]", "123456789")
                .unwrap_err()
                .to_string();
            assert!(error.contains("at most 8 bytes"), "{error}");
        }

        #[test]
        fn hostile_paths_are_errors_that_say_why() {
            let name = unique("hostile-paths");
            let _shm = Shm::<Config>::options()
                .unlink_on_drop(true)
                .create(&name, config())
                .unwrap();
            let view = Inspector::open(&name).unwrap();
            let bytes = view.read();
            for (path, why) in [
                ("peers[999999].name", "index 999999 is past the end"),
                ("peers[18446744073709551616].name", "is not an index"),
                ("peers[-1].name", "is not an index"),
                ("peers[].name", "is not an index"),
                ("peers[0", "has no `]`"),
                ("peers[0]]", "write `.` between fields"),
                ("peers[0]x", "write `.` between fields"),
                ("peers[٣].name", "is not an index"),
                ("..", "empty field name"),
                (".", "empty field name"),
                ("peers.", "empty field name"),
                ("[0]", "not an array of structs: leave out the `[…]`"),
                ("ports[0]", "`ports` is a list: read or set it whole"),
                ("sérvice", "no such field"),
                ("service.len.x", "no such field"),
            ] {
                for error in [
                    view.value(&bytes, path).unwrap_err(),
                    view.parse_assignment(path, "1").unwrap_err(),
                ] {
                    assert!(matches!(error, Error::InvalidField { .. }), "{error:?}");
                    assert!(error.to_string().contains(why), "{path}: {error}");
                }
            }
        }

        #[test]
        fn the_parts_of_a_value_type_are_set_only_through_it() {
            // `service.len = 255` would store a length above the capacity, `service.bytes`
            // bytes that are not UTF-8, `ports.items` elements past the length, `limit.value`
            // a value without its presence flag, `level.raw` an unknown variant: all that
            // `set` promises to check. Reading them stays possible.
            let name = unique("inside-kinds");
            let _shm = Shm::<Config>::options()
                .unlink_on_drop(true)
                .create(&name, config())
                .unwrap();
            let view = Inspector::open(&name).unwrap();
            for (path, text, whole) in [
                ("service.len", "[255, 0, 0, 0]", "service"),
                (
                    "service.bytes",
                    "[255, 0, 0, 0, 0, 0, 0, 0, 0, 0]",
                    "service",
                ),
                ("ports.items", "[1, 2, 3, 4]", "ports"),
                ("ports.len", "[4, 0]", "ports"),
                ("limit.value", "5", "limit"),
                ("limit.present", "[1, 0, 0, 0]", "limit"),
                ("level.raw", "99", "level"),
                ("updated_at.unix_nanos", "1", "updated_at"),
                ("verbose.value", "7", "verbose"),
                ("tags.items[1]", "x", "tags"),
                ("peers[1].name.len", "[9, 0, 0, 0]", "peers[1].name"),
            ] {
                let error = view.parse_assignment(path, text).unwrap_err().to_string();
                assert!(
                    error.contains(&format!("set `{whole}` as a whole")),
                    "{path}: {error}"
                );
                assert!(view.value(&view.read(), path).is_ok(), "{path}");
            }
            assert!(view.parse_assignment("peers[1].name", "ok").is_ok());
            assert!(view.parse_assignment("limit", "5").is_ok());
        }

        #[test]
        fn a_float_too_large_for_its_type_is_refused_not_stored_as_infinity() {
            for (p, text) in [
                (Primitive::F64, "1e400"),
                (Primitive::F64, "-1e309"),
                (Primitive::F32, "1e39"),
            ] {
                let error = parse_number(p, text).unwrap_err();
                assert!(error.contains("outside what an"), "{text}: {error}");
            }
            // Infinity and NaN written as such are what the user asked for.
            for text in ["inf", "-inf", "Infinity", "NaN"] {
                assert!(parse_number(Primitive::F64, text).is_ok(), "{text}");
                assert!(parse_number(Primitive::F32, text).is_ok(), "{text}");
            }
            assert_eq!(
                parse_number(Primitive::F64, "-0").unwrap(),
                (-0.0f64).to_ne_bytes()
            );
            assert_eq!(parse_number(Primitive::U8, "-0").unwrap(), [0]);
            assert_eq!(
                parse_number(Primitive::U128, "-0").unwrap(),
                0u128.to_ne_bytes()
            );
            assert!(parse_number(Primitive::U64, &"9".repeat(100)).is_err());
            assert!(parse_number(Primitive::I8, "٣").is_err());
        }

        #[test]
        fn a_list_of_arrays_parses_as_it_prints() {
            assert_eq!(
                split_list("[[1, 2], [3, 4]]").unwrap(),
                ["[1, 2]", "[3, 4]"]
            );
            assert_eq!(split_list("[\"a]\", [b]]").unwrap(), ["a]", "[b]"]);
            for unbalanced in ["[[1, 2], [3, 4]", "[1, 2]]", "[[1, 2], 3]]"] {
                assert!(split_list(unbalanced).is_err(), "{unbalanced}");
            }
        }

        #[derive(crate::ShmType, Clone, Copy)]
        #[repr(C)]
        struct Routes {
            pairs: FixedVec<[u16; 2], 3>,
            limit: f64,
        }

        #[test]
        fn what_get_prints_set_accepts() {
            let name = unique("list-of-arrays");
            let _shm = Shm::<Routes>::options()
                .unlink_on_drop(true)
                .create(&name, crate::zeroed())
                .unwrap();
            let editor = Editor::open(&name).unwrap();
            let mut writes = editor
                .parse_assignment("pairs", "[[1, 2], [3, 4]]")
                .unwrap();
            writes.extend(editor.parse_assignment("limit", "1e300").unwrap());
            editor.commit(&writes).unwrap();
            for (path, printed) in [("pairs", "[[1, 2], [3, 4]]"), ("limit", "1e300")] {
                let shown = editor.value(path).unwrap().to_string();
                assert_eq!(shown, printed);
                let again = editor.parse_assignment(path, &shown).unwrap();
                editor.commit(&again).unwrap();
                assert_eq!(editor.value(path).unwrap().to_string(), printed);
            }
            let error = editor
                .parse_assignment("limit", "1e400")
                .unwrap_err()
                .to_string();
            assert!(error.contains("write a smaller number"), "{error}");
        }
    }
}
