//! Migration: replacing a region under its name by a region of another (wider) stored type,
//! without losing a committed write, while other processes keep their handles of the old one
//! (FORMAT.md, "Migration").
//!
//! Under the old region's lock, the migrator builds the new object unnamed beside the old one
//! (same directory, mode and owner), fills both its payload copies from the old committed
//! value, continues the old version, and publishes it "ready"; then it stores
//! `LIFECYCLE_MIGRATING` in the old header, gives the new object a temporary name that only
//! the old region's lock holder makes ([`temporary_name`]), renames it over the region's name
//! (one step: the name refers to the old object or to the new one at every moment), stores
//! `LIFECYCLE_MOVED` and wakes every sleeper of the old region. Handles look at the old
//! header's `lifecycle` on every operation ([`Region::has_moved`]) and reopen the name.
//!
//! Where a migrator that dies leaves things (each is a test below):
//! - before `LIFECYCLE_MIGRATING`: the old region, untouched; the new object was unnamed
//!   (`O_TMPFILE`) and is gone with the process;
//! - after it, before the rename: the old region under the name, `MIGRATING`, perhaps the
//!   new object under its temporary name. The next locker of the old region (the lock answers
//!   `EOWNERDEAD`) removes the temporary name and stores `LIFECYCLE_CURRENT`
//!   ([`Region::settle_dead_migration`]); until then handles that look find the name still
//!   theirs and go on;
//! - after the rename: the new region, complete, under the name. Handles of the old one that
//!   find `MIGRATING` see that the name refers to another object and follow; the next locker
//!   stores `LIFECYCLE_MOVED` and wakes the sleepers.

use std::ffi::OsString;
use std::io;
use std::sync::atomic::Ordering::{Relaxed, Release, SeqCst};

use super::{fd, Handle, Region, RegionSpec};
use crate::error::{Error, Result};
use crate::format::{FLAG_NOTIFY_READERS, LIFECYCLE_CURRENT, LIFECYCLE_MIGRATING, LIFECYCLE_MOVED};
use crate::location::Location;
use crate::sys::object::{self, Dir, HiddenName};
use crate::sys::process;

/// The steps of [`Region::migrate`] a test can stop the migrator at (see [`reached`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Step {
    BeforeBuild = 1,
    AfterBuild,
    AfterMigrating,
    AfterTemporaryName,
    AfterRename,
    AfterMoved,
    BeforeUnlock,
}

/// In a unit test's forked child: the step at which the migrator ends its process at once
/// (`_exit`), as a process killed there would; 0 for none.
#[cfg(test)]
pub(super) static CRASH_AT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Marks a step of the migration: in tests, the process ends here if told to.
#[inline]
fn reached(step: Step) {
    #[cfg(test)]
    if CRASH_AT.load(Relaxed) == step as u32 {
        crate::sys::child::exit_now(0);
    }
    let _ = step;
}

/// The name the migrator of the object `ino`, named `file_name`, links the new object under
/// before it renames it over `file_name`: hidden (a leading dot), next to it, and made only by
/// the old region's lock holder, so the next locker after a migrator that died knows which
/// name to remove ([`remove_temporary_name`]).
fn temporary_name(file_name: &std::ffi::OsStr, ino: u64) -> OsString {
    let mut name = OsString::from(".");
    name.push(file_name);
    name.push(format!(".shmstore-migrating-{ino}"));
    name
}

/// Removes the temporary name a migrator of `region` that died may have left (nothing for a
/// System V segment, which never migrates). The caller holds the region's lock.
pub(super) fn remove_temporary_name(region: &Region) {
    if let Handle::File { dir, file_name, .. } = &region.handle {
        let _ = dir.unlink(&temporary_name(file_name, region.object.ino));
    }
}

impl Region {
    /// Migrates the region: replaces it under its location by a new region of `target`'s
    /// stored type (`target.stored`; the region's own location, mode, owner and flags are
    /// kept: `target`'s `in_place`, `notify_readers`, `mode` and `unlink_on_drop` are not
    /// used), whose payload `carry(old committed value, new zeroed value)` fills (both copies),
    /// and whose version continues this one's (a waiter's `since` keeps its meaning; an
    /// in-place region's poison carries over). Then this region is `LIFECYCLE_MOVED` and its
    /// sleepers are woken; the caller releases the lock without a write and reopens the
    /// location. See the module docs for each step and what a death there leaves.
    ///
    /// # Errors
    ///
    /// Nothing changed in each case (the region stays current):
    /// [`Error::NotMigratable`] for a queue or a System V segment; [`Error::Removed`] when the
    /// location no longer refers to this region; [`Error::PermissionDenied`] when the region
    /// belongs to another user and this process is not root (only the owner may replace it),
    /// or the directory refuses; [`Error::Io`] when the new region cannot be made (a full
    /// tmpfs or disk: `fallocate` with `ENOSPC`).
    ///
    /// # Safety
    ///
    /// This thread holds the region's lock, acquired through `self`, and wrote nothing under
    /// it.
    pub(crate) unsafe fn migrate(
        &self,
        target: &RegionSpec,
        carry: &dyn Fn(&[u8], &mut [u8]),
    ) -> Result<()> {
        let name = self.name();
        if self.info.queue.is_some() || target.queue.is_some() {
            return Err(Error::NotMigratable {
                name: name.to_string(),
                reason: "it is a queue, and a queue's element type cannot change: its slots \
                         are laid out for one element size while producers and consumers use \
                         them"
                    .into(),
            });
        }
        let Handle::File {
            file,
            dir,
            file_name,
        } = &self.handle
        else {
            return Err(Error::NotMigratable {
                name: name.to_string(),
                reason: "it is a System V segment, and a key cannot be given to another \
                         segment in one step, so the handles of the old one could not follow it"
                    .into(),
            });
        };
        if self.is_removed()? {
            return Err(Error::Removed {
                name: name.to_string(),
            });
        }
        let (uid, gid) = object::owner(file).map_err(|e| Error::io(name, "fstat", e))?;
        let mode = object::stat(file)
            .map_err(|e| Error::io(name, "fstat", e))?
            .mode;
        let me = process::effective_uid();
        if uid != me && me != 0 {
            return Err(Error::PermissionDenied {
                name: name.to_string(),
                detail: format!(
                    "only the region's owner may migrate it to another type (it is replaced by \
                     a new object with the same owner and mode), and it belongs to uid {uid} \
                     while this process runs as uid {me}; start the new version as uid {uid} \
                     first, or as root"
                ),
            });
        }
        let spec = RegionSpec {
            in_place: self.in_place(),
            notify_readers: self.info.flags & FLAG_NOTIFY_READERS != 0,
            mode,
            unlink_on_drop: false,
            ..target.clone()
        };
        let beside = fd::Target {
            location: self.location.clone(),
            name: self.name.clone(),
            dir: dir.clone(),
            file_name: file_name.clone(),
        };
        reached(Step::BeforeBuild);
        // Dropped on every early return: an `O_TMPFILE` object vanishes with its descriptor,
        // and a hidden creation name (file systems without `O_TMPFILE`) is removed.
        let (unnamed, map, info) = fd::build_unnamed(&beside, &spec)?;
        if object::owner(&unnamed.file).map_err(|e| Error::io(name, "fstat", e))? != (uid, gid) {
            object::set_owner(&unnamed.file, uid, gid)
                .map_err(|e| Error::io(name, "fchown the migrated region", e))?;
            // `fchown` may clear mode bits: the old ones again.
            object::set_mode(&unnamed.file, mode).map_err(|e| Error::io(name, "fchmod", e))?;
        }
        let file_of_new = unnamed
            .file
            .try_clone()
            .map_err(|e| Error::io(name, "dup", e))?;
        let new = fd::new_region(&beside, file_of_new, map, info)?;
        // Atomic byte loads: sound whatever a peer does meanwhile; under the lock, with
        // nothing written by us, the working copy is the committed value.
        let old_value = self
            .payload()
            .map(|payload| payload.load_bytes())
            .unwrap_or_default();
        // SAFETY: `new` is unnamed and its only handle is ours: nothing else touches its
        // payload.
        unsafe { new.fill(&mut |value| carry(&old_value, value)) };
        let old_header = self.header();
        let new_header = new.header();
        new_header
            .version
            .store(old_header.version.load(Relaxed), Relaxed);
        if self.poisoned() {
            new_header.poisoned.store(1, Relaxed);
        }
        new_header.publish_ready();
        if matches!(self.location, Location::File(_)) {
            // The new file's bytes reach the disk before its name does.
            new.flush()?;
        }
        reached(Step::AfterBuild);
        old_header.lifecycle.store(LIFECYCLE_MIGRATING, SeqCst);
        reached(Step::AfterMigrating);
        let renamed = self.rename_over_name(dir, &unnamed.file, unnamed.hidden, file_name);
        if let Err(e) = renamed {
            // Nothing was renamed: the region stays what its name refers to.
            old_header.lifecycle.store(LIFECYCLE_CURRENT, Release);
            return Err(e);
        }
        reached(Step::AfterRename);
        old_header.lifecycle.store(LIFECYCLE_MOVED, SeqCst);
        reached(Step::AfterMoved);
        self.wake_every_sleeper();
        reached(Step::BeforeUnlock);
        Ok(())
    }

    /// Gives the new object `file` a temporary name in the region's directory `dir`, beside
    /// the region's `file_name` (its creation name `hidden` where the file system has no
    /// `O_TMPFILE`, otherwise [`temporary_name`]), checks that the location still refers to
    /// this region, and renames the new object over it. The temporary name is removed on any
    /// failure.
    fn rename_over_name(
        &self,
        dir: &Dir,
        file: &std::fs::File,
        hidden: Option<HiddenName>,
        file_name: &std::ffi::OsStr,
    ) -> Result<()> {
        let name = self.name();
        let temporary = match hidden {
            Some(hidden) => hidden,
            None => {
                let temporary = temporary_name(file_name, self.object.ino);
                let linked = match dir.link_as_hidden(file, temporary.clone()) {
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        // A migrator of this region that died left it (the lock's next holder
                        // removes it; this is that holder, if the repair could not).
                        let _ = dir.unlink(&temporary);
                        match dir.link_as_hidden(file, temporary) {
                            // Something this process cannot remove holds the name: anyone may
                            // create entries in `/dev/shm`, and the name is predictable (a
                            // directory; another user's file in the sticky directory). A
                            // unique hidden name instead, as without `O_TMPFILE`, rather than
                            // no migration ever: a death before the rename leaves it behind.
                            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                                dir.link_hidden(file, file_name)
                            }
                            other => other,
                        }
                    }
                    other => other,
                };
                linked.map_err(|e| Error::io(name, "link the migrated region", e))?
            }
        };
        reached(Step::AfterTemporaryName);
        // Only the lock holder migrates, but `unlink` and `create` take no lock: if the name
        // was removed (or given to another region) meanwhile, leave it alone.
        if self.is_removed()? {
            return Err(Error::Removed {
                name: name.to_string(),
            });
        }
        temporary
            .rename_over(file_name)
            .map_err(|e| Error::io(name, "rename the migrated region over the name", e))
    }

    /// The header's `lifecycle` word as it is, without looking at the location.
    #[cfg(test)]
    fn lifecycle(&self) -> u32 {
        crate::format::LoadAcquire::load_acquire(&self.header().lifecycle)
    }
}

#[cfg(test)]
mod tests;
