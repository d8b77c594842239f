//! `shmstore gc`: removes regions that nobody can be using any more.
//!
//! A region is removed only when both hold: its creator is dead (no `/proc/PID`, a zombie, or
//! it was created during another boot), and no live process maps it or holds a descriptor on
//! it (`/proc/*/maps` and `/proc/*/fd`). Mappings and descriptors are matched by the object's
//! device and inode, never by path: a creator's mappings and descriptor are of the unnamed
//! `O_TMPFILE` object it linked to the name (`/dev/shm/#1234 (deleted)`), and so are those of
//! every process it forked. A region whose creator died before finishing it (incomplete)
//! counts as one with a dead creator. Foreign objects and regions still being initialised
//! are never touched.
//!
//! It covers POSIX regions (`/dev/shm`) only. A System V segment or a file region is never
//! collected: files are not searched for, and a region in a file is usually meant to outlive
//! its processes; `shmstore rm` removes either by its location.
//!
//! It can only judge by the processes `/proc` shows, so by default it removes nothing when
//! `/proc` may not show them all, and says why:
//! - gc runs in a PID namespace other than the host's (a container): processes outside it
//!   may share `/dev/shm` (the containers of a Kubernetes pod share IPC, not PIDs), and a
//!   creator pid in a header may be another namespace's;
//! - `/proc` is mounted with `hidepid`;
//! - some processes cannot be looked into: other users' processes unless gc runs as root, and
//!   processes more privileged than gc even then.
//!
//! `--ignore-hidden-processes` and `--ignore-unreadable` let it go on anyway, counting what it
//! cannot see as using nothing (what `lsof` and `fuser` do silently).
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
    /// Remove regions even when `/proc` may not show every process (another PID namespace,
    /// `hidepid`).
    pub ignore_hidden_processes: bool,
}

/// Removes (or with `dry_run` lists) the abandoned regions.
pub fn run(options: &Options<'_>, out: &mut dyn Write) -> Outcome {
    let entries: Vec<Entry> = scan::all()?
        .into_iter()
        .filter(|e| options.prefix.is_none_or(|p| e.name.starts_with(p)))
        .collect();
    let users = ShmUsers::scan()
        .map_err(|e| Failure::Message(format!("cannot read /proc to find who uses what: {e}")))?;
    let hidden = procs::hidden_processes();
    let blind = Blind {
        hidden: hidden
            .as_deref()
            .filter(|_| !options.ignore_hidden_processes),
        unreadable: !users.unreadable.is_empty() && !options.ignore_unreadable,
    };
    let (mut removed, mut kept, mut blocked) = (0usize, 0usize, 0usize);
    let mut failed = false;
    for entry in entries {
        let verdict = judge(&entry, &users, &blind);
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
                if scan::classify(&name, scan::Look::Quick).map(|e| e.object.identity)
                    != Some(identity)
                {
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
        let why = match blind.hidden {
            Some(hidden) => format!(
                "/proc may not show every process: {hidden}; run gc on the host, where /proc \
                 shows every process, or pass --ignore-hidden-processes if no process outside \
                 this view can use these regions"
            ),
            None => format!(
                "the memory maps of {} cannot be read; {}",
                users.unreadable_text(),
                unreadable_advice()
            ),
        };
        writeln!(
            out,
            "gc: kept {blocked} abandoned-looking region{} because {why}",
            plural(blocked),
        )?;
    }
    if let (Some(hidden), true) = (&hidden, options.ignore_hidden_processes) {
        writeln!(
            out,
            "gc: --ignore-hidden-processes: /proc may not show every process: {hidden}"
        )?;
    }
    if options.ignore_unreadable && !users.unreadable.is_empty() {
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
    /// Abandoned as far as gc can see, but it cannot see every process.
    Unseen(String),
    Remove(String),
}

/// What gc cannot see, and was not told to ignore.
struct Blind<'a> {
    /// Why `/proc` may not show every process ([`procs::hidden_processes`]).
    hidden: Option<&'a str>,
    /// Some processes' maps cannot be read.
    unreadable: bool,
}

fn judge(entry: &Entry, users: &ShmUsers, blind: &Blind<'_>) -> Verdict {
    let creator = match entry.kind {
        Kind::Value | Kind::Queue => {
            let boot_id = entry.view.as_ref().map(|v| v.header_fields().boot_id);
            let pid = entry.creator_pid.unwrap_or(0);
            if procs::creator_alive(pid, boot_id) {
                return Verdict::Keep(format!("its creator, pid {pid}, is alive"));
            }
            format!("its creator, pid {pid}, is dead")
        }
        // The library reports "incomplete" only after probing the initialiser lock that a live
        // creator holds: the creator is dead.
        Kind::Incomplete => match entry.creator_pid {
            Some(pid) => format!("it is incomplete and its creator, pid {pid}, is dead"),
            None => "it is incomplete and its creator is dead".to_string(),
        },
        Kind::Initialising => {
            return Verdict::Keep("its creator is still initialising it".to_string())
        }
        Kind::Foreign | Kind::Unreadable => return Verdict::Skip,
    };
    if let Some(pids) = users.of(entry.object.identity) {
        let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
        return Verdict::Keep(format!("in use by pid {}", pids.join(", ")));
    }
    if let Some(hidden) = blind.hidden {
        return Verdict::Unseen(format!(
            "{creator} and no process it can see uses it, but /proc may not show every \
             process: {hidden}"
        ));
    }
    if blind.unreadable {
        return Verdict::Unseen(format!(
            "{creator} and no process it can see uses it, but it cannot see into {}",
            users.unreadable_text()
        ));
    }
    Verdict::Remove(format!("{creator} and no process uses it"))
}

/// What to do about processes whose maps cannot be read: running as root helps only those
/// who are not root already.
fn unreadable_advice() -> &'static str {
    if procs::effective_uid() == Some(0) {
        "even root may not read those of processes more privileged than gc (a sandbox's \
         init, say); pass --ignore-unreadable if they use no region"
    } else {
        "run gc as root, or pass --ignore-unreadable to count such processes as using nothing"
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
