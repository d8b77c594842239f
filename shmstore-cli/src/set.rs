//! `shmstore set LOCATION FIELD=VALUE…`: changes values, parsed by each field's kind, as one
//! update under the region's lock ([`Editor::commit`]): readers see all the assignments or
//! none, and a crash in the middle is rolled back by the next locker (or poisons an
//! `in_place` region) as with `Shm::lock`.

use std::io::Write;

use shmstore::inspect::Editor;
use shmstore::{printable, Location};

use crate::failure::{terminal, Failure, Outcome};

/// One `FIELD=VALUE` argument, split at its first `=` (field paths have none). An empty
/// FIELD (`=VALUE`) is the whole value, the only path of a type without fields (a `u64`, an
/// array), as `shmstore get NAME ''` reads it.
pub fn parse_assignment(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((field, value)) => Ok((field.to_string(), value.to_string())),
        None => Err(format!(
            "`{}` is not FIELD=VALUE: write the field's name, `=` and the value, such as \
             log_level=Debug or service_name=\"billing api\" (`=VALUE` for a value without \
             fields, such as a u64)",
            printable(text)
        )),
    }
}

/// How `set` opens the region.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Allow an `in_place` region (its readers wait for the commit; a crash poisons it).
    pub in_place: bool,
    /// Allow a region that belongs to another user.
    pub allow_other_owner: bool,
}

/// Parses every assignment by the region's own descriptor, then commits them all at once;
/// nothing is written if any of them is refused.
pub fn run(
    name: &str,
    assignments: &[(String, String)],
    options: Options,
    out: &mut dyn Write,
) -> Outcome {
    let location = Location::parse(name);
    let editor = Editor::options()
        .in_place(options.in_place)
        .allow_other_owner(options.allow_other_owner)
        .open(location)
        .map_err(|e| match e {
            // The library names its option; say the command's flag too.
            shmstore::Error::PermissionDenied { name, detail }
                if detail.contains("allow_other_owner") =>
            {
                Failure::Message(format!(
                    "{}; with this command: `shmstore set --allow-other-owner`",
                    shmstore::Error::PermissionDenied { name, detail }
                ))
            }
            other => other.into(),
        })?;
    if let Some(why) = crate::values::too_large_to_decode_by_kind(editor.fields()) {
        return Err(Failure::Message(format!(
            "`{}`: {why}",
            printable(editor.name())
        )));
    }
    let mut writes = Vec::new();
    for (field, value) in assignments {
        writes.extend(editor.parse_assignment(field, value)?);
    }
    let committed = editor.commit(&writes)?;
    let shown = printable(editor.name()).into_owned();
    writeln!(out, "{shown}: version {}", committed.version)?;
    out.flush()?;
    if committed.poisoned {
        eprintln!(
            "shmstore: warning: `{}` was poisoned before this commit (an in-place writer died \
             mid-write) and stays so: other fields may be half-written; check the value with \
             `shmstore inspect {}`, then clear the poison from a program (Shm::clear_poison)",
            terminal(&shown),
            terminal(&shown)
        );
    }
    Ok(())
}
