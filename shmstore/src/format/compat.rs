//! Whether a region's stored type and another type may share the region (`FORMAT.md`,
//! "Comparing two descriptors"): two decoded [`Descriptor`]s compared field by field, by path.
//!
//! Pure: it reads two descriptors, never a region, and never panics on any pair the decoder
//! accepted (a peer may have forged either). Both are first normalized into *nodes*: one per
//! value with a kind (text, flag, optional, timestamp, enum, list), and one per primitive leaf
//! that no kind accounts for. A node's dimensions are the counts of the arrays around it with
//! strides dropped (a struct that grows moves its fields, which match by path, not offset) and
//! a list's capacity dimension dropped (the list's node carries its capacity).

use std::collections::{BTreeMap, HashMap};

use crate::layout::Primitive;

use super::descriptor::{
    join_path, outer_dims, Descriptor, DescriptorField, KindEntry, StoredKind,
};

/// Whether a region's type and another type may share the region, field by field: what
/// [`compatibility`](crate::inspect::compatibility) finds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Compatibility {
    /// The verdict on the whole type.
    pub overall: Overall,
    /// One entry per field (a value with a kind, or a primitive leaf), in the region's order,
    /// then the fields only the other type has.
    pub fields: Vec<FieldCompatibility>,
}

/// The verdict on a whole type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overall {
    /// The same descriptor: type name, field table and kinds table. For
    /// [`Inspector::compatibility_with`](crate::inspect::Inspector::compatibility_with), also
    /// the same fingerprint and alignment (which cover nested struct names and `packed`, which
    /// the descriptor does not store): the region opens for the type today, on the direct
    /// path at today's cost.
    Identical,
    /// Different, and every field is [`Same`](FieldVerdict::Same),
    /// [`Added`](FieldVerdict::Added), [`Kept`](FieldVerdict::Kept) or
    /// [`Widened`](FieldVerdict::Widened).
    Compatible,
    /// At least one field is [`Incompatible`](FieldVerdict::Incompatible).
    Incompatible,
}

/// One field's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FieldCompatibility {
    /// The dotted path (`limits.rate`, `wheels[].pressure`, `ports.items`); empty for a value
    /// without fields.
    pub path: String,
    /// The field's type in the region (`u16`, `text (capacity 16 bytes)`), if it has it.
    pub region: Option<String>,
    /// The field's type in the other type, if it has it.
    pub other: Option<String>,
    /// What holds for the field.
    pub verdict: FieldVerdict,
}

/// What holds for one field when a type other than the region's reads and writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldVerdict {
    /// The same type at the same path (its offset may differ).
    Same,
    /// Only the other type has it: it reads as its zero value (0, empty text, `false`, none,
    /// the epoch, an empty list, an enum's raw 0) until a writer that knows it stores one.
    Added,
    /// Only the region has it: the other type does not see it, and its writes keep it untouched.
    Kept,
    /// The other type holds every value of the region's type and more: reading the region
    /// loses nothing; a value only the wider type holds must not be written while a binary
    /// of the narrower type uses the region.
    Widened {
        /// The region's type.
        from: String,
        /// The other type's.
        to: String,
    },
    /// Reading or writing through the other type could lose or misread data.
    Incompatible {
        /// Why, in a sentence that names what to do instead.
        reason: String,
    },
}

impl FieldVerdict {
    /// `same`, `added`, `kept`, `widened`, `incompatible`: the verdict's name, as the
    /// `shmstore compat` command prints it.
    pub fn name(&self) -> &'static str {
        match self {
            FieldVerdict::Same => "same",
            FieldVerdict::Added => "added",
            FieldVerdict::Kept => "kept",
            FieldVerdict::Widened { .. } => "widened",
            FieldVerdict::Incompatible { .. } => "incompatible",
        }
    }

    /// Whether the field lets the two types share the region.
    pub fn is_compatible(&self) -> bool {
        !matches!(self, FieldVerdict::Incompatible { .. })
    }
}

impl Compatibility {
    /// Whether the two types may share the region ([`Overall::Identical`] or
    /// [`Overall::Compatible`]).
    pub fn is_compatible(&self) -> bool {
        self.overall != Overall::Incompatible
    }

    /// Whether at least one field is in both types ([`Same`](FieldVerdict::Same) or
    /// [`Widened`](FieldVerdict::Widened)). Two types without one are two different types,
    /// even when every field is added or kept: reading one through the other reads only zeros,
    /// so opening refuses them.
    pub fn shares_a_field(&self) -> bool {
        self.fields
            .iter()
            .any(|f| matches!(f.verdict, FieldVerdict::Same | FieldVerdict::Widened { .. }))
    }

    /// The fields that are [`Incompatible`](FieldVerdict::Incompatible), each with its reason.
    pub fn incompatible(&self) -> impl Iterator<Item = &FieldCompatibility> {
        self.fields.iter().filter(|f| !f.verdict.is_compatible())
    }
}

/// A normalized node: a value with a kind, or a primitive leaf no kind accounts for.
#[derive(Debug, Clone)]
enum Node<'a> {
    Leaf {
        /// The primitive's code (unknown codes are kept, and refused).
        primitive: u32,
        counts: Vec<u64>,
    },
    Kind {
        kind: &'a StoredKind,
        /// An enum's raw integer's code; 0 otherwise.
        raw: u32,
        counts: Vec<u64>,
    },
}

impl Node<'_> {
    fn counts(&self) -> &[u64] {
        match self {
            Node::Leaf { counts, .. } | Node::Kind { counts, .. } => counts,
        }
    }

    fn describe(&self) -> String {
        let (mut text, counts) = match self {
            Node::Leaf { primitive, counts } => (primitive_name(*primitive), counts),
            Node::Kind { kind, counts, .. } => (kind.describe(), counts),
        };
        for count in counts.iter().rev() {
            text = format!("[{text}; {count}]");
        }
        text
    }
}

fn primitive_of(code: u32) -> Option<Primitive> {
    u8::try_from(code).ok().and_then(Primitive::from_code)
}

fn primitive_name(code: u32) -> String {
    primitive_of(code).map_or_else(|| format!("kind {code}"), |p| p.name().to_string())
}

/// The leaves a kind's own shape accounts for (`FORMAT.md`, "Field kinds"): compared through
/// the kind, not one by one. An optional value's `value` and a list's `items` are not among
/// them: they hold values of their own, compared as nodes.
fn kind_leaves(kind: &StoredKind) -> &'static [&'static str] {
    match kind {
        StoredKind::Text { .. } => &["len", "bytes"],
        StoredKind::Flag => &["value"],
        StoredKind::Timestamp => &["unix_nanos"],
        StoredKind::Enum { .. } => &["raw"],
        StoredKind::Optional => &["present"],
        StoredKind::List { .. } => &["len"],
    }
}

/// The nodes of a descriptor, by path, in table order (kinds first where they sit: a kind's
/// position is that of its first leaf).
fn nodes(descriptor: &Descriptor) -> Vec<(String, Node<'_>)> {
    let lists: HashMap<&str, u64> = descriptor
        .kinds
        .iter()
        .filter_map(|k| match k.kind {
            StoredKind::List { capacity } => Some((k.path.as_str(), capacity)),
            _ => None,
        })
        .collect();
    let mut accounted: HashMap<String, &KindEntry> = HashMap::new();
    for entry in &descriptor.kinds {
        for leaf in kind_leaves(&entry.kind) {
            accounted.insert(join_path(&entry.path, leaf), entry);
        }
    }
    let mut out = Vec::new();
    let mut emitted_kinds = std::collections::HashSet::new();
    for field in &descriptor.fields {
        let counts = normalized_counts(&field.path, &field.dims, &lists);
        if let Some(entry) = accounted.get(&field.path) {
            if emitted_kinds.insert(entry.path.as_str()) {
                let outer = outer_dims(&entry.path);
                let raw = match entry.kind {
                    StoredKind::Enum { .. } => field.primitive,
                    _ => 0,
                };
                // The kind's own dimensions are those of the arrays around it.
                let kind_counts = kind_outer_counts(&entry.path, &field.dims, outer, &lists);
                out.push((
                    entry.path.clone(),
                    Node::Kind {
                        kind: &entry.kind,
                        raw,
                        counts: kind_counts,
                    },
                ));
            }
            continue;
        }
        out.push((
            field.path.clone(),
            Node::Leaf {
                primitive: field.primitive,
                counts,
            },
        ));
    }
    // A kind none of whose leaves was found cannot be decoded; keep it visible all the same.
    for entry in &descriptor.kinds {
        if emitted_kinds.insert(entry.path.as_str()) {
            out.push((
                entry.path.clone(),
                Node::Kind {
                    kind: &entry.kind,
                    raw: 0,
                    counts: Vec::new(),
                },
            ));
        }
    }
    out
}

/// The counts of the first `outer` dimensions of a leaf under the kind at `path`, list
/// capacities dropped.
fn kind_outer_counts(
    path: &str,
    dims: &[(u64, u64)],
    outer: usize,
    lists: &HashMap<&str, u64>,
) -> Vec<u64> {
    let dims = &dims[..outer.min(dims.len())];
    normalized_counts(path, dims, lists)
}

/// A leaf's dimension counts with strides dropped and each list's capacity dimension taken
/// out: the dimension of a `LIST.items[]` segment is the list's capacity, and a list of
/// primitives (`LIST.items`, no `[]`) flattens its capacity into its first own dimension.
fn normalized_counts(path: &str, dims: &[(u64, u64)], lists: &HashMap<&str, u64>) -> Vec<u64> {
    let mut counts = Vec::with_capacity(dims.len());
    let mut at = 0;
    // Each `[]` in the path is one dimension, outermost first.
    let mut search = 0;
    while let Some(found) = path[search..].find("[]") {
        let end = search + found;
        let Some(&(count, _)) = dims.get(at) else {
            return counts;
        };
        let is_list_items = list_of_items(&path[..end]).is_some_and(|l| lists.contains_key(l));
        if !is_list_items {
            counts.push(count);
        }
        at += 1;
        search = end + 2;
    }
    // The leaf's own dimensions; a list of primitives' items leaf is `LIST.items` itself.
    let own = &dims[at.min(dims.len())..];
    let flattened_list = list_of_items(path)
        .and_then(|list| lists.get(list))
        .copied();
    for (i, (count, _)) in own.iter().enumerate() {
        match (i, flattened_list) {
            (0, Some(capacity)) if capacity != 0 => {
                let per_item = count / capacity;
                if per_item != 1 {
                    counts.push(per_item);
                }
            }
            _ => counts.push(*count),
        }
    }
    counts
}

/// The list whose items `path` would be: `LIST` for `LIST.items`, the empty path (a list at
/// the top level) for `items`.
fn list_of_items(path: &str) -> Option<&str> {
    if path == "items" {
        Some("")
    } else {
        path.strip_suffix(".items")
    }
}

/// How `from` (the region's) relates to `to` (the other type's).
fn primitive_verdict(from: u32, to: u32) -> FieldVerdict {
    let (Some(f), Some(t)) = (primitive_of(from), primitive_of(to)) else {
        return incompatible(format!(
            "primitive code {} in the region and {} here: a code this build does not know \
             cannot be compared",
            from, to
        ));
    };
    if f == t {
        return FieldVerdict::Same;
    }
    use Primitive::*;
    let unsigned = |p| matches!(p, U8 | U16 | U32 | U64 | U128);
    let signed = |p| matches!(p, I8 | I16 | I32 | I64 | I128);
    let float = |p| matches!(p, F32 | F64);
    let widened = || FieldVerdict::Widened {
        from: f.name().into(),
        to: t.name().into(),
    };
    let (fs, ts) = (f.size(), t.size());
    if (unsigned(f) && unsigned(t) || signed(f) && signed(t) || float(f) && float(t)) && ts > fs {
        return widened();
    }
    if unsigned(f) && signed(t) && ts > fs {
        return widened();
    }
    let reason = if float(f) != float(t) {
        format!(
            "{} in the region, {} here: an integer and a float do not hold the same values; \
             add a field of the new type under a new name instead",
            f.name(),
            t.name()
        )
    } else if ts < fs {
        format!(
            "{} in the region, {} here: narrowing would cut values the region may hold; \
             keep the wider type",
            f.name(),
            t.name()
        )
    } else {
        format!(
            "{} in the region, {} here: the signedness changes, so negative or large values \
             would be misread; widen to a signed type at least twice as wide instead",
            f.name(),
            t.name()
        )
    };
    incompatible(reason)
}

fn incompatible(reason: String) -> FieldVerdict {
    FieldVerdict::Incompatible { reason }
}

/// Compares two nodes at the same path: `theirs` is the region's, `mine` the other type's.
fn compare_nodes(theirs: &Node<'_>, mine: &Node<'_>) -> FieldVerdict {
    let same_kind_of_node = matches!(
        (theirs, mine),
        (Node::Leaf { .. }, Node::Leaf { .. }) | (Node::Kind { .. }, Node::Kind { .. })
    );
    if same_kind_of_node && theirs.counts() != mine.counts() {
        return incompatible(format!(
            "{} in the region, {} here: a plain array has no length of its own, so its length \
             (or whether it is an array) cannot change; use a FixedVec for a collection that \
             grows",
            theirs.describe(),
            mine.describe()
        ));
    }
    match (theirs, mine) {
        (
            Node::Leaf {
                primitive: from, ..
            },
            Node::Leaf { primitive: to, .. },
        ) => primitive_verdict(*from, *to),
        (
            Node::Kind {
                kind: from,
                raw: from_raw,
                ..
            },
            Node::Kind {
                kind: to,
                raw: to_raw,
                ..
            },
        ) => compare_kinds(from, *from_raw, to, *to_raw),
        (Node::Leaf { .. }, Node::Kind { kind, .. }) => incompatible(format!(
            "plain data in the region, {} here: a kind change reinterprets the bytes; add a \
             field under a new name instead",
            kind.describe()
        )),
        (Node::Kind { kind, .. }, Node::Leaf { .. }) => incompatible(format!(
            "{} in the region, plain data here: a kind change reinterprets the bytes; add a \
             field under a new name instead",
            kind.describe()
        )),
    }
}

fn compare_kinds(from: &StoredKind, from_raw: u32, to: &StoredKind, to_raw: u32) -> FieldVerdict {
    let widened = || FieldVerdict::Widened {
        from: from.describe(),
        to: to.describe(),
    };
    match (from, to) {
        (StoredKind::Text { capacity: a }, StoredKind::Text { capacity: b })
        | (StoredKind::List { capacity: a }, StoredKind::List { capacity: b }) => {
            if a == b {
                FieldVerdict::Same
            } else if b > a {
                widened()
            } else {
                incompatible(format!(
                    "{} in the region, {} here: a shorter capacity cannot hold what the region \
                     may hold; keep the capacity",
                    from.describe(),
                    to.describe()
                ))
            }
        }
        (StoredKind::Flag, StoredKind::Flag)
        | (StoredKind::Timestamp, StoredKind::Timestamp)
        | (StoredKind::Optional, StoredKind::Optional) => FieldVerdict::Same,
        (
            StoredKind::Enum {
                variants: region, ..
            },
            StoredKind::Enum { variants: mine, .. },
        ) => {
            let raw = primitive_verdict(from_raw, to_raw);
            if let FieldVerdict::Incompatible { reason } = raw {
                return incompatible(format!("its raw integer: {reason}"));
            }
            let by_name: HashMap<&str, i128> = mine.iter().map(|(n, v)| (n.as_str(), *v)).collect();
            let mut problems = Vec::new();
            for (name, value) in region {
                match by_name.get(name.as_str()) {
                    Some(v) if v == value => {}
                    Some(v) => problems.push(format!(
                        "`{name}` is {value} in the region and {v} here (renumbered)"
                    )),
                    None => problems.push(format!(
                        "`{name}` ({value}) is in the region but not here (removed or renamed)"
                    )),
                }
            }
            if !problems.is_empty() {
                return incompatible(format!(
                    "{}: a stored value would be misread or name no variant; keep every variant \
                     with its value, and add new ones with new values",
                    problems.join(", ")
                ));
            }
            if mine.len() > region.len() || raw != FieldVerdict::Same {
                widened()
            } else {
                FieldVerdict::Same
            }
        }
        _ => incompatible(format!(
            "{} in the region, {} here: a kind change reinterprets the bytes; add a field \
             under a new name instead",
            from.describe(),
            to.describe()
        )),
    }
}

/// A path's last name (`rate` for `limits.rate`, `pressure` for `wheels[].pressure`).
fn last_name(path: &str) -> &str {
    let name = path.rsplit('.').next().unwrap_or(path);
    name.trim_end_matches("[]")
}

/// Each path's first node: where a forged descriptor repeats a path, the first counts on both
/// sides, so that a descriptor compared with itself matches each node with itself.
fn first_by_path<'n, 'a>(nodes: &'n [(String, Node<'a>)]) -> HashMap<&'n str, &'n Node<'a>> {
    let mut by_path = HashMap::with_capacity(nodes.len());
    for (path, node) in nodes {
        by_path.entry(path.as_str()).or_insert(node);
    }
    by_path
}

/// The leaves (field-table rows, with their offsets and dimensions) at the same path in both
/// descriptors, `(region's, other's)`, in the region's table order; where a forged table repeats
/// a path the first row counts, as in [`compare`]. What a projection copies: the leaves of every
/// node both sides have (added and kept nodes have leaves on one side only).
pub(crate) fn paired_leaves<'a>(
    region: &'a Descriptor,
    other: &'a Descriptor,
) -> Vec<(&'a DescriptorField, &'a DescriptorField)> {
    let mut mine: HashMap<&str, &DescriptorField> = HashMap::with_capacity(other.fields.len());
    for field in &other.fields {
        mine.entry(field.path.as_str()).or_insert(field);
    }
    let mut seen = std::collections::HashSet::new();
    region
        .fields
        .iter()
        .filter(|f| seen.insert(f.path.as_str()))
        .filter_map(|theirs| Some((theirs, *mine.get(theirs.path.as_str())?)))
        .collect()
}

/// Compares `region` (a region's stored descriptor) with `other` (the descriptor of the type
/// that would open it), field by field: see `FORMAT.md`, "Comparing two descriptors".
pub fn compare(region: &Descriptor, other: &Descriptor) -> Compatibility {
    let theirs = nodes(region);
    let mine = nodes(other);
    let identical = region == other;
    let theirs_by_path = first_by_path(&theirs);
    let mine_by_path = first_by_path(&mine);
    let mut fields = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (path, node) in &theirs {
        if !seen.insert(path.as_str()) {
            continue;
        }
        let verdict = match mine_by_path.get(path.as_str()) {
            // Byte-equal descriptors: every field is the same, even one of a primitive this
            // build does not know (which it could not compare otherwise).
            Some(_) if identical => FieldVerdict::Same,
            Some(other) => compare_nodes(node, other),
            None => FieldVerdict::Kept,
        };
        fields.push(FieldCompatibility {
            path: path.clone(),
            region: Some(node.describe()),
            other: mine_by_path.get(path.as_str()).map(|n| n.describe()),
            verdict,
        });
    }
    for (path, node) in &mine {
        if theirs_by_path.contains_key(path.as_str()) || !seen.insert(path.as_str()) {
            continue;
        }
        fields.push(FieldCompatibility {
            path: path.clone(),
            region: None,
            other: Some(node.describe()),
            verdict: FieldVerdict::Added,
        });
    }
    refuse_reshaped_and_moved(&mut fields);
    drop_parts_of_added_and_kept(&mut fields);
    let overall = if identical {
        Overall::Identical
    } else if fields.iter().all(|f| f.verdict.is_compatible()) {
        Overall::Compatible
    } else {
        Overall::Incompatible
    };
    Compatibility { overall, fields }
}

/// A field added or kept where the other side has fields under it (a scalar that became a
/// struct, a struct that became an optional value), and a field that moved (kept at one path,
/// added at another with the same last name): matching by path would read the zero value
/// while the data stays behind, so both sides of each are refused. Linear in the fields (up to
/// their nesting depth), whatever a forged descriptor holds.
fn refuse_reshaped_and_moved(fields: &mut [FieldCompatibility]) {
    let by_path: BTreeMap<&str, usize> = fields
        .iter()
        .enumerate()
        .map(|(i, f)| (f.path.as_str(), i))
        .collect();
    let mut refused: Vec<(usize, String)> = Vec::new();
    for (i, field) in fields.iter().enumerate() {
        let (here, there) = match field.verdict {
            FieldVerdict::Added => ("here", "in the region"),
            FieldVerdict::Kept => ("in the region", "here"),
            _ => continue,
        };
        let mut conflicts = under(&by_path, &field.path)
            .filter(|&j| fields[j].verdict != field.verdict)
            .peekable();
        let Some(&first) = conflicts.peek() else {
            continue;
        };
        let plain = if field.path.is_empty() {
            "the whole value".to_string()
        } else {
            format!("`{}`", field.path)
        };
        let reason = format!(
            "{plain} is a plain value {here} but a struct {there} (with `{}`): a value that \
             becomes a struct (or the reverse) reinterprets the bytes; add a field under a new \
             name instead",
            fields[first].path
        );
        for j in conflicts {
            if matches!(fields[j].verdict, FieldVerdict::Added | FieldVerdict::Kept) {
                refused.push((j, reason.clone()));
            }
        }
        refused.push((i, reason));
    }
    for (i, reason) in refused {
        fields[i].verdict = incompatible(reason);
    }
    // Moves: the kept and the added fields grouped by last name.
    let mut kept: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut added: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, field) in fields.iter().enumerate() {
        let name = last_name(&field.path);
        match field.verdict {
            FieldVerdict::Kept if !name.is_empty() => kept.entry(name).or_default().push(i),
            FieldVerdict::Added if !name.is_empty() => added.entry(name).or_default().push(i),
            _ => {}
        }
    }
    let mut moved = Vec::new();
    for (name, from) in &kept {
        let Some(to) = added.get(name) else { continue };
        let reason = format!(
            "`{}` in the region looks moved to `{}` here: fields match by path, so the new \
             path would read as zero while the value stays at the old one; keep the path, or \
             give the new field another name",
            fields[from[0]].path, fields[to[0]].path
        );
        moved.extend(from.iter().chain(to).map(|&i| (i, reason.clone())));
    }
    for (i, reason) in moved {
        fields[i].verdict = incompatible(reason);
    }
}

/// The entries strictly under `path` (`path.x`, `path[]…`): two contiguous ranges of the
/// sorted paths.
fn under<'m>(by_path: &'m BTreeMap<&str, usize>, path: &str) -> impl Iterator<Item = usize> + 'm {
    let prefixes: Vec<String> = if path.is_empty() {
        vec![String::new()]
    } else {
        vec![format!("{path}."), format!("{path}[")]
    };
    let whole = path.is_empty();
    let own = path.to_string();
    prefixes.into_iter().flat_map(move |prefix| {
        let own = own.clone();
        by_path
            .range::<str, _>((
                std::ops::Bound::Included(prefix.as_str()),
                std::ops::Bound::Unbounded,
            ))
            .take_while(move |(p, _)| p.starts_with(prefix.as_str()))
            .filter(move |(p, _)| !(whole && **p == own))
            .map(|(_, i)| *i)
            .collect::<Vec<_>>()
    })
}

/// The parts of a value that only one side has (`limit.value` of an added optional `limit`)
/// say nothing the value's own entry does not: one line per field.
fn drop_parts_of_added_and_kept(fields: &mut Vec<FieldCompatibility>) {
    let by_path: BTreeMap<&str, usize> = fields
        .iter()
        .enumerate()
        .map(|(i, f)| (f.path.as_str(), i))
        .collect();
    let mut dropped = vec![false; fields.len()];
    for field in fields.iter() {
        if !matches!(field.verdict, FieldVerdict::Added | FieldVerdict::Kept) {
            continue;
        }
        for j in under(&by_path, &field.path) {
            if fields[j].verdict == field.verdict {
                dropped[j] = true;
            }
        }
    }
    let mut index = 0;
    fields.retain(|_| {
        index += 1;
        !dropped[index - 1]
    });
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::value::{EnumField, FixedStr, FixedVec, Flag, Opt, Timestamp};
    use crate::ShmType;

    fn verdict<R: ShmType, O: ShmType>() -> Compatibility {
        compare(&Descriptor::of(&R::LAYOUT), &Descriptor::of(&O::LAYOUT))
    }

    /// `path verdict` per field, with the reason's start for a refusal.
    fn lines(c: &Compatibility) -> Vec<String> {
        c.fields
            .iter()
            .map(|f| match &f.verdict {
                FieldVerdict::Widened { from, to } => format!("{} widened {from} -> {to}", f.path),
                FieldVerdict::Incompatible { reason } => format!("{} REFUSED: {reason}", f.path),
                v => format!("{} {}", f.path, v.name()),
            })
            .collect()
    }

    fn refused(c: &Compatibility, path: &str, why: &str) {
        let field = c
            .fields
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("no `{path}` in {:#?}", lines(c)));
        match &field.verdict {
            FieldVerdict::Incompatible { reason } => {
                assert!(reason.contains(why), "`{path}`: {reason}\n  lacks {why}")
            }
            other => panic!("`{path}` is {other:?}, not refused: {:#?}", lines(c)),
        }
        assert_eq!(c.overall, Overall::Incompatible);
    }

    macro_rules! versions {
        ($($name:ident { $($field:ident : $ty:ty),* $(,)? })*) => {$(
            #[derive(crate::ShmType, Clone, Copy)]
            #[repr(C, packed)]
            #[shm(name = "Config")]
            #[allow(dead_code)]
            struct $name { $($field: $ty),* }
        )*};
    }

    versions! {
        Base { a: u16, b: i32 }
        BaseAdded { a: u16, b: i32, c: u64 }
        BaseDropped { b: i32 }
    }

    #[test]
    fn a_type_is_identical_to_itself() {
        let c = verdict::<Base, Base>();
        assert_eq!(c.overall, Overall::Identical);
        assert_eq!(lines(&c), ["a same", "b same"]);
    }

    #[test]
    fn added_fields_read_as_zero_and_kept_fields_stay() {
        let c = verdict::<Base, BaseAdded>();
        assert_eq!(c.overall, Overall::Compatible);
        assert_eq!(lines(&c), ["a same", "b same", "c added"]);
        let c = verdict::<BaseAdded, Base>();
        assert_eq!(lines(&c), ["a same", "b same", "c kept"]);
        assert!(c.is_compatible());
        // A field that moved (offset 2 to 0) still matches by path.
        let c = verdict::<Base, BaseDropped>();
        assert_eq!(lines(&c), ["a kept", "b same"]);
    }

    #[test]
    fn every_lossless_primitive_widening_is_compatible_and_the_reverse_refused() {
        use Primitive::*;
        let widenings = [
            (U8, U16),
            (U16, U32),
            (U32, U64),
            (U64, U128),
            (U8, U64),
            (I8, I16),
            (I16, I32),
            (I32, I64),
            (I64, I128),
            (I8, I64),
            (U8, I16),
            (U16, I32),
            (U32, I64),
            (U64, I128),
            (U8, I64),
            (F32, F64),
        ];
        for (from, to) in widenings {
            let v = primitive_verdict(from.code().into(), to.code().into());
            assert_eq!(
                v,
                FieldVerdict::Widened {
                    from: from.name().into(),
                    to: to.name().into()
                }
            );
            let back = primitive_verdict(to.code().into(), from.code().into());
            assert!(
                !back.is_compatible(),
                "{} -> {} allowed",
                to.name(),
                from.name()
            );
        }
        // Everything else between two different primitives is refused.
        for from in Primitive::ALL {
            for to in Primitive::ALL {
                let v = primitive_verdict(from.code().into(), to.code().into());
                // Independently of the code: a chain of one family, or unsigned into a
                // strictly wider signed type.
                let families: [&[Primitive]; 3] = [
                    &[U8, U16, U32, U64, U128],
                    &[I8, I16, I32, I64, I128],
                    &[F32, F64],
                ];
                let rank = |p: Primitive| {
                    families
                        .iter()
                        .enumerate()
                        .find_map(|(f, family)| Some((f, family.iter().position(|&q| q == p)?)))
                        .unwrap()
                };
                let ((ff, fr), (tf, tr)) = (rank(from), rank(to));
                let expected_ok = (ff == tf && tr >= fr) || (ff == 0 && tf == 1 && tr > fr);
                assert_eq!(
                    v.is_compatible(),
                    expected_ok,
                    "{} -> {}",
                    from.name(),
                    to.name()
                );
            }
        }
        let why = |f: Primitive, t: Primitive| match primitive_verdict(
            f.code().into(),
            t.code().into(),
        ) {
            FieldVerdict::Incompatible { reason } => reason,
            v => panic!("{v:?}"),
        };
        assert!(why(U32, U16).contains("narrowing"));
        assert!(why(U32, I32).contains("signedness"));
        assert!(why(I16, U32).contains("signedness"));
        assert!(why(U32, F64).contains("an integer and a float"));
        assert!(why(F32, I64).contains("an integer and a float"));
        assert!(primitive_verdict(99, 3).name() == "incompatible");
    }

    versions! {
        Narrow { level: u8, ratio: f32 }
        Wide { level: u32, ratio: f64 }
        Signed { level: i8, ratio: f32 }
        Floaty { level: f32, ratio: f32 }
    }

    #[test]
    fn fields_widen_in_one_direction_only() {
        let c = verdict::<Narrow, Wide>();
        assert_eq!(c.overall, Overall::Compatible);
        assert_eq!(
            lines(&c),
            ["level widened u8 -> u32", "ratio widened f32 -> f64"]
        );
        let c = verdict::<Wide, Narrow>();
        refused(&c, "level", "narrowing");
        refused(&c, "ratio", "narrowing");
        refused(&verdict::<Narrow, Signed>(), "level", "signedness");
        refused(
            &verdict::<Narrow, Floaty>(),
            "level",
            "an integer and a float",
        );
    }

    versions! {
        Arr4 { w: [u16; 4] }
        Arr8 { w: [u16; 8] }
        Arr4Wide { w: [u32; 4] }
        Scalar { w: u16 }
    }

    #[test]
    fn array_lengths_never_change_but_elements_widen() {
        refused(&verdict::<Arr4, Arr8>(), "w", "a plain array has no length");
        refused(&verdict::<Arr8, Arr4>(), "w", "a plain array has no length");
        refused(&verdict::<Arr4, Scalar>(), "w", "whether it is an array");
        refused(&verdict::<Scalar, Arr4>(), "w", "whether it is an array");
        assert_eq!(
            lines(&verdict::<Arr4, Arr4Wide>()),
            ["w widened u16 -> u32"]
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
    struct WheelV2 {
        pressure: f64,
        rpm: i32,
        temperature: f32,
    }

    #[derive(crate::ShmType, Clone, Copy)]
    #[repr(C)]
    #[shm(name = "Wheel")]
    struct WheelBad {
        pressure: i32,
        rpm: i32,
    }

    #[derive(crate::ShmType, Clone, Copy)]
    #[repr(C)]
    #[shm(name = "Limits")]
    struct Limits {
        rate: u32,
        burst: u32,
    }

    #[derive(crate::ShmType, Clone, Copy)]
    #[repr(C)]
    #[shm(name = "Limits")]
    struct LimitsV2 {
        rate: u64,
        burst: u32,
        window: u32,
    }

    versions! {
        Robot { id: u32, limits: Limits, wheels: [Wheel; 4] }
        RobotV2 { id: u32, limits: LimitsV2, wheels: [WheelV2; 4] }
        RobotBad { id: u32, limits: Limits, wheels: [WheelBad; 4] }
        RobotMoreWheels { id: u32, limits: Limits, wheels: [Wheel; 6] }
        RobotFlat { id: u32, rate: u32, burst: u32, wheels: [Wheel; 4] }
        RobotScalarLimits { id: u32, limits: u64, wheels: [Wheel; 4] }
    }

    #[test]
    fn nested_structs_and_arrays_of_structs_match_by_path() {
        let c = verdict::<Robot, RobotV2>();
        assert_eq!(
            lines(&c),
            [
                "id same",
                "limits.rate widened u32 -> u64",
                "limits.burst same",
                "wheels[].pressure widened f32 -> f64",
                "wheels[].rpm same",
                "limits.window added",
                "wheels[].temperature added",
            ]
        );
        assert_eq!(c.overall, Overall::Compatible);
        refused(
            &verdict::<Robot, RobotBad>(),
            "wheels[].pressure",
            "an integer and a float",
        );
        refused(
            &verdict::<Robot, RobotMoreWheels>(),
            "wheels[].rpm",
            "[i32; 4] in the region, [i32; 6] here",
        );
    }

    #[test]
    fn a_field_moved_into_or_out_of_a_struct_is_refused_on_both_sides() {
        let c = verdict::<Robot, RobotFlat>();
        refused(&c, "limits.rate", "looks moved to `rate`");
        refused(&c, "rate", "looks moved to `rate`");
        refused(&c, "burst", "looks moved");
        let c = verdict::<RobotFlat, Robot>();
        refused(
            &c,
            "limits.rate",
            "`rate` in the region looks moved to `limits.rate`",
        );
        // A struct that became a scalar, and back.
        let c = verdict::<Robot, RobotScalarLimits>();
        refused(&c, "limits", "a value that becomes a struct");
        refused(&c, "limits.rate", "a value that becomes a struct");
        refused(
            &verdict::<RobotScalarLimits, Robot>(),
            "limits",
            "becomes a struct",
        );
    }

    #[derive(crate::ShmEnum, Clone, Copy, Debug, PartialEq)]
    #[repr(u8)]
    enum Level {
        Error,
        Warn,
    }

    mod levels {
        #[derive(crate::ShmEnum, Clone, Copy, Debug, PartialEq)]
        #[repr(u8)]
        pub(super) enum More {
            Error,
            Warn,
            Debug = 9,
        }
        #[derive(crate::ShmEnum, Clone, Copy, Debug, PartialEq)]
        #[repr(u8)]
        pub(super) enum Renumbered {
            Warn,
            Error,
        }
        #[derive(crate::ShmEnum, Clone, Copy, Debug, PartialEq)]
        #[repr(u8)]
        pub(super) enum Fewer {
            Error,
        }
        #[derive(crate::ShmEnum, Clone, Copy, Debug, PartialEq)]
        #[repr(u16)]
        pub(super) enum Wider {
            Error,
            Warn,
        }
        #[derive(crate::ShmEnum, Clone, Copy, Debug, PartialEq)]
        #[repr(i8)]
        pub(super) enum SignedRaw {
            Error,
            Warn,
        }
    }

    versions! {
        Kinds {
            name: FixedStr<16>,
            ports: FixedVec<u16, 4>,
            level: EnumField<Level>,
            on: Flag,
            at: Timestamp,
            limit: Opt<u16>,
        }
        KindsWider {
            name: FixedStr<32>,
            ports: FixedVec<u32, 8>,
            level: EnumField<levels::More>,
            on: Flag,
            at: Timestamp,
            limit: Opt<u32>,
        }
        KindsShorter {
            name: FixedStr<8>,
            ports: FixedVec<u16, 2>,
            level: EnumField<levels::Fewer>,
            on: Flag,
            at: Timestamp,
            limit: Opt<u16>,
        }
        KindsRenumbered {
            name: FixedStr<16>,
            ports: FixedVec<u16, 4>,
            level: EnumField<levels::Renumbered>,
            on: Flag,
            at: Timestamp,
            limit: Opt<u16>,
        }
        KindsRawWider {
            name: FixedStr<16>,
            ports: FixedVec<u16, 4>,
            level: EnumField<levels::Wider>,
            on: Flag,
            at: Timestamp,
            limit: Opt<u16>,
        }
        KindsRawSigned {
            name: FixedStr<16>,
            ports: FixedVec<u16, 4>,
            level: EnumField<levels::SignedRaw>,
            on: Flag,
            at: Timestamp,
            limit: Opt<u16>,
        }
        KindsChanged { name: [u8; 20], ports: FixedStr<10>, level: u8, on: u8, at: i64, limit: u16 }
        KindsAdded {
            name: FixedStr<16>,
            ports: FixedVec<u16, 4>,
            level: EnumField<Level>,
            on: Flag,
            at: Timestamp,
            limit: Opt<u16>,
            peers: FixedVec<FixedStr<8>, 2>,
            since: Opt<Timestamp>,
        }
    }

    #[test]
    fn value_kinds_widen_by_capacity_and_variants() {
        let c = verdict::<Kinds, KindsWider>();
        assert_eq!(
            lines(&c),
            [
                "name widened text (capacity 16 bytes) -> text (capacity 32 bytes)",
                "ports widened list (capacity 4) -> list (capacity 8)",
                "ports.items widened u16 -> u32",
                "level widened enum Level { Error = 0, Warn = 1 } -> enum More { Error = 0, \
                 Warn = 1, Debug = 9 }",
                "on same",
                "at same",
                "limit same",
                "limit.value widened u16 -> u32",
            ]
        );
        assert_eq!(c.overall, Overall::Compatible);
        let raw = verdict::<Kinds, KindsRawWider>();
        assert_eq!(raw.overall, Overall::Compatible);
        assert!(
            lines(&raw)[3].starts_with("level widened"),
            "{:?}",
            lines(&raw)
        );
    }

    #[test]
    fn value_kinds_that_lose_or_misread_are_refused() {
        let c = verdict::<Kinds, KindsShorter>();
        refused(&c, "name", "a shorter capacity");
        refused(&c, "ports", "a shorter capacity");
        refused(&c, "level", "`Warn` (1) is in the region but not here");
        let c = verdict::<KindsWider, Kinds>();
        refused(&c, "level", "`Debug` (9) is in the region but not here");
        refused(&c, "ports.items", "narrowing");
        refused(&c, "limit.value", "narrowing");
        let c = verdict::<Kinds, KindsRenumbered>();
        refused(
            &c,
            "level",
            "`Error` is 0 in the region and 1 here (renumbered)",
        );
        refused(
            &verdict::<Kinds, KindsRawSigned>(),
            "level",
            "its raw integer",
        );
        let c = verdict::<Kinds, KindsChanged>();
        for (path, why) in [
            (
                "name",
                "text (capacity 16 bytes) in the region, plain data here",
            ),
            (
                "ports",
                "list (capacity 4) in the region, text (capacity 10 bytes) here",
            ),
            ("level", "in the region, plain data here"),
            ("on", "flag in the region, plain data here"),
            ("at", "timestamp in the region, plain data here"),
            ("limit", "optional in the region, plain data here"),
        ] {
            refused(&c, path, why);
        }
        refused(
            &verdict::<KindsChanged, Kinds>(),
            "on",
            "plain data in the region, flag here",
        );
    }

    #[test]
    fn added_values_with_kinds_are_one_line_each() {
        let c = verdict::<Kinds, KindsAdded>();
        assert_eq!(c.overall, Overall::Compatible);
        let tail: Vec<String> = lines(&c).into_iter().skip(8).collect();
        assert_eq!(tail, ["peers added", "since added"]);
        let back = verdict::<KindsAdded, Kinds>();
        let tail: Vec<String> = lines(&back).into_iter().skip(8).collect();
        assert_eq!(tail, ["peers kept", "since kept"]);
    }

    #[test]
    fn lists_of_structs_compare_their_items() {
        versions! {
            Peers { peers: FixedVec<Wheel, 3> }
            PeersV2 { peers: FixedVec<WheelV2, 5> }
        }
        assert_eq!(
            lines(&verdict::<Peers, PeersV2>()),
            [
                "peers widened list (capacity 3) -> list (capacity 5)",
                "peers.items[].pressure widened f32 -> f64",
                "peers.items[].rpm same",
                "peers.items[].temperature added",
            ]
        );
    }

    #[test]
    fn values_without_fields_compare_too() {
        assert_eq!(lines(&verdict::<u16, u64>()), [" widened u16 -> u64"]);
        assert_eq!(
            lines(&verdict::<FixedStr<4>, FixedStr<9>>()),
            [" widened text (capacity 4 bytes) -> text (capacity 9 bytes)"]
        );
        refused(
            &verdict::<u16, FixedStr<4>>(),
            "",
            "plain data in the region",
        );
        assert_eq!(verdict::<u16, u16>().overall, Overall::Identical);
    }

    /// Also the generators of the write-back's and the migration's properties.
    pub(crate) mod properties {
        use super::*;
        use crate::format::{DescriptorField, KindEntry};
        use proptest::prelude::*;

        fn path() -> impl Strategy<Value = String> {
            prop::sample::select(vec![
                "",
                "a",
                "b",
                "a.b",
                "a.len",
                "a.bytes",
                "a.value",
                "a.raw",
                "a.present",
                "a.items",
                "a.items[].x",
                "w[].p",
                "w[].p.len",
                "a[]",
                "b.items",
                "len",
            ])
            .prop_map(String::from)
        }

        fn kind() -> impl Strategy<Value = StoredKind> {
            prop_oneof![
                (0u64..40).prop_map(|capacity| StoredKind::Text { capacity }),
                Just(StoredKind::Flag),
                Just(StoredKind::Optional),
                Just(StoredKind::Timestamp),
                prop::collection::vec(("[A-C]", -2i128..3), 0..4).prop_map(|variants| {
                    StoredKind::Enum {
                        name: "E".into(),
                        variants,
                    }
                }),
                (0u64..40).prop_map(|capacity| StoredKind::List { capacity }),
            ]
        }

        /// Arbitrary descriptors, as a forged region could hold: nothing here is checked.
        pub(crate) fn descriptor() -> impl Strategy<Value = Descriptor> {
            let field = (
                path(),
                0u64..64,
                0u32..15,
                prop::collection::vec((0u64..10, 0u64..10), 0..3),
            )
                .prop_map(|(path, offset, primitive, dims)| DescriptorField {
                    path,
                    offset,
                    primitive,
                    dims,
                });
            let entry = (path(), kind()).prop_map(|(path, kind)| KindEntry { path, kind });
            (
                prop::collection::vec(field, 0..8),
                prop::collection::vec(entry, 0..4),
            )
                .prop_map(|(fields, kinds)| Descriptor {
                    type_name: "T".into(),
                    fields,
                    kinds,
                })
        }

        proptest! {
            #[test]
            fn a_descriptor_is_identical_to_itself(d in descriptor()) {
                let c = compare(&d, &d);
                prop_assert_eq!(c.overall, Overall::Identical);
                prop_assert!(
                    c.fields.iter().all(|f| f.verdict == FieldVerdict::Same),
                    "{:?}",
                    c.fields
                );
            }

            #[test]
            fn any_two_descriptors_compare_without_panicking(a in descriptor(), b in descriptor()) {
                let c = compare(&a, &b);
                prop_assert_eq!(
                    c.overall == Overall::Incompatible,
                    c.fields.iter().any(|f| !f.verdict.is_compatible())
                );
            }
        }

        /// A forged pair of descriptors of 100 000 fields each, every one added or kept under
        /// one last name (the worst case of the move check), compares in about linear time.
        #[test]
        fn large_forged_descriptors_compare_in_bounded_time() {
            let table = |prefix: &str| Descriptor {
                type_name: "T".into(),
                fields: (0..100_000u64)
                    .map(|i| DescriptorField {
                        path: format!("{prefix}{i:x}.x"),
                        offset: i,
                        primitive: 1,
                        dims: vec![],
                    })
                    .collect(),
                kinds: vec![],
            };
            let (a, b) = (table("a"), table("b"));
            let (done, finished) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = done.send(compare(&a, &b).fields.len());
            });
            let count = finished
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("the comparison finishes");
            assert_eq!(count, 200_000);
        }

        #[test]
        fn real_types_are_identical_to_themselves() {
            for d in [
                Descriptor::of(&Robot::LAYOUT),
                Descriptor::of(&KindsAdded::LAYOUT),
            ] {
                let c = compare(&d, &d);
                assert_eq!(c.overall, Overall::Identical);
                assert!(c.fields.iter().all(|f| f.verdict == FieldVerdict::Same));
            }
        }
    }
}
