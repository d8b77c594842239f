//! `shmstore watch LOCATION`: prints each new version of a value and the fields it changed.
//!
//! It waits in [`Inspector::wait_for_change`](shmstore::inspect::Inspector::wait_for_change)
//! between versions: no loop of its own here. The inspector re-reads a POSIX object's or a file's
//! version with `pread` every 10 ms (it never maps them, so a peer that shrinks the object
//! ends `watch` with an error, not SIGBUS) and sleeps on a System V segment's futex. Versions
//! count commits (1, 2, 3 …); versions published faster than it prints are shown together, as
//! the change from the last version it printed, with the number of commits they were.

use std::io::Write;

use shmstore::inspect::Inspector;
use shmstore::{printable, Error};

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
    let location = name;
    let (entry, view) = value_region(location)?;
    let name = &*printable(&entry.name);
    let mut view = view;
    let (mut version, mut old) = first_snapshot(name, &view, out)?;
    let mut by_value = decode_by_value(name, &view, paths, &old)?;
    writeln!(
        out,
        "watching {name} ({}) from version {version}; Ctrl-C stops",
        printable(view.type_name())
    )?;
    out.flush()?;
    let mut seen = 0u64;
    while count.is_none_or(|count| seen < count) {
        match view.wait_for_change(version, None) {
            Ok(_) => {}
            // A migration replaced the region under its name (README, "Changing a region's
            // type"): go on with the region that replaced it, from the version it is at.
            Err(Error::Removed { .. }) => {
                view = value_region(location)?.1;
                (version, old) = first_snapshot(name, &view, out)?;
                by_value = decode_by_value(name, &view, paths, &old)?;
                writeln!(
                    out,
                    "{name}: replaced under its name by a region of type {} (a migration); \
                     watching it from version {version}",
                    printable(view.type_name())
                )?;
                out.flush()?;
                continue;
            }
            Err(other) => return Err(other.into()),
        }
        let view = &view;
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

/// The value region at `location`; a queue is refused (it has no versions).
fn value_region(location: &str) -> Outcome<(scan::Entry, Inspector)> {
    let (entry, view) = scan::region(location)?;
    if entry.kind == Kind::Queue {
        let name = printable(&entry.name);
        return Err(Failure::Message(format!(
            "`{name}` is a queue, and watch follows values: a queue has no versions; \
             `shmstore inspect {name}` shows its length and its oldest element"
        )));
    }
    Ok((entry, view))
}

/// The first consistent snapshot to compare the next versions with, waiting (and saying so)
/// while an in-place write is under way.
fn first_snapshot(name: &str, view: &Inspector, out: &mut dyn Write) -> Outcome<(u64, Vec<u8>)> {
    loop {
        if let Some(first) = snapshot_within(view, IN_PLACE_PATIENCE) {
            return Ok(first);
        }
        writeln!(
            out,
            "{name}: an in-place write has been under way for over {IN_PLACE_PATIENCE:?}; \
             waiting for it to be published"
        )?;
        out.flush()?;
        view.wait_for_change(view.version(), None)?;
    }
}

/// Whether changes are shown by kind (a region with kinds, or named fields) rather than one
/// line per changed primitive element, as before kinds existed; each of `paths` is checked
/// to name a field (refused now, with the fields there are).
fn decode_by_value(name: &str, view: &Inspector, paths: &[String], old: &[u8]) -> Outcome<bool> {
    if !paths.is_empty() {
        if let Some(why) = values::too_large_to_decode_by_kind(view.fields()) {
            return Err(Failure::Message(format!("`{name}`: {why}")));
        }
    }
    for path in paths {
        view.value(old, path)?;
    }
    Ok(has_kinds(view) || !paths.is_empty())
}
