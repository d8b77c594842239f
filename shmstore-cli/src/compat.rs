//! `shmstore compat LOCATION (--with OTHER | --descriptor FILE)`: a dry run of the
//! compatibility check between a region's stored type and another type (another region's,
//! or the `descriptor` of a `shmstore inspect --json` dump), field by field, as
//! [`shmstore::inspect::compatibility`] decides it. It reads both, changes nothing, and exits
//! 0 when the other type may share the region, 1 when it may not.

use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};
use shmstore::inspect::{compatibility, Compatibility, FieldVerdict, Overall, TypeDescriptor};
use shmstore::printable;

use crate::failure::{Failure, Outcome};
use crate::json;
use crate::scan;

/// Where the other type comes from.
pub enum Other<'a> {
    /// Another region (any location form).
    Region(&'a str),
    /// A `shmstore inspect --json` dump.
    Dump(&'a Path),
}

/// The most bytes of a dump read: a descriptor holds at most 16 MiB, twice that in hex.
const MAX_DUMP_BYTES: u64 = 64 << 20;

/// Compares the region at `name` with `other`; prints the verdict and fails (exit code 1)
/// when it is incompatible.
pub fn run(name: &str, other: Other<'_>, as_json: bool, out: &mut dyn Write) -> Outcome {
    let (entry, view) = scan::region(name)?;
    let region = view.descriptor();
    let shown = printable(&entry.name).into_owned();
    let same_header;
    let (other_shown, other_descriptor) = match other {
        Other::Region(text) => {
            let (entry, other_view) = scan::region(text)?;
            let (mine, theirs) = (view.header_fields(), other_view.header_fields());
            // Equal descriptors of types that `open` tells apart (a nested struct's name,
            // `packed`): the fingerprint and the alignment say so.
            same_header = mine.fingerprint == theirs.fingerprint
                && mine.payload_align == theirs.payload_align;
            (printable(&entry.name).into_owned(), other_view.descriptor())
        }
        Other::Dump(path) => {
            let (descriptor, header) = from_dump(path)?;
            let mine = view.header_fields();
            // A dump says its fingerprint and alignment in its header; one without them is
            // taken at its descriptor's word.
            same_header = header["fingerprint"]
                .as_str()
                .is_none_or(|f| f == format!("{:#018x}", mine.fingerprint))
                && header["payload_align"]
                    .as_u64()
                    .is_none_or(|a| a == mine.payload_align);
            (
                printable(&path.display().to_string()).into_owned(),
                descriptor,
            )
        }
    };
    let mut verdict = compatibility(&region, &other_descriptor);
    if verdict.overall == Overall::Identical && !same_header {
        verdict.overall = Overall::Compatible;
    }
    if as_json {
        let value = to_json(&shown, &region, &other_shown, &other_descriptor, &verdict);
        writeln!(out, "{}", json::pretty(&value))?;
    } else {
        write_text(
            &shown,
            &region,
            &other_shown,
            &other_descriptor,
            &verdict,
            out,
        )?;
    }
    if verdict.is_compatible() {
        return Ok(());
    }
    out.flush()?;
    let paths: Vec<String> = verdict
        .incompatible()
        .map(|f| format!("`{}`", printable(&f.path)))
        .collect();
    Err(Failure::Message(format!(
        "`{other_shown}` cannot share `{shown}`: {} incompatible (see each field's reason \
         above)",
        paths.join(", ")
    )))
}

/// The `descriptor` of a `shmstore inspect --json` dump, decoded and checked as a region's,
/// and the dump's `header`.
fn from_dump(path: &Path) -> Outcome<(TypeDescriptor, Value)> {
    use std::io::Read;
    let shown = printable(&path.display().to_string()).into_owned();
    let file = std::fs::File::open(path)
        .map_err(|e| Failure::Message(format!("cannot read `{shown}`: {e}")))?;
    let mut text = String::new();
    file.take(MAX_DUMP_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| Failure::Message(format!("cannot read `{shown}`: {e}")))?;
    let dump: Value = serde_json::from_str(&text).map_err(|e| {
        Failure::Message(format!(
            "`{shown}` is not JSON ({e}); write it with `shmstore inspect REGION --json > FILE`"
        ))
    })?;
    let descriptor = &dump["descriptor"];
    let (Some(version), Some(hex)) = (
        descriptor["format_version"].as_u64(),
        descriptor["bytes"].as_str(),
    ) else {
        return Err(Failure::Message(format!(
            "`{shown}` has no `descriptor` with `format_version` and `bytes`: write it with \
             `shmstore inspect REGION --json > FILE` (of this version or later)"
        )));
    };
    let bytes = from_hex(hex).ok_or_else(|| {
        Failure::Message(format!(
            "`{shown}`: its descriptor's `bytes` are not hexadecimal"
        ))
    })?;
    let version = u32::try_from(version).unwrap_or(u32::MAX);
    let decoded = TypeDescriptor::decode(&shown, &bytes, version)?;
    Ok((decoded, dump["header"].clone()))
}

/// The bytes a descriptor's `bytes` in a dump spell (two hex digits each).
fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    hex.as_bytes()
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

/// A descriptor as `inspect --json` dumps it: its format version and its stored bytes in hex,
/// which `compat --descriptor` reads back.
pub fn descriptor_json(descriptor: &TypeDescriptor) -> Value {
    let hex: String = descriptor
        .encode()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    json!({ "format_version": descriptor.format_version(), "bytes": hex })
}

fn overall_text(overall: Overall) -> &'static str {
    match overall {
        Overall::Identical => "identical",
        Overall::Compatible => "compatible",
        _ => "incompatible",
    }
}

/// One line per field: path, verdict, the type on each side, and the reason for a refusal.
fn write_text(
    shown: &str,
    region: &TypeDescriptor,
    other_shown: &str,
    other: &TypeDescriptor,
    verdict: &Compatibility,
    out: &mut dyn Write,
) -> Outcome {
    writeln!(
        out,
        "region `{shown}` (type {}) with `{other_shown}` (type {}): {}",
        printable(region.type_name()),
        printable(other.type_name()),
        overall_text(verdict.overall)
    )?;
    let path_width = verdict
        .fields
        .iter()
        .map(|f| shown_path(&f.path).chars().count())
        .max()
        .unwrap_or(0);
    for field in &verdict.fields {
        let detail = match &field.verdict {
            FieldVerdict::Same => field.region.clone().unwrap_or_default(),
            FieldVerdict::Added => format!(
                "{}, not in the region: reads as its zero value",
                field.other.as_deref().unwrap_or("")
            ),
            FieldVerdict::Kept => format!(
                "{}, only in the region: kept untouched by writes",
                field.region.as_deref().unwrap_or("")
            ),
            FieldVerdict::Widened { from, to } => format!("{from} -> {to}: reads lose nothing"),
            FieldVerdict::Incompatible { reason } => reason.clone(),
            _ => String::new(),
        };
        writeln!(
            out,
            "  {:path_width$}  {:12}  {}",
            shown_path(&field.path),
            field.verdict.name(),
            printable(&detail)
        )?;
    }
    Ok(())
}

/// A path as shown: `(value)` for the value itself, escaped for the terminal.
fn shown_path(path: &str) -> String {
    if path.is_empty() {
        "(value)".into()
    } else {
        printable(path).into_owned()
    }
}

fn to_json(
    shown: &str,
    region: &TypeDescriptor,
    other_shown: &str,
    other: &TypeDescriptor,
    verdict: &Compatibility,
) -> Value {
    let fields: Vec<Value> = verdict
        .fields
        .iter()
        .map(|f| {
            let mut field = json!({
                "path": f.path,
                "verdict": f.verdict.name(),
                "region": f.region,
                "other": f.other,
            });
            match &f.verdict {
                FieldVerdict::Widened { from, to } => {
                    field["from"] = json!(from);
                    field["to"] = json!(to);
                }
                FieldVerdict::Incompatible { reason } => field["reason"] = json!(reason),
                _ => {}
            }
            field
        })
        .collect();
    json!({
        "region": shown,
        "region_type": region.type_name(),
        "other": other_shown,
        "other_type": other.type_name(),
        "verdict": overall_text(verdict.overall),
        "compatible": verdict.is_compatible(),
        "fields": fields,
    })
}
