//! `shmstore rm NAME…`: removes regions by name.
//!
//! Removing a name is what `shmstore::unlink` does: processes that have the region open keep
//! using it until they close it, and a new region can be created under the name at once.
//! Objects that are not shmstore regions belong to other programs: they are refused unless
//! `--force` says the user knows.

use std::io::Write;

use shmstore::Error;

use crate::failure::{Failure, Outcome};
use crate::scan;

/// Removes every name it can; reports each failure on stderr and goes on with the others.
pub fn run(names: &[String], force: bool, out: &mut dyn Write) -> Outcome {
    let mut failed = false;
    for name in names {
        match remove(name, force) {
            Ok(what) => {
                writeln!(out, "removed {name} ({what})")?;
                out.flush()?;
            }
            Err(Failure::Message(message)) => {
                eprintln!("shmstore: {message}");
                failed = true;
            }
            Err(other) => return Err(other),
        }
    }
    if failed {
        Err(Failure::Reported)
    } else {
        Ok(())
    }
}

/// Removes one name; says what it was.
fn remove(name: &str, force: bool) -> Outcome<String> {
    shmstore::validate_name(name)?;
    let Some(entry) = scan::classify(name) else {
        return Err(Error::NotFound {
            name: name.to_string(),
        }
        .into());
    };
    let what = match (&entry.view, entry.kind) {
        (Some(view), _) => format!("{} {}", entry.kind.as_str(), view.type_name()),
        (None, kind) => kind.as_str().to_string(),
    };
    if !entry.kind.is_region() && !force {
        return Err(Failure::Message(format!(
            "refusing to remove `{name}`: it is not a shmstore region ({}); add --force to \
             remove it anyway",
            entry.reason.as_deref().unwrap_or(entry.kind.as_str())
        )));
    }
    // Our read-only view must not outlive the name: nothing depends on it, but holding a
    // mapping of what we remove would be odd.
    drop(entry);
    shmstore::unlink(name)?;
    Ok(what)
}
