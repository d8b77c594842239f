//! `shmstore rm LOCATION…`: removes regions by name, path or System V key.
//!
//! Removing a region is what `shmstore::unlink` does: the name or the file is unlinked, the
//! segment is marked for removal (`IPC_RMID`). Processes that have the region open keep using
//! it until they close it, and a new region can be created at the same location at once.
//! Objects that are not shmstore regions belong to other programs: they are refused unless
//! `--force` says the user knows. A file is read (its magic) before anything is decided, as an
//! object in `/dev/shm` is; a segment is judged by the library's read-only open.

use std::io::Write;

use shmstore::{Error, Location};

use crate::failure::{Failure, Outcome};
use crate::scan::{self, Backend, Entry, Kind};

/// Removes every location it can; reports each failure on stderr and goes on with the others.
pub fn run(names: &[String], force: bool, out: &mut dyn Write) -> Outcome {
    let mut failed = false;
    for name in names {
        match remove(name, force) {
            Ok((shown, what)) => {
                let (shown, what) = (shmstore::printable(&shown), shmstore::printable(&what));
                writeln!(out, "removed {shown} ({what})")?;
                out.flush()?;
            }
            Err(Failure::Message(message)) => {
                eprintln!("shmstore: {}", crate::failure::terminal(&message));
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

/// Removes one location (as [`Location::parse`] reads it); says what it was.
fn remove(text: &str, force: bool) -> Outcome<(String, String)> {
    let location = Location::parse(text);
    location.validate()?;
    let Some(entry) = scan::classify_at(&location, scan::Look::Thorough) else {
        return Err(Error::NotFound {
            name: location.to_string(),
        }
        .into());
    };
    let shown = entry.name.clone();
    let what = match (&entry.view, entry.kind) {
        (Some(view), _) => format!("{} {}", entry.kind.as_str(), view.type_name()),
        (None, kind) => kind.as_str().to_string(),
    };
    if !force {
        if let Some(why) = refusal(&entry) {
            return Err(Failure::Message(format!(
                "refusing to remove `{shown}`: {why}; add --force to remove it anyway"
            )));
        }
    }
    let identity = entry.object.identity;
    // Our read-only view must not outlive the name: nothing depends on it, but holding a
    // mapping of what we remove would be odd.
    drop(entry);
    // What was judged must be what is removed: not another object put there meanwhile.
    if scan::identity_of(&location) != Some(identity) {
        return Err(Failure::Message(format!(
            "`{shown}` was removed or replaced while it was looked at; nothing was removed, \
             run the command again to judge what is there now"
        )));
    }
    shmstore::unlink(&location)?;
    Ok((shown, what))
}

/// Why `entry` is not removed without `--force`, or `None` if it may be.
fn refusal(entry: &Entry) -> Option<String> {
    match entry.kind {
        Kind::Value | Kind::Queue | Kind::Incomplete => None,
        // A segment that is not ready while its creator lives: a region being initialised,
        // or as likely another program's new segment, still all zeros.
        Kind::Initialising if entry.backend() == Backend::SysV => Some(
            "it is not a ready shmstore region and the process that created it is alive (a \
             region being initialised, or another program's new segment)"
                .to_string(),
        ),
        Kind::Initialising => None,
        Kind::Foreign | Kind::Unreadable => Some(format!(
            "it is not a shmstore region ({})",
            entry.reason.as_deref().unwrap_or(entry.kind.as_str())
        )),
    }
}
