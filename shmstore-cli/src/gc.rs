//! `shmstore gc`: removes regions that nobody can be using any more.
//!
//! A region is removed only when both hold: its creator is dead (no `/proc/PID`, or it was
//! created during another boot), and no live process maps it or holds a descriptor on it
//! (`/proc/*/maps` and `/proc/*/fd`, counting only paths without ` (deleted)`: those are the
//! object now under the name). A region whose creator died before finishing it (incomplete)
//! counts as one with a dead creator. Foreign objects and regions still being initialised
//! are never touched.
//!
//! It covers POSIX regions (`/dev/shm`) only. A System V segment or a file region is never
//! collected: files are not searched for, and a region in a file is usually meant to outlive
//! its processes; `shmstore rm` removes either by its location.
//!
//! Some processes cannot be looked into: other users' processes unless gc runs as root, and
//! processes more privileged than gc even then. Any of them could map any region, so by
//! default gc then removes nothing and says which processes it could not see;
//! `--ignore-unreadable` counts them as using nothing (what `lsof` and `fuser` do silently).
//!
//! A process can still open a region between the scan and the removal; it keeps working on
//! the removed region, as with `rm`. The object's inode is checked again just before the
//! removal, so a region re-created under the same name meanwhile is not removed.

use std::io::Write;

use crate::failure::{Failure, Outcome};
use crate::procs::{self, ShmUsers};
use crate::scan::{self, Entry, Kind};

/// What `gc` was asked to do.
pub struct Options<'a> {
    /// Only regions whose name starts with this.
    pub prefix: Option<&'a str>,
    /// Say what would be removed, remove nothing.
    pub dry_run: bool,
    /// Also say why each region was kept.
    pub verbose: bool,
    /// Count processes whose maps cannot be read as using nothing.
    pub ignore_unreadable: bool,
}

/// Removes (or with `dry_run` lists) the abandoned regions.
pub fn run(options: &Options<'_>, out: &mut dyn Write) -> Outcome {
    let entries: Vec<Entry> = scan::all()?
        .into_iter()
        .filter(|e| options.prefix.is_none_or(|p| e.name.starts_with(p)))
        .collect();
    let users = ShmUsers::scan()
        .map_err(|e| Failure::Message(format!("cannot read /proc to find who uses what: {e}")))?;
    let (mut removed, mut kept, mut blocked) = (0usize, 0usize, 0usize);
    let mut failed = false;
    for entry in entries {
        let verdict = judge(&entry, &users, options.ignore_unreadable);
        let name = entry.name.clone();
        let identity = entry.object.identity;
        let shown = shmstore::printable(&name);
        // Drop our read-only view before removing the name.
        drop(entry);
        match verdict {
            Verdict::Skip => continue,
            Verdict::Keep(why) => {
                kept += 1;
                if options.verbose {
                    writeln!(out, "kept {shown}: {why}")?;
                }
            }
            Verdict::Unseen(why) => {
                kept += 1;
                blocked += 1;
                if options.verbose {
                    writeln!(out, "kept {shown}: {why}")?;
                }
            }
            Verdict::Remove(why) if options.dry_run => {
                removed += 1;
                writeln!(out, "would remove {shown}: {why}")?;
            }
            Verdict::Remove(why) => {
                if scan::classify(&name).map(|e| e.object.identity) != Some(identity) {
                    kept += 1;
                    if options.verbose {
                        writeln!(out, "kept {shown}: it was removed or replaced meanwhile")?;
                    }
                    continue;
                }
                if let Err(e) = shmstore::unlink(&name) {
                    // Another user's region in the sticky /dev/shm, say: go on with the rest.
                    eprintln!("shmstore: {}", crate::failure::terminal(&e.to_string()));
                    failed = true;
                    continue;
                }
                removed += 1;
                writeln!(out, "removed {shown}: {why}")?;
            }
        }
        out.flush()?;
    }
    let verb = if options.dry_run {
        "would remove"
    } else {
        "removed"
    };
    writeln!(
        out,
        "gc: {verb} {removed} region{}, kept {kept}",
        plural(removed)
    )?;
    if blocked > 0 {
        writeln!(
            out,
            "gc: kept {blocked} abandoned-looking region{} because the memory maps of {} cannot \
             be read; run as root, or pass --ignore-unreadable to count such processes as \
             using nothing",
            plural(blocked),
            users.unreadable_text()
        )?;
    } else if options.ignore_unreadable && !users.unreadable.is_empty() {
        writeln!(
            out,
            "gc: --ignore-unreadable: did not look into {}, whose memory maps cannot be read",
            users.unreadable_text()
        )?;
    }
    out.flush()?;
    if failed {
        Err(Failure::Reported)
    } else {
        Ok(())
    }
}

enum Verdict {
    /// Not a region gc considers (foreign, unreadable): not even counted.
    Skip,
    /// In use, or its creator is alive.
    Keep(String),
    /// Abandoned as far as gc can see, but some processes cannot be looked into.
    Unseen(String),
    Remove(String),
}

fn judge(entry: &Entry, users: &ShmUsers, ignore_unreadable: bool) -> Verdict {
    let creator = match entry.kind {
        Kind::Value | Kind::Queue => {
            let boot_id = entry.view.as_ref().map(|v| v.header_fields().boot_id);
            let pid = entry.creator_pid.unwrap_or(0);
            if procs::creator_alive(pid, boot_id) {
                return Verdict::Keep(format!("its creator, pid {pid}, is alive"));
            }
            format!("its creator, pid {pid}, is dead")
        }
        // The library reports "incomplete" only after taking the `flock` that a live creator
        // holds: the creator is dead.
        Kind::Incomplete => match entry.creator_pid {
            Some(pid) => format!("it is incomplete and its creator, pid {pid}, is dead"),
            None => "it is incomplete and its creator is dead".to_string(),
        },
        Kind::Initialising => {
            return Verdict::Keep("its creator is still initialising it".to_string())
        }
        Kind::Foreign | Kind::Unreadable => return Verdict::Skip,
    };
    if let Some(pids) = users.of(&entry.name) {
        let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
        return Verdict::Keep(format!("in use by pid {}", pids.join(", ")));
    }
    if !users.unreadable.is_empty() && !ignore_unreadable {
        return Verdict::Unseen(format!(
            "{creator} and no process it can see uses it, but it cannot see into {}",
            users.unreadable_text()
        ));
    }
    Verdict::Remove(format!("{creator} and no process uses it"))
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
