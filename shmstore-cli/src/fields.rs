//! Field names, values and changes as `inspect` and `watch` print them.

use std::time::Duration;

use shmstore::inspect::{FieldInfo, Inspector, Scalar};
use shmstore::printable;

use crate::format::FLAG_IN_PLACE;

/// How many elements of an array `inspect` and `watch` show before `… (N more)`.
pub const DEFAULT_MAX_ELEMENTS: usize = 16;

/// More changed elements than this in one field are shown as the whole array, before and
/// after, instead of one line per element.
const MAX_ELEMENT_LINES: usize = 8;

/// The path of a field as data (JSON). The descriptor's path is empty for a value that is
/// itself a primitive or an array of primitives, and starts with `[]` for an array of
/// structs: both are shown under the name `value`, so every line starts with a name.
pub fn path_text(field: &FieldInfo) -> String {
    stored_path_text(&field.path)
}

/// [`path_text`] of a path as the descriptor stores it (a [`VersionInfo`]'s fields).
///
/// [`VersionInfo`]: shmstore::inspect::VersionInfo
pub fn stored_path_text(path: &str) -> String {
    if path.is_empty() || path.starts_with('[') {
        format!("value{path}")
    } else {
        path.to_string()
    }
}

/// The path shown for a field in text output: [`path_text`] with control characters escaped
/// (the descriptor is anyone's text, and this goes to a terminal).
pub fn display_path(field: &FieldInfo) -> String {
    printable(&path_text(field)).into_owned()
}

/// How many elements of one field to decode for output: at most `max_elements`, and never
/// more than the value has bytes (a real field has at most one element per byte; a forged
/// one with a stride of 0 would otherwise yield as many as asked).
pub fn element_limit(max_elements: usize, value: &[u8]) -> usize {
    max_elements.min(value.len()).max(1)
}

/// The path of element number `n` (counting as [`FieldInfo::values`] does, last dimension
/// fastest) of a field: `wheels[2].pressure`, `grid[5]`, `cells[1][3].x`.
pub fn element_path(field: &FieldInfo, n: u64) -> String {
    let index = multi_index(&field.dims, n);
    let path = display_path(field);
    // The first `[]`s of the path are the struct-array dimensions, outermost first; a
    // primitive array adds one more dimension, which is not in the path.
    let mut out = String::with_capacity(path.len() + 8);
    let mut indices = index.iter();
    let mut rest = path.as_str();
    while let Some(at) = rest.find("[]") {
        out.push_str(&rest[..at]);
        match indices.next() {
            Some(i) => out.push_str(&format!("[{i}]")),
            None => out.push_str("[]"),
        }
        rest = &rest[at + 2..];
    }
    out.push_str(rest);
    for i in indices {
        out.push_str(&format!("[{i}]"));
    }
    out
}

fn multi_index(dims: &[(u64, u64)], mut n: u64) -> Vec<u64> {
    let mut index = vec![0; dims.len()];
    for (slot, (count, _)) in index.iter_mut().zip(dims).rev() {
        if *count > 0 {
            *slot = n % count;
            n /= count;
        }
    }
    index
}

/// The byte range of element number `n` of `field` in a value, if it is inside `len` bytes.
fn element_bytes(field: &FieldInfo, n: u64, len: usize) -> Option<std::ops::Range<usize>> {
    let size = field.primitive?.size();
    let mut at = field.offset;
    for (i, (_, stride)) in multi_index(&field.dims, n).iter().zip(&field.dims) {
        at = at.checked_add(i.checked_mul(*stride)?)?;
    }
    let start = usize::try_from(at).ok()?;
    let end = start.checked_add(size)?;
    (end <= len).then_some(start..end)
}

/// `path = value` for every field: what `inspect` prints and what the Python example prints.
pub fn value_lines(view: &Inspector, bytes: &[u8], max_elements: usize) -> Vec<String> {
    view.fields()
        .iter()
        .map(|field| {
            format!(
                "{} = {}",
                display_path(field),
                field.render(bytes, element_limit(max_elements, bytes))
            )
        })
        .collect()
}

/// A consistent snapshot and the version it belongs to.
///
/// `Inspector::read` returns a consistent copy and `Inspector::version` the last published
/// version, but not together: a version taken before and after the copy that agree name the
/// copy's version. A writer that publishes on every attempt leaves the later version.
pub fn snapshot(view: &Inspector) -> (u64, Vec<u8>) {
    let mut attempts = 0;
    loop {
        let before = view.version();
        let bytes = view.read();
        let after = view.version();
        attempts += 1;
        if before == after || attempts == 100 {
            return (after, bytes);
        }
    }
}

/// How long `inspect` and `watch` wait for an in-place write under way to finish before they
/// say so instead of waiting on.
pub const IN_PLACE_PATIENCE: Duration = Duration::from_secs(1);

/// A consistent snapshot, or `None` if the region is in place and a write has been under way
/// for longer than `patience`.
///
/// A read of an in-place region waits while a writer writes (there is only one copy), and the
/// read-only `Inspector` cannot repair a region whose writer died mid-write: only the next
/// `lock()` does. Without this, `inspect` would hang on such a region.
pub fn snapshot_within(view: &Inspector, patience: Duration) -> Option<(u64, Vec<u8>)> {
    let header = view.header_fields();
    if header.flags & FLAG_IN_PLACE != 0 && header.write_under_way() {
        // Sleeps on the version's futex word until the write is published.
        view.wait_for_change(header.published_version(), Some(patience))
            .ok()?;
    }
    Some(snapshot(view))
}

/// One line per change between two snapshots: `rate_per_s: 100 -> 500`, one per changed
/// element of an array (`wheels[1].rpm: 0 -> 1200`), or the whole array when many changed.
///
/// The comparison visits at most one element per byte of the value over all fields, as many
/// as a real field table has: a forged table (a dimension of 2^63 with stride 0, or a million
/// fields over the same bytes) cannot make it loop for ever.
pub fn changes(view: &Inspector, old: &[u8], new: &[u8], max_elements: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let max_elements = element_limit(max_elements, new);
    let mut budget = old.len().max(new.len()) as u64;
    for field in view.fields() {
        let total = field.element_count();
        let mut changed = Vec::new();
        let mut changed_count = 0u64;
        let visits = total.min(budget);
        budget -= visits;
        for n in 0..visits {
            let (Some(a), Some(b)) = (
                element_bytes(field, n, old.len()),
                element_bytes(field, n, new.len()),
            ) else {
                break;
            };
            if old[a] != new[b] {
                changed_count += 1;
                if changed.len() <= MAX_ELEMENT_LINES {
                    changed.push(n);
                }
            }
        }
        if changed_count == 0 {
            continue;
        }
        if field.dims.is_empty() {
            lines.push(format!(
                "{}: {} -> {}",
                display_path(field),
                field.render(old, 1),
                field.render(new, 1)
            ));
        } else if changed.len() <= MAX_ELEMENT_LINES {
            for n in changed {
                lines.push(format!(
                    "{}: {} -> {}",
                    element_path(field, n),
                    nth(field, old, n),
                    nth(field, new, n)
                ));
            }
        } else {
            lines.push(format!(
                "{}: {} -> {} ({changed_count} of {total} elements changed)",
                display_path(field),
                field.render(old, max_elements),
                field.render(new, max_elements)
            ));
        }
    }
    lines
}

/// Element `n` of `field`; `n` is below the comparison's budget, so below the value's length.
fn nth(field: &FieldInfo, bytes: &[u8], n: u64) -> String {
    let wanted = usize::try_from(n).map_or(usize::MAX, |n| n.saturating_add(1));
    field
        .values(bytes, wanted)
        .get(usize::try_from(n).unwrap_or(usize::MAX))
        .map_or_else(|| "?".to_string(), Scalar::to_string)
}

/// Columns padded to their widest cell, two spaces apart; the last column is not padded.
pub fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|row| row.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                let pad = widths[c] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_indices_go_into_the_struct_array_brackets_first() {
        assert_eq!(multi_index(&[(3, 24), (4, 4)], 7), [1, 3]);
        assert_eq!(multi_index(&[(6, 2)], 5), [5]);
        assert_eq!(multi_index(&[], 0), Vec::<u64>::new());
    }

    #[test]
    fn a_table_pads_every_column_but_the_last() {
        let rows = vec![
            vec!["NAME".to_string(), "KIND".to_string(), "X".to_string()],
            vec!["a".to_string(), "value".to_string(), "1".to_string()],
        ];
        assert_eq!(table(&rows), "NAME  KIND   X\na     value  1\n");
    }
}
