//! The typed accessors of a C header for a region with field kinds (format version 2): text
//! (`const char *` and a length, validated), flags (`bool`), optional values (present or
//! not), timestamps (`int64_t` nanoseconds) and enums (a C `enum` with the variant names, and
//! a getter of the raw value). One `static inline` function per value on one line, named
//! `shmstore_<kind>_<path>` (`shmstore_text_service_name`); the generic helpers they call
//! are `c/kind_helpers.h`.
//!
//! Every name here comes from the region's descriptor, anyone's text: a value gets an
//! accessor only when each segment of its path is a C name (as `cstruct` spells members) and
//! it lies outside any array (`peers[].name` has none: the header's comment says which
//! helper to call); an enum gets its C `enum` only when its name and every variant's name are
//! identifiers and every value fits an `int`.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use shmstore::inspect::{KindEntry, StoredKind};

use crate::cstruct::{c_identifier, is_c_name};

/// The accessors for `kinds`, for a payload (or queue element) type named `payload`
/// (`shmstore_payload_t`), whose struct definitions are `definitions` (to keep enum
/// constants from clashing with their names).
pub fn accessors(kinds: &[KindEntry], payload: &str, definitions: &str) -> String {
    let mut s = String::new();
    let mut functions = BTreeSet::new();
    let mut enums = BTreeSet::new();
    let mut skipped = Vec::new();
    for entry in kinds {
        let Some((member, suffix)) = member_and_name(&entry.path) else {
            skipped.push(entry.path.as_str());
            continue;
        };
        let access = |leaf: &str| {
            if member.is_empty() {
                format!("p->{leaf}")
            } else {
                format!("p->{member}.{leaf}")
            }
        };
        let mut function = |kind: &str| {
            let name = format!("shmstore_{kind}_{suffix}");
            functions.insert(name.clone()).then_some(name)
        };
        match &entry.kind {
            StoredKind::Text { capacity } => {
                let Ok(capacity) = u32::try_from(*capacity) else {
                    continue;
                };
                if let Some(get) = function("text") {
                    let _ = writeln!(
                        s,
                        "static inline const char *{get}(const {payload} *p, uint32_t *len) {{ \
                         return shmstore_text_get({}, {}, {capacity}u, len); }}",
                        access("len"),
                        access("bytes")
                    );
                }
                if let Some(set) = function("set_text") {
                    let _ = writeln!(
                        s,
                        "static inline int {set}({payload} *p, const char *text, size_t n) {{ \
                         return shmstore_text_set({}, {}, {capacity}u, text, n); }}",
                        access("len"),
                        access("bytes")
                    );
                }
            }
            StoredKind::Flag => {
                if let Some(get) = function("flag") {
                    let _ = writeln!(
                        s,
                        "static inline bool {get}(const {payload} *p) {{ return {} != 0; }}",
                        access("value")
                    );
                }
            }
            StoredKind::Optional => {
                if let Some(get) = function("present") {
                    let _ = writeln!(
                        s,
                        "static inline bool {get}(const {payload} *p) {{ return {} != 0; }}",
                        access("present[0]")
                    );
                }
            }
            StoredKind::Timestamp => {
                if let Some(get) = function("timestamp") {
                    let _ = writeln!(
                        s,
                        "static inline int64_t {get}(const {payload} *p) {{ return {}; }}",
                        access("unix_nanos")
                    );
                }
            }
            StoredKind::Enum { name, variants } => {
                if enums.insert(name.clone()) {
                    push_enum(&mut s, name, variants, definitions);
                }
                if let Some(get) = function("enum") {
                    let _ = writeln!(
                        s,
                        "static inline int64_t {get}(const {payload} *p) {{ \
                         return (int64_t){}; }}",
                        access("raw")
                    );
                }
            }
            _ => {}
        }
    }
    if !skipped.is_empty() {
        let _ = writeln!(
            s,
            "/* Values inside arrays (or lists) have no accessor of their own: call \
             shmstore_text_get on their len and bytes. */"
        );
    }
    s
}

/// The C member designator of a kind's value (`limits.name`, empty for the top-level value)
/// and the accessor's name suffix (`limits_name`, `value`), or `None` for a value inside an
/// array or a path C cannot spell.
fn member_and_name(path: &str) -> Option<(String, String)> {
    if path.is_empty() {
        return Some((String::new(), "value".to_string()));
    }
    let mut members = Vec::new();
    for segment in path.split('.') {
        if !is_c_name(segment) {
            return None;
        }
        members.push(c_identifier(segment));
    }
    Some((members.join("."), members.join("_")))
}

/// `enum shmstore_NAME { NAME_Variant = 0, … };`, or nothing when a name is not an identifier,
/// a value does not fit an `int`, or a constant would clash with a name of the type.
fn push_enum(s: &mut String, name: &str, variants: &[(String, i128)], definitions: &str) {
    let identifier = |text: &str| {
        text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') && is_c_name(text)
    };
    if !identifier(name) || variants.is_empty() {
        return;
    }
    let mut lines = Vec::new();
    let mut constants = BTreeSet::new();
    for (variant, value) in variants {
        let constant = format!("{name}_{variant}");
        let clashes = definitions
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|word| word == constant);
        if !identifier(variant)
            || i32::try_from(*value).is_err()
            || clashes
            || !constants.insert(constant.clone())
        {
            return;
        }
        lines.push(format!("    {constant} = {value},"));
    }
    let _ = writeln!(s, "enum shmstore_{name} {{");
    for line in lines {
        let _ = writeln!(s, "{line}");
    }
    let _ = writeln!(s, "}};");
}
