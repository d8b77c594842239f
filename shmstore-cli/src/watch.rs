//! `shmstore watch LOCATION`: prints each new version of a value and the fields it changed.
//!
//! It waits in [`Inspector::wait_for_change`](shmstore::inspect::Inspector::wait_for_change)
//! between versions: no loop of its own here. The inspector re-reads a POSIX object's or a file's
//! version with `pread` every 10 ms (it never maps them, so a peer that shrinks the object
//! ends `watch` with an error, not SIGBUS) and sleeps on a System V segment's futex. Versions
//! count commits (1, 2, 3 …); versions published faster than it prints are shown together, as
//! the change from the last version it printed, with the number of commits they were.

use std::io::Write;

use shmstore::printable;

use crate::failure::{Failure, Outcome};
use crate::fields::{changes, snapshot_within, IN_PLACE_PATIENCE};
use crate::scan::{self, Kind};
use crate::values::{self, has_kinds};

/// Watches the region at `name` (a location as `Location::parse` reads it) until interrupted,
/// or until `count` changes were printed; only changes of `paths` when it is not empty.
pub fn run(
    name: &str,
    paths: &[String],
    count: Option<u64>,
    max_elements: usize,
    out: &mut dyn Write,
) -> Outcome {
    let (entry, view) = scan::region(name)?;
    let name = &*printable(&entry.name);
    if entry.kind == Kind::Queue {
        return Err(Failure::Message(format!(
            "`{name}` is a queue, and watch follows values: a queue has no versions; \
             `shmstore inspect {name}` shows its length and its oldest element"
        )));
    }
    let view = &view;
    let (mut version, mut old) = loop {
        if let Some(first) = snapshot_within(view, IN_PLACE_PATIENCE) {
            break first;
        }
        writeln!(
            out,
            "{name}: an in-place write has been under way for over {IN_PLACE_PATIENCE:?}; \
             waiting for it to be published"
        )?;
        out.flush()?;
        view.wait_for_change(view.version(), None)?;
    };
    if !paths.is_empty() {
        if let Some(why) = values::too_large_to_decode_by_kind(view.fields()) {
            return Err(Failure::Message(format!("`{name}`: {why}")));
        }
    }
    for path in paths {
        // A path that names no field is refused now, with the fields there are.
        view.value(&old, path)?;
    }
    // By kind for a region with kinds or when fields are named; else one line per changed
    // primitive element, as before kinds existed.
    let by_value = has_kinds(view) || !paths.is_empty();
    writeln!(
        out,
        "watching {name} ({}) from version {version}; Ctrl-C stops",
        printable(view.type_name())
    )?;
    out.flush()?;
    let mut seen = 0u64;
    while count.is_none_or(|count| seen < count) {
        view.wait_for_change(version, None)?;
        let Some((now, new)) = snapshot_within(view, IN_PLACE_PATIENCE) else {
            // A new in-place write began right after the publish and is not finishing: sleep
            // until it is published (`version` is still the last one printed).
            view.wait_for_change(view.version(), None)?;
            continue;
        };
        if now == version {
            continue;
        }
        let lines = if by_value {
            values::changes(view, paths, &old, &new, max_elements)
        } else {
            changes(view, &old, &new, max_elements)
        };
        if lines.is_empty() && !paths.is_empty() {
            // None of the watched fields changed: nothing to show, nothing counted.
            (version, old) = (now, new);
            continue;
        }
        // Versions count commits: say so when several are shown as one change, so that a
        // jump is not taken for lost updates.
        match now.wrapping_sub(version) {
            1 => writeln!(out, "version {now}")?,
            commits => writeln!(
                out,
                "version {now} ({commits} commits since version {version}, shown as one change)"
            )?,
        }
        if lines.is_empty() {
            writeln!(out, "  (no field changed)")?;
        }
        for line in lines {
            writeln!(out, "  {line}")?;
        }
        out.flush()?;
        (version, old) = (now, new);
        seen += 1;
    }
    Ok(())
}
