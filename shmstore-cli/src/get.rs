//! `shmstore get LOCATION [FIELD…]`: just the values, decoded by their kinds, for scripts.
//!
//! With fields: one value per line, text raw (unquoted) so that
//! `$(shmstore get cfg service_name)` is the text itself; without: `name = value` for every
//! top-level field, as `inspect` shows them. `--json` prints one object, field name to typed
//! value (src/values.rs). A value another process stored wrongly (a length above its
//! capacity, text that is not UTF-8) is reported on stderr and the exit code is 1, after the
//! other values are printed (as an empty line when fields were named).

use std::io::Write;

use shmstore::inspect::Value;
use shmstore::printable;

use crate::failure::{terminal, Failure, Outcome};
use crate::fields::{snapshot_within, IN_PLACE_PATIENCE};
use crate::scan::{self, Kind};
use crate::values::{self, name_text};

/// Prints the values of `paths` (every top-level field when empty) in the region at `name`.
pub fn run(name: &str, paths: &[String], as_json: bool, out: &mut dyn Write) -> Outcome {
    let (entry, view) = scan::region(name)?;
    let shown = printable(&entry.name).into_owned();
    if entry.kind == Kind::Queue {
        return Err(Failure::Message(format!(
            "`{shown}` is a queue, and get reads values; `shmstore inspect {shown}` shows its \
             oldest element"
        )));
    }
    if let Some(why) = values::too_large_to_decode_by_kind(view.fields()) {
        return Err(Failure::Message(format!("`{shown}`: {why}")));
    }
    let Some((_, bytes)) = snapshot_within(&view, IN_PLACE_PATIENCE) else {
        return Err(Failure::Message(format!(
            "`{shown}`: an in-place write has been under way for over {IN_PLACE_PATIENCE:?}; \
             try again, or see `shmstore inspect {shown}`"
        )));
    };
    let found: Vec<(String, Value)> = if paths.is_empty() {
        view.values(&bytes)
    } else {
        paths
            .iter()
            .map(|path| Ok((path.clone(), view.value(&bytes, path)?)))
            .collect::<Result<_, shmstore::Error>>()?
    };
    let whole = matches!(found.as_slice(), [(name, _)] if name.is_empty());
    if as_json {
        let json = if whole {
            values::to_json(&found[0].1, usize::MAX)
        } else {
            values::object(&found, usize::MAX)
        };
        writeln!(out, "{}", crate::json::pretty(&json))?;
    } else if paths.is_empty() && !whole {
        for (name, value) in &found {
            writeln!(
                out,
                "{} = {}",
                terminal(name_text(name)),
                values::text(value, usize::MAX)
            )?;
        }
    } else {
        for (_, value) in &found {
            // A value that cannot be read prints as an empty line (its error goes to stderr),
            // so that the lines still match the fields asked for and no message is taken
            // for a value.
            match values::problem(value) {
                Some(_) => writeln!(out)?,
                None => writeln!(out, "{}", values::plain(value))?,
            }
        }
    }
    out.flush()?;
    let mut failed = false;
    for (path, value) in &found {
        if let Some(why) = values::problem(value) {
            eprintln!(
                "shmstore: `{}` in `{shown}` cannot be read: {}",
                terminal(name_text(path)),
                terminal(&why)
            );
            failed = true;
        }
    }
    if failed {
        Err(Failure::Reported)
    } else {
        Ok(())
    }
}
