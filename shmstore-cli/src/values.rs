//! Values decoded by their kinds (text, flags, optional values, timestamps, enums, lists) as
//! `inspect`, `get` and `watch` print them, in text and in JSON.
//!
//! The library decodes ([`Inspector::values`], [`Inspector::value`]); this module only renders,
//! cutting lists to `max_elements` and escaping what reaches a terminal. JSON shapes:
//!
//! | kind | JSON |
//! |------|------|
//! | number | a number (a string for 128-bit integers outside 64 bits and non-finite floats) |
//! | text | a string |
//! | flag | `true` / `false` |
//! | timestamp | a string, RFC 3339 (`"2026-12-06T15:36:46.123456789Z"`) |
//! | enum | the variant's name as a string; an unknown value as `{"unknown_variant": N}` |
//! | optional | `null` when absent, else the inner value |
//! | list, array | an array |
//! | struct | an object |
//! | corrupt text or list | `{"error": "why"}` |
//! | unreadable bytes | `{"error": "cannot be read"}` |

use serde_json::{json, Map};
use shmstore::inspect::{FieldInfo, Inspector, Value};

use crate::cstruct::MAX_NESTING;

use crate::failure::terminal;

/// Whether `inspect` and `watch` show the region's values by kind: its descriptor has a kinds
/// table (format version 2) and is not [`too_large_to_decode_by_kind`]. Other regions print their
/// primitive
/// fields as before kinds existed.
pub fn has_kinds(view: &Inspector) -> bool {
    !view.kinds().is_empty() && too_large_to_decode_by_kind(view.fields()).is_none()
}

/// The most fields a table may have for its values to be decoded by kind. The library's
/// decoding looks each path up among all the fields, so its work grows with the square of
/// their number: a forged table of 200 000 fields would take hours. A Rust type has one row
/// per primitive leaf (an array is one row), far fewer than this.
pub const MAX_FIELDS_BY_KIND: usize = 4096;

/// Why values are not decoded by kind from this field table: more than
/// [`MAX_FIELDS_BY_KIND`] fields, or a field nested deeper than [`MAX_NESTING`] levels
/// (structs and arrays of structs: the library walks the nesting recursively, and a forged
/// descriptor 20 000 levels deep would overflow the stack). Such tables are forged: Rust types
/// nest a few levels.
pub fn too_large_to_decode_by_kind(fields: &[FieldInfo]) -> Option<String> {
    if fields.len() > MAX_FIELDS_BY_KIND {
        return Some(format!(
            "its descriptor has {} fields (at most {MAX_FIELDS_BY_KIND} are decoded by \
             kind): not a type this build wrote; `shmstore inspect` shows its primitive fields",
            fields.len()
        ));
    }
    let deepest = fields
        .iter()
        .map(|f| f.path.matches('.').count() + f.path.matches("[]").count())
        .max()?;
    (deepest > MAX_NESTING).then(|| {
        format!(
            "its descriptor nests a field {deepest} levels deep (at most {MAX_NESTING} are \
             decoded by kind): not a type this build wrote; `shmstore inspect` shows its \
             primitive fields"
        )
    })
}

/// The message for bytes the library could not decode.
const UNREADABLE: &str = "cannot be read";

/// `value` as `inspect` shows it: [`Value`]'s `Display` (text quoted, flags `true`/`false`,
/// enums by name or `N (unknown variant)`, RFC 3339 timestamps, `none`), with lists cut to
/// `max_elements` (`… (N more)`), escaped for a terminal.
pub fn text(value: &Value, max_elements: usize) -> String {
    let mut out = String::new();
    write_text(&mut out, value, max_elements.max(1));
    terminal(&out).into_owned()
}

fn write_text(out: &mut String, value: &Value, max_elements: usize) {
    match value {
        Value::List(Ok(items)) => {
            out.push('[');
            for (i, item) in items.iter().take(max_elements).enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_text(out, item, max_elements);
            }
            if items.len() > max_elements {
                out.push_str(&format!(", … ({} more)", items.len() - max_elements));
            }
            out.push(']');
        }
        Value::Optional(Some(inner)) => write_text(out, inner, max_elements),
        Value::Struct(fields) => {
            out.push_str("{ ");
            for (i, (name, field)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(name);
                out.push_str(": ");
                write_text(out, field, max_elements);
            }
            out.push_str(" }");
        }
        other => out.push_str(&other.to_string()),
    }
}

/// `value` as `get` prints it for a shell: text raw (unquoted, so that
/// `$(shmstore get cfg service_name)` is the text itself) with control and bidi characters
/// escaped as `\u{a}` ([`terminal`]: a line is one value, and nothing reaches the terminal
/// raw), everything else as [`text`] (lists whole).
pub fn plain(value: &Value) -> String {
    match value {
        Value::Text(Ok(s)) => terminal(s).into_owned(),
        Value::Optional(Some(inner)) => plain(inner),
        other => text(other, usize::MAX),
    }
}

/// The first problem inside `value`: a corrupt text or list, or bytes that cannot be read
/// (an unknown enum value is a value, not a problem: a newer writer may have stored it).
pub fn problem(value: &Value) -> Option<String> {
    match value {
        Value::Text(Err(e)) | Value::List(Err(e)) => Some(e.to_string()),
        Value::Unreadable => Some(UNREADABLE.to_string()),
        Value::Optional(Some(inner)) => problem(inner),
        Value::List(Ok(items)) => items.iter().find_map(problem),
        Value::Struct(fields) => fields.iter().find_map(|(_, v)| problem(v)),
        _ => None,
    }
}

/// `value` as JSON (the module's table), lists cut to `max_elements`.
pub fn to_json(value: &Value, max_elements: usize) -> serde_json::Value {
    match value {
        Value::Number(n) => crate::json::scalar(*n),
        Value::Text(Ok(s)) => s.clone().into(),
        Value::Text(Err(e)) | Value::List(Err(e)) => json!({ "error": e.to_string() }),
        Value::Flag(b) => (*b).into(),
        Value::Timestamp(t) => t.to_string().into(),
        Value::Enum {
            variant: Some(name),
            ..
        } => name.clone().into(),
        Value::Enum { variant: None, raw } => {
            let raw = crate::json::scalar(shmstore::inspect::Scalar::Signed(*raw));
            json!({ "unknown_variant": raw })
        }
        Value::Optional(None) => serde_json::Value::Null,
        Value::Optional(Some(inner)) => to_json(inner, max_elements),
        Value::List(Ok(items)) => items
            .iter()
            .take(max_elements.max(1))
            .map(|item| to_json(item, max_elements))
            .collect(),
        Value::Struct(fields) => object(fields, max_elements),
        _ => json!({ "error": UNREADABLE }),
    }
}

/// Named values as one JSON object (a struct, or the fields `get` was asked for).
pub fn object(fields: &[(String, Value)], max_elements: usize) -> serde_json::Value {
    let mut map = Map::new();
    for (name, value) in fields {
        map.insert(name.clone(), to_json(value, max_elements));
    }
    serde_json::Value::Object(map)
}

/// The name a top-level value is shown under: its field name, or `value` for a type that is
/// not a struct (whose one entry has no name), as [`crate::fields::path_text`] does.
pub fn name_text(name: &str) -> &str {
    if name.is_empty() {
        "value"
    } else {
        name
    }
}

/// `name = value` for every top-level field, by kind: what `inspect` prints for a region with
/// kinds.
pub fn value_lines(view: &Inspector, bytes: &[u8], max_elements: usize) -> Vec<String> {
    view.values(bytes)
        .iter()
        .map(|(name, value)| {
            format!(
                "{} = {}",
                terminal(name_text(name)),
                text(value, max_elements)
            )
        })
        .collect()
}

/// One line per top-level field (or per path in `paths`) whose value differs between two
/// snapshots: `log_level: Info -> Debug`.
pub fn changes(
    view: &Inspector,
    paths: &[String],
    old: &[u8],
    new: &[u8],
    max_elements: usize,
) -> Vec<String> {
    let pairs: Vec<(String, Value, Value)> = if paths.is_empty() {
        view.values(old)
            .into_iter()
            .zip(view.values(new))
            .map(|((name, a), (_, b))| (name, a, b))
            .collect()
    } else {
        paths
            .iter()
            .map(|path| {
                let read = |bytes| view.value(bytes, path).unwrap_or(Value::Unreadable);
                (path.clone(), read(old), read(new))
            })
            .collect()
    };
    pairs
        .into_iter()
        .filter(|(_, a, b)| a != b)
        .map(|(name, a, b)| {
            format!(
                "{}: {} -> {}",
                terminal(name_text(&name)),
                text(&a, max_elements),
                text(&b, max_elements)
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use shmstore::inspect::Scalar;

    fn number(n: u128) -> Value {
        Value::Number(Scalar::Unsigned(n))
    }

    #[test]
    fn lists_are_cut_to_max_elements_in_text_and_json() {
        let list = Value::List(Ok((1..=5).map(number).collect()));
        assert_eq!(text(&list, 2), "[1, 2, … (3 more)]");
        assert_eq!(text(&list, 5), "[1, 2, 3, 4, 5]");
        assert_eq!(to_json(&list, 2), json!([1, 2]));
    }

    #[test]
    fn every_kind_has_its_json_shape() {
        let fields = vec![
            ("name".to_string(), Value::Text(Ok("a\u{1b}".to_string()))),
            ("on".to_string(), Value::Flag(true)),
            ("limit".to_string(), Value::Optional(None)),
            (
                "level".to_string(),
                Value::Enum {
                    variant: None,
                    raw: -3,
                },
            ),
            (
                "known".to_string(),
                Value::Enum {
                    variant: Some("Info".to_string()),
                    raw: 2,
                },
            ),
            ("gone".to_string(), Value::Unreadable),
            (
                "nested".to_string(),
                Value::Struct(vec![("x".to_string(), number(1))]),
            ),
        ];
        assert_eq!(
            object(&fields, 16),
            json!({
                "name": "a\u{1b}",
                "on": true,
                "limit": null,
                "level": {"unknown_variant": -3},
                "known": "Info",
                "gone": {"error": "cannot be read"},
                "nested": {"x": 1},
            })
        );
        assert_eq!(problem(&fields[5].1).as_deref(), Some("cannot be read"));
        assert_eq!(problem(&fields[3].1), None, "an unknown variant is a value");
        // Text is quoted with Rust's escapes; get prints it raw, escaped for the terminal.
        assert_eq!(text(&fields[0].1, 16), "\"a\\u{1b}\"");
        assert_eq!(plain(&fields[0].1), "a\\u{1b}");
        assert_eq!(text(&fields[6].1, 16), "{ x: 1 }");
    }
}
