//! The create/open protocol of objects behind a file descriptor: POSIX shared-memory objects
//! (`/dev/shm/NAME`) and regular files.
//!
//! # Creation
//!
//! A creator makes an unnamed object (`O_TMPFILE` in `/dev/shm`, or in the file's directory), sizes it, writes the header
//! with state "initialising" and a fresh lock, takes `flock(LOCK_EX)` on it and only then links
//! it to its name. If the name is taken (`EEXIST`) another process won the race: the loser drops
//! its object and opens the winner's, so `init` runs exactly once. The winner runs `init`,
//! publishes state "ready" with a release store, wakes waiters and drops the `flock`.
//!
//! An opener that finds "initialising" (or an empty, all-zero object) probes with
//! `flock(LOCK_SH | LOCK_NB)`: refused means a live creator, so it sleeps on the state word and
//! re-checks, up to `open_timeout`; granted means the creator died (the kernel dropped its
//! lock). `open` then reports [`Error::Incomplete`]; `open_or_create` takes the exclusive lock,
//! re-checks that the state is still not ready and that the name still refers to the same
//! object, and initialises it in place.
//!
//! Every object is checked with `fstat` before it is mapped, and the header describes no byte
//! beyond the object's size, so no access raises SIGBUS unless a peer with write access shrinks
//! the object later (README, "Threat model").
//!
//! # After a reboot (files)
//!
//! A file outlives the processes and the boot that used it: its lock word and sleeper counts
//! mean nothing any more. The header records the boot id; the first read-write opener that finds
//! another one takes the exclusive `flock`, initialises the mutex again, clears the sleeper
//! state, repairs an interrupted write as the next locker would (roll back, or poison in place)
//! and stores the current boot id. The payload stays.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{
    check_owner, check_typed, classify, fresh_layout, header_of, publish, write_header, Handle,
    Init, Look, Region, RegionSpec, Typed,
};
use crate::error::{Error, Result};
use crate::header::{HeaderInfo, STATE_INITIALISING};
use crate::location::Location;
use crate::lock::Wait;
use crate::sys::object::{self, Access, FileLock, Mapping, ObjectStat, Unnamed};
use crate::sys::{futex, process};

/// Where an object behind a descriptor lives.
pub(super) struct Target {
    pub(super) location: Location,
    /// The location as text, for messages.
    pub(super) name: String,
    /// `/dev/shm/NAME`, or the file's path.
    pub(super) path: PathBuf,
    /// The directory unnamed objects are created in.
    dir: PathBuf,
}

impl Target {
    /// The POSIX object `/dev/shm/NAME`, created through `/dev/shm`.
    pub(super) fn named(name: &str) -> Target {
        let location = Location::Named(name.to_string());
        Target::new(
            location,
            object::shm_path(name),
            PathBuf::from(object::SHM_DIR),
        )
    }

    /// The file at `path`, created through its directory.
    pub(super) fn file(path: &Path) -> Target {
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Target::new(Location::File(path.to_path_buf()), path.to_path_buf(), dir)
    }

    fn new(location: Location, path: PathBuf, dir: PathBuf) -> Target {
        Target {
            name: location.to_string(),
            location,
            path,
            dir,
        }
    }

    fn handle(&self, file: File) -> Handle {
        Handle::File {
            file,
            path: self.path.clone(),
        }
    }
}

// Returned once per open and unpacked at once: boxing the region would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Found {
    Ready(Region),
    /// Empty, blank or initialising, and no live creator holds its `flock`.
    Abandoned(File, ObjectStat),
}

pub(super) fn create(target: &Target, spec: &RegionSpec, init: Init<'_>) -> Result<Region> {
    let name = &target.name;
    let (unnamed, map, info) = build_unnamed(target, spec)?;
    // The region is complete before it gets its name, so the region (which keeps a
    // descriptor) exists before the link, which needs one too.
    let file = unnamed
        .file
        .try_clone()
        .map_err(|e| Error::io(name, "dup", e))?;
    let region = new_region(target, file, map, info, spec)?;
    region.fill(init);
    region.header().publish_ready();
    let linked = object::link(&unnamed.file, &target.path);
    drop(unnamed);
    linked.map_err(|e| Error::io(name, "link the new object", e))?;
    Ok(region)
}

pub(super) fn open(
    target: &Target,
    spec: &RegionSpec,
    access: Access,
    typed: Typed,
) -> Result<Region> {
    match find(target, spec, access, typed)? {
        Found::Ready(region) => Ok(region),
        Found::Abandoned(..) => Err(Error::Incomplete {
            name: target.name.clone(),
        }),
    }
}

pub(super) fn open_or_create(target: &Target, spec: &RegionSpec, init: Init<'_>) -> Result<Region> {
    let name = &target.name;
    // A timeout too large to represent as a deadline means none.
    let deadline = Instant::now().checked_add(spec.open_timeout);
    loop {
        match find(target, spec, Access::ReadWrite, Typed::Yes) {
            Ok(Found::Ready(region)) => return Ok(region),
            Ok(Found::Abandoned(file, stat)) => {
                if let Some(region) = reinitialise(target, spec, file, stat, init)? {
                    return Ok(region);
                }
            }
            Err(Error::NotFound { .. }) => {
                if let Some(region) = create_linked_then_init(target, spec, init)? {
                    return Ok(region);
                }
            }
            Err(other) => return Err(other),
        }
        // Another process is creating or repairing it right now; look again.
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Err(Error::Timeout {
                name: name.to_string(),
                waiting_for: "its creation to settle (other processes kept creating or \
                              repairing it)",
                after: spec.open_timeout,
            });
        }
        std::thread::yield_now();
    }
}

/// Opens the target, checks owner and size, maps it and classifies it.
///
/// Only a look taken while no (re)initialiser is at work decides that an object is corrupt or
/// abandoned: a re-initialiser holds the exclusive `flock` while it writes the header, so an
/// opener that sees a bad or unfinished header probes with a shared `flock` and, if it gets
/// it, looks again before it decides.
fn find(target: &Target, spec: &RegionSpec, access: Access, typed: Typed) -> Result<Found> {
    let name = target.name.as_str();
    let started = Instant::now();
    loop {
        let file = object::open(&target.path, access).map_err(|e| Error::io(name, "open", e))?;
        let stat = object::stat(&file).map_err(|e| Error::io(name, "fstat", e))?;
        check_owner(name, spec, &stat)?;
        let (look, map) = look_at(name, &file, &stat, access)?;
        let look = match look {
            Look::Ready(info) => {
                let map = map.ok_or_else(|| Error::corrupt(name, "it could not be mapped"))?;
                let handle = target.handle(file);
                let mut region =
                    Region::assemble(&target.location, handle, stat, (map, access), info, spec);
                check_typed(&region, spec, typed)?;
                if access == Access::ReadWrite {
                    reset_after_reboot(&mut region, spec)?;
                }
                return Ok(Found::Ready(region));
            }
            other => other,
        };
        // Not ready, or apparently corrupt. A live (re)initialiser holds the exclusive flock.
        if object::try_file_lock(&file, FileLock::Shared)
            .map_err(|e| Error::io(name, "flock", e))?
        {
            // Nobody can start initialising while we hold this: look again, then decide.
            let fresh = object::stat(&file).map_err(|e| Error::io(name, "fstat", e));
            let verdict = fresh.and_then(|now| Ok((look_at(name, &file, &now, access)?.0, now)));
            object::file_unlock(&file);
            match verdict? {
                (Look::Ready(_), _) => continue,
                (Look::Corrupt(reason), _) => return Err(Error::corrupt(name, reason)),
                (Look::NotReady, now) if now == stat => return Ok(Found::Abandoned(file, now)),
                // It changed between the two looks: start over.
                (Look::NotReady, _) => continue,
            }
        }
        let elapsed = started.elapsed();
        if elapsed >= spec.open_timeout {
            return Err(Error::Timeout {
                name: name.to_string(),
                waiting_for: "its creator to finish initialising it",
                after: spec.open_timeout,
            });
        }
        let slice = (spec.open_timeout - elapsed).min(Duration::from_millis(10));
        match (&look, map) {
            (Look::NotReady, Some(map)) => {
                // SAFETY: `look_at` maps nothing smaller than HEADER_SIZE; `map` is alive in
                // this arm.
                let header = unsafe { header_of(&map) };
                futex::wait(&header.state, STATE_INITIALISING, Some(slice));
            }
            _ => std::thread::sleep(slice.min(Duration::from_millis(1))),
        }
        // Start over: the creator may have resized the object.
    }
}

/// Classifies the object as it is now, mapping it when it is large enough to hold a header.
fn look_at(
    name: &str,
    file: &File,
    stat: &ObjectStat,
    access: Access,
) -> Result<(Look, Option<Mapping>)> {
    if !stat.regular {
        return Ok((Look::Corrupt("it is not a regular file".into()), None));
    }
    if stat.size == 0 {
        return Ok((Look::NotReady, None));
    }
    if stat.size < crate::header::HEADER_SIZE as u64 {
        let reason = format!(
            "it is {} bytes long, shorter than its own {}-byte header",
            stat.size,
            crate::header::HEADER_SIZE
        );
        return Ok((Look::Corrupt(reason), None));
    }
    let Ok(len) = usize::try_from(stat.size) else {
        let reason = "it is larger than this process's address space".to_string();
        return Ok((Look::Corrupt(reason), None));
    };
    let map = Mapping::new(file, len, access).map_err(|e| Error::io(name, "mmap", e))?;
    // SAFETY: the mapping is at least HEADER_SIZE bytes (checked above); `map` outlives this
    // borrow.
    let look = classify(unsafe { header_of(&map) }, stat.size);
    Ok((look, Some(map)))
}

/// Sizes and maps `file`, then writes the header and descriptor (state "initialising").
///
/// The caller guarantees nobody else uses the object's lock: it is unnamed, or the caller holds
/// its exclusive `flock` and it is not ready.
fn write_fresh(name: &str, spec: &RegionSpec, file: &File) -> Result<(Mapping, HeaderInfo)> {
    let (info, descriptor) = fresh_layout(name, spec)?;
    let size = info.layout.region_size;
    object::set_len(file, size as u64).map_err(|e| Error::io(name, "ftruncate", e))?;
    let map =
        Mapping::new(file, size, Access::ReadWrite).map_err(|e| Error::io(name, "mmap", e))?;
    // SAFETY: the mapping is `region_size` bytes; the caller guarantees nobody else uses the
    // lock or reads the descriptor yet.
    unsafe { write_header(name, &map, &info, &descriptor) }?;
    Ok((map, info))
}

/// A new unnamed object with its header written, with the spec's mode.
fn build_unnamed(target: &Target, spec: &RegionSpec) -> Result<(Unnamed, Mapping, HeaderInfo)> {
    let name = &target.name;
    let unnamed = object::create_unnamed(&target.dir, &target.path, spec.mode)
        .map_err(|e| Error::io(name, "create", e))?;
    let (map, info) = write_fresh(name, spec, &unnamed.file)?;
    Ok((unnamed, map, info))
}

/// Creates and names an object in state "initialising" under our `flock`, then runs `init`.
/// `None` if another process took the name first.
fn create_linked_then_init(
    target: &Target,
    spec: &RegionSpec,
    init: Init<'_>,
) -> Result<Option<Region>> {
    let name = &target.name;
    let (Unnamed { file, hidden }, map, info) = build_unnamed(target, spec)?;
    if !object::try_file_lock(&file, FileLock::Exclusive)
        .map_err(|e| Error::io(name, "flock", e))?
    {
        unreachable_lock(name)?;
    }
    let linked = object::link(&file, &target.path);
    drop(hidden);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(None),
        Err(e) => return Err(Error::io(name, "link the new object", e)),
    }
    let region = new_region(target, file, map, info, spec)?;
    finish(&region, init);
    Ok(Some(region))
}

/// The read-write region of an object this process has just written the header of.
fn new_region(
    target: &Target,
    file: File,
    map: Mapping,
    info: HeaderInfo,
    spec: &RegionSpec,
) -> Result<Region> {
    let object = object::stat(&file).map_err(|e| Error::io(&target.name, "fstat", e))?;
    let handle = target.handle(file);
    let access = (map, Access::ReadWrite);
    Ok(Region::assemble(
        &target.location,
        handle,
        object,
        access,
        info,
        spec,
    ))
}

/// Runs `init`, publishes "ready", wakes openers waiting on the state and drops the `flock`.
fn finish(region: &Region, init: Init<'_>) {
    publish(region, init);
    if let Handle::File { file, .. } = &region.handle {
        object::file_unlock(file);
    }
}

/// Initialises an abandoned object in place, under its exclusive `flock`. `None` if another
/// process got there first or the name now refers to something else.
fn reinitialise(
    target: &Target,
    spec: &RegionSpec,
    file: File,
    seen: ObjectStat,
    init: Init<'_>,
) -> Result<Option<Region>> {
    let name = &target.name;
    if !object::try_file_lock(&file, FileLock::Exclusive)
        .map_err(|e| Error::io(name, "flock", e))?
    {
        return Ok(None);
    }
    // Under the lock: is it still the object under the name, and still not ready?
    match object::stat_path(&target.path) {
        Ok(now) if now.same_object(&seen) => {}
        _ => return Ok(None),
    }
    let now = object::stat(&file).map_err(|e| Error::io(name, "fstat", e))?;
    // Under the lock nobody else writes the header: only an empty, blank or unfinished object
    // is ours to take over; anything else is left alone.
    match look_at(name, &file, &now, Access::ReadWrite)?.0 {
        Look::NotReady => {}
        Look::Ready(_) => return Ok(None),
        Look::Corrupt(reason) => return Err(Error::corrupt(name, reason)),
    }
    // This process creates the region now: give it the mode asked for, as a new object gets
    // (an abandoned object may have come with any mode). Another user's object (accepted with
    // `allow_other_owner`) keeps its owner's mode.
    if now.uid == process::effective_uid() {
        object::set_mode(&file, spec.mode).map_err(|e| Error::io(name, "fchmod", e))?;
    }
    let (map, info) = write_fresh(name, spec, &file)?;
    let region = new_region(target, file, map, info, spec)?;
    finish(&region, init);
    Ok(Some(region))
}

/// A fresh unnamed file cannot be locked by anyone else; report it as an error rather than
/// proceed without the lock if the kernel ever says otherwise.
fn unreachable_lock(name: &str) -> Result<()> {
    Err(Error::Io {
        name: name.to_string(),
        operation: "flock a new object",
        source: io::Error::new(
            io::ErrorKind::WouldBlock,
            "a new unnamed object was already locked",
        ),
    })
}

/// After a reboot, makes the lock and sleeper state of a ready region valid again (see the
/// module docs of `region`): once, in the first read-write opener, under the exclusive `flock`.
/// Nothing to do for a POSIX object (it lives in memory), or when the stored boot id is the
/// current one, or either cannot be known.
fn reset_after_reboot(region: &mut Region, spec: &RegionSpec) -> Result<()> {
    // Only a file outlives a boot. A boot id that could not be read (zeros, stored or current)
    // proves nothing: resetting a lock that is in use would be far worse than not resetting a
    // stale one.
    if !matches!(region.location, Location::File(_)) || region.info.boot_id == [0; 16] {
        return Ok(());
    }
    let current = process::boot_id();
    if current == [0; 16] || region.info.boot_id == current {
        return Ok(());
    }
    let Handle::File { file, .. } = &region.handle else {
        return Ok(());
    };
    let name = region.name.clone();
    let deadline = Instant::now().checked_add(spec.open_timeout);
    while !object::try_file_lock(file, FileLock::Exclusive)
        .map_err(|e| Error::io(&name, "flock", e))?
    {
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Err(Error::Timeout {
                name,
                waiting_for: "another process to reset its lock after a reboot",
                after: spec.open_timeout,
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let result = reset_locked(region, current);
    if let Handle::File { file, .. } = &region.handle {
        object::file_unlock(file);
    }
    result
}

fn reset_locked(region: &mut Region, current: [u8; 16]) -> Result<()> {
    let header = region.header();
    if header.boot_id() == current {
        // Another opener reset it while we waited for the flock.
        region.info.boot_id = current;
        return Ok(());
    }
    // SAFETY: no process uses the lock. Every process that used it before the reboot is gone,
    // and every read-write opener since the reboot either found the current boot id (stored
    // below, only after the reset) or waits for the exclusive flock we hold; read-only handles
    // never touch the lock.
    unsafe { header.reset_after_reboot() }
        .map_err(|e| Error::io(&region.name, "pthread_mutex_init", e))?;
    if region.info.queue.is_some() {
        crate::queue::reset_after_reboot(region);
    }
    // Finish or undo a write the reboot interrupted, as the next locker would.
    match region.acquire(Wait::No) {
        // SAFETY: `acquire` succeeded: this thread holds the lock through `region`; the payload
        // size is the region's own.
        Ok(_) => unsafe { region.release(false, region.info.layout.payload_size) },
        Err(failure) => {
            return Err(Error::corrupt(
                &region.name,
                format!("its lock failed right after being reset ({failure:?})"),
            ))
        }
    }
    region.header().set_boot_id(current);
    region.info.boot_id = current;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_target_is_created_in_its_own_directory() {
        let t = Target::file(Path::new("/var/lib/app/state.shm"));
        assert_eq!(t.dir, Path::new("/var/lib/app"));
        let t = Target::file(Path::new("state/x.shm"));
        assert_eq!(t.dir, Path::new("state"));
        let t = Target::named("limits");
        assert_eq!(t.path, Path::new("/dev/shm/limits"));
        assert_eq!(t.dir, Path::new("/dev/shm"));
    }
}
