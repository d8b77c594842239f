//! The create/open protocol of objects behind a file descriptor: POSIX shared-memory objects
//! (`/dev/shm/NAME`) and regular files.
//!
//! # Creation
//!
//! A creator makes an unnamed object (`O_TMPFILE` in `/dev/shm`, or in the file's directory),
//! sizes it with its pages reserved (`fallocate`: a full file system is an error here, never
//! SIGBUS later), writes the header
//! with state "initialising" and a fresh lock, takes the *initialiser lock* (an
//! open-file-description write lock on byte [`INITIALISER_BYTE`]) and only then links it to its
//! name. If the name is taken (`EEXIST`) another process won the race: the loser drops its
//! object and opens the winner's, so `init` runs exactly once. The winner runs `init`,
//! publishes state "ready" with a release store, wakes waiters and drops the lock.
//!
//! An opener that finds "initialising" (or an empty, all-zero object) probes with a read lock
//! on the same byte: refused means a write lock, that is a live initialiser, so it sleeps on
//! the state word and re-checks, up to `open_timeout`; granted means the initialiser died (the
//! kernel dropped its lock). `open` then reports [`Error::Incomplete`]; `open_or_create` takes
//! the initialiser lock, re-checks that the state is still not ready and that the name still
//! refers to the same object, and initialises it in place, growing it if it is too small and
//! never shrinking it.
//!
//! A zero header alone proves nothing: it may begin anyone's data. Only an empty object, or
//! one whose every byte is zero and whose size is exactly what an interrupted creation of the
//! type leaves, is blank (read with `pread`); anything else is [`Error::Corrupt`] and is left
//! byte for byte as it was.
//!
//! Why a write lock on a byte and not `flock`: any process that can open the object for reading
//! can `flock` it, shared or exclusive, and so fake a live creator or block the repair forever.
//! Only a process with write access can hold a write lock, so a reader cannot fake one; it can
//! still hold a read lock on the byte, which keeps a repairer from taking the write lock (the
//! kernel offers no lock that a reader cannot get in the way of). A repairer that owns the
//! object then claims the repair in its header, builds a new region unnamed and renames it over
//! the abandoned one (see `replace_abandoned`): the reader's locks stay on the old object.
//! Where that is impossible (another user's object), the repairer gives up after
//! `open_timeout` with [`Error::LockedByReader`], which names the cause.
//!
//! Every object is checked with `fstat` before it is mapped, and the header describes no byte
//! beyond the object's size, so no access raises SIGBUS unless a peer with write access shrinks
//! the object later (README, "Threat model").

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use super::{
    blank_problem, blank_size, check_owner, check_typed, classify, fill_and_publish_ready,
    fresh_layout, header_of, write_header, Block256, Handle, Init, Look, Region, RegionSpec, Typed,
};
use crate::error::{Error, Result};
use crate::format::Owner;
use crate::format::{
    Control, Event, Header, HeaderInfo, HeaderState, HEADER_SIZE, INITIALISER_BYTE,
    STATE_INITIALISING,
};
use crate::location::Location;
use crate::sys::object::{self, Access, ByteLock, Dir, Mapping, ObjectStat, Unnamed};
use crate::sys::{futex, process};

/// What one attempt to repair an abandoned object did.
// Returned once per attempt and unpacked at once: boxing the region would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Repair {
    Done(Region),
    /// Another process got there first, or the name now refers to something else: look again.
    Retry,
    /// Only read locks, which no shmstore writer takes to repair, kept us from the initialiser
    /// lock: a process with read access holds one (or an opener probing right now).
    ReadLocked,
    /// Another repairer, which may be alive, has claimed the replacement of the object (see
    /// `replace_abandoned`): wait for its region.
    Claimed,
}

/// Where an object behind a descriptor lives: a name in a directory opened once (see
/// [`object::Dir`]: symbolic links among the directory components are followed when the
/// target is made, and never again).
pub(super) struct Target {
    pub(super) location: Location,
    /// The location as text, for messages.
    pub(super) name: String,
    /// `/dev/shm`, or the file's directory, opened.
    pub(super) dir: Dir,
    /// The object's name in `dir`: the region name, or the file's last component.
    pub(super) file_name: OsString,
}

impl Target {
    /// The POSIX object `/dev/shm/NAME` (a name already validated: one component).
    pub(super) fn named(name: &str) -> Result<Target> {
        Target::new(
            Location::Named(name.to_string()),
            Path::new(object::SHM_DIR),
            OsStr::new(name),
        )
    }

    /// The file at `path` (already validated: it ends in a file name).
    pub(super) fn file(path: &Path) -> Result<Target> {
        let location = Location::File(path.to_path_buf());
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let file_name = path.file_name().unwrap_or(path.as_os_str());
        Target::new(location, dir, file_name)
    }

    fn new(location: Location, dir: &Path, file_name: &OsStr) -> Result<Target> {
        let name = location.to_string();
        let dir = Dir::open(dir).map_err(|e| Error::io(&name, "open its directory", e))?;
        Ok(Target {
            name,
            location,
            dir,
            file_name: file_name.to_os_string(),
        })
    }

    fn handle(&self, file: File) -> Handle {
        Handle::File {
            file,
            dir: self.dir.clone(),
            file_name: self.file_name.clone(),
        }
    }
}

// Returned once per open and unpacked at once: boxing the region would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Found {
    Ready(Region),
    /// Empty, blank or initialising, and no live initialiser holds its initialiser lock.
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
    let region = new_region(target, file, map, info)?;
    // SAFETY: the object is unnamed and `region` is the only handle to it, so nothing else
    // can touch its payload.
    unsafe { region.fill(init) };
    region.header().publish_ready();
    let linked = target.dir.link(&unnamed.file, &target.file_name);
    drop(unnamed);
    linked.map_err(|e| taken_by(target, e, "link the new object"))?;
    Ok(region)
}

/// The error for `operation` failing on the target's name: when something other than a
/// regular file holds the name (a symbolic link, a directory, a FIFO), the error says so.
fn taken_by(target: &Target, e: io::Error, operation: &'static str) -> Error {
    match target.dir.non_regular_kind(&target.file_name) {
        Some(kind) if e.kind() == io::ErrorKind::AlreadyExists => Error::corrupt(
            &target.name,
            format!("{kind} is in its place, so no region can be created under this name"),
        ),
        _ => Error::io(&target.name, operation, e),
    }
}

/// The futex words of a ready region, found for [`unlink`](super::unlink) to wake once it
/// removed the region: the version's futex half, and a queue's two event epochs.
pub(super) struct Sleepers {
    /// A read-only mapping of the object up to the last word, used only to name the words to
    /// the kernel ([`futex::wake_all_at`]): nothing is loaded or stored through it.
    map: Mapping,
    /// Byte offsets of the words in the object.
    words: Vec<usize>,
}

impl Sleepers {
    /// Wakes every sleeper on every word, in every process.
    pub(super) fn wake(&self) {
        for &word in &self.words {
            futex::wake_all_at(&self.map, word);
        }
    }
}

/// The futex words of the ready region at `target`, or `None` when there is none (nothing
/// there, not a regular file, not a ready region, unreadable). The header is read with
/// `pread`, so a peer that shrinks or rewrites the object meanwhile makes this `None` or
/// names words that wake nobody, never a SIGBUS.
pub(super) fn sleepers(target: &Target) -> Option<Sleepers> {
    let file = target
        .dir
        .open_file(&target.file_name, Access::ReadOnly)
        .ok()?;
    let stat = object::stat(&file).ok()?;
    if !stat.regular {
        return None;
    }
    let copy = Block256::read(&file, 0).ok()?;
    let HeaderState::Ready(info) = copy.header().check(stat.size).ok()? else {
        return None;
    };
    let mut words = vec![std::mem::offset_of!(Header, version) + futex::LOW_HALF_OFFSET];
    if info.queue.is_some() {
        let control = info.layout.payload_offset;
        for event in [
            std::mem::offset_of!(Control, not_empty),
            std::mem::offset_of!(Control, not_full),
        ] {
            words.push(control + event + std::mem::offset_of!(Event, epoch));
        }
    }
    let len = words.iter().max()? + 4;
    if len as u64 > stat.size {
        return None;
    }
    let map = Mapping::new(&file, len, Access::ReadOnly).ok()?;
    Some(Sleepers { map, words })
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
    // Whether the last repair attempt found only read locks in its way.
    let mut read_locked = false;
    loop {
        match find(target, spec, Access::ReadWrite, Typed::Yes) {
            Ok(Found::Ready(region)) => return Ok(region),
            Ok(Found::Abandoned(file, stat)) => match reinitialise(target, spec, file, stat, init)?
            {
                Repair::Done(region) => return Ok(region),
                Repair::Retry => read_locked = false,
                Repair::Claimed => {
                    // Its repairer builds the region now: give it time.
                    read_locked = false;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Repair::ReadLocked => read_locked = true,
            },
            Err(Error::NotFound { .. }) => {
                if let Some(region) = create_linked_then_init(target, spec, init)? {
                    return Ok(region);
                }
            }
            Err(other) => return Err(other),
        }
        // Another process is creating or repairing it right now; look again.
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            if read_locked {
                return Err(Error::LockedByReader {
                    name: name.to_string(),
                    blocked: "repair it (its creator died before finishing it)".to_string(),
                    byte: INITIALISER_BYTE,
                    after: Some(spec.open_timeout),
                });
            }
            return Err(Error::Timeout {
                name: name.to_string(),
                waiting_for: "its creation to settle (other processes kept creating or \
                              repairing it)",
                after: spec.open_timeout,
            });
        }
        if read_locked {
            // A reader's lock may stay for long: do not spin on it.
            std::thread::sleep(Duration::from_millis(1));
        } else {
            std::thread::yield_now();
        }
    }
}

/// Opens the target, checks owner and size, maps it and classifies it.
///
/// Only a look taken while no (re)initialiser is at work decides that an object is corrupt or
/// abandoned: a re-initialiser holds the initialiser lock while it writes the header, so an
/// opener that sees a bad or unfinished header probes with a read lock on that byte and, if it
/// gets it, looks again before it decides.
fn find(target: &Target, spec: &RegionSpec, access: Access, typed: Typed) -> Result<Found> {
    let name = target.name.as_str();
    let started = Instant::now();
    loop {
        let file = (target.dir)
            .open_file(&target.file_name, access)
            .map_err(|e| Error::io(name, "open", e))?;
        let stat = object::stat(&file).map_err(|e| Error::io(name, "fstat", e))?;
        check_owner(name, spec, &stat)?;
        let (look, map) = look_at(name, &file, &stat, access)?;
        let look = match look {
            Look::Ready(info) => {
                let map = map.ok_or_else(|| Error::corrupt(name, "it could not be mapped"))?;
                let handle = target.handle(file);
                let region = Region::assemble(&target.location, handle, stat, (map, access), info);
                check_typed(&region, spec, typed)?;
                return Ok(Found::Ready(region));
            }
            other => other,
        };
        // Not ready, or apparently corrupt. A live (re)initialiser holds the initialiser
        // lock, a write lock: our read lock is refused exactly then. Read locks of others (a
        // reader's included) do not conflict with ours, so nobody can fake a live initialiser.
        if object::try_byte_lock(&file, INITIALISER_BYTE, ByteLock::Read)
            .map_err(|e| Error::io(name, "fcntl(F_OFD_SETLK)", e))?
        {
            // Nobody can start initialising while we hold this: look again, then decide.
            let fresh = object::stat(&file).map_err(|e| Error::io(name, "fstat", e));
            let verdict = fresh.and_then(|now| {
                let look = look_at(name, &file, &now, access)?.0;
                let expected = blank_size(name, spec, typed)?;
                Ok((confirm_blank(name, &file, &now, look, expected)?, now))
            });
            let _ = object::byte_unlock(&file, INITIALISER_BYTE);
            match verdict? {
                (Look::Ready(_), _) => continue,
                (Look::Corrupt(reason), _) => return Err(Error::corrupt(name, reason)),
                (Look::NotReady | Look::Blank, now) if now == stat => {
                    return Ok(Found::Abandoned(file, now))
                }
                // It changed between the two looks: start over.
                (Look::NotReady | Look::Blank, _) => continue,
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
                let header = header_of(name, &map)?;
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
        return Ok((Look::Blank, None));
    }
    if stat.size < crate::format::HEADER_SIZE as u64 {
        let reason = format!(
            "it is {} bytes long, shorter than its own {}-byte header",
            stat.size,
            crate::format::HEADER_SIZE
        );
        return Ok((Look::Corrupt(reason), None));
    }
    let Ok(len) = usize::try_from(stat.size) else {
        let reason = "it is larger than this process's address space".to_string();
        return Ok((Look::Corrupt(reason), None));
    };
    let map = Mapping::new(file, len, access).map_err(|e| Error::io(name, "mmap", e))?;
    let look = classify(header_of(name, &map)?, stat.size);
    Ok((look, Some(map)))
}

/// Turns a [`Look::Blank`] into [`Look::Corrupt`] unless the object really is blank (see
/// [`blank_problem`]): empty, or `expected` bytes of zeros. Other looks pass unchanged.
fn confirm_blank(
    name: &str,
    file: &File,
    stat: &ObjectStat,
    look: Look,
    expected: Option<u64>,
) -> Result<Look> {
    if !matches!(look, Look::Blank) {
        return Ok(look);
    }
    let zeros = || zero_but_repair_claim(file, stat.size);
    let problem =
        blank_problem(stat.size, expected, zeros).map_err(|e| Error::io(name, "read", e))?;
    Ok(match problem {
        None => Look::Blank,
        Some(reason) => Look::Corrupt(reason),
    })
}

/// Whether the object's first `size` bytes are zero, its header's `repair_claim` aside: a
/// repairer claims a blank object there (see [`claim_repair`]).
fn zero_but_repair_claim(file: &File, size: u64) -> io::Result<bool> {
    let claim = std::mem::offset_of!(Header, repair_claim) as u64;
    let after = claim + std::mem::size_of::<u64>() as u64;
    if size < after {
        return object::all_zero(file, size);
    }
    Ok(object::all_zero(file, claim)? && object::all_zero_between(file, after, size)?)
}

/// Sizes and maps `file`, then writes the header and descriptor (state "initialising").
///
/// The object grows to the region's size with its pages reserved (`fallocate`), so a full
/// file system fails here with [`Error::Io`] rather than with SIGBUS on a later write. It is
/// never shrunk: an abandoned object larger than the region keeps its size.
///
/// The caller guarantees nobody else uses the object's lock: it is unnamed, or the caller holds
/// its initialiser lock and it is not ready.
fn write_fresh(name: &str, spec: &RegionSpec, file: &File) -> Result<(Mapping, HeaderInfo)> {
    let (info, descriptor) = fresh_layout(name, spec)?;
    let size = info.layout.region_size;
    object::reserve(file, size as u64).map_err(|e| Error::io(name, "fallocate", e))?;
    let map =
        Mapping::new(file, size, Access::ReadWrite).map_err(|e| Error::io(name, "mmap", e))?;
    // SAFETY: the mapping is `region_size` bytes; the caller guarantees nobody else uses the
    // lock or reads the descriptor yet.
    unsafe { write_header(name, &map, &info, &descriptor) }?;
    Ok((map, info))
}

/// A new unnamed object with its header written, with the spec's mode.
pub(super) fn build_unnamed(
    target: &Target,
    spec: &RegionSpec,
) -> Result<(Unnamed, Mapping, HeaderInfo)> {
    let name = &target.name;
    let unnamed = (target.dir)
        .create_unnamed(&target.file_name, spec.mode)
        .map_err(|e| Error::io(name, "create", e))?;
    let (map, info) = write_fresh(name, spec, &unnamed.file)?;
    Ok((unnamed, map, info))
}

/// Creates and names an object in state "initialising" under our initialiser lock, then runs
/// `init`.
/// `None` if another process took the name first.
fn create_linked_then_init(
    target: &Target,
    spec: &RegionSpec,
    init: Init<'_>,
) -> Result<Option<Region>> {
    let name = &target.name;
    let (Unnamed { file, hidden }, map, info) = build_unnamed(target, spec)?;
    if !object::try_byte_lock(&file, INITIALISER_BYTE, ByteLock::Write)
        .map_err(|e| Error::io(name, "fcntl(F_OFD_SETLK)", e))?
    {
        unreachable_lock(name)?;
    }
    let linked = target.dir.link(&file, &target.file_name);
    drop(hidden);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(None),
        Err(e) => return Err(Error::io(name, "link the new object", e)),
    }
    let region = new_region(target, file, map, info)?;
    // SAFETY: we hold the initialiser lock of the object we just linked, in state
    // "initialising" (openers wait for "ready"), and `region` is its only handle here.
    unsafe { finish(&region, init) };
    Ok(Some(region))
}

/// The read-write region of an object this process has just written the header of.
pub(super) fn new_region(
    target: &Target,
    file: File,
    map: Mapping,
    info: HeaderInfo,
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
    ))
}

/// Runs `init`, publishes "ready", wakes openers waiting on the state and drops the
/// initialiser lock.
///
/// # Safety
///
/// As [`Region::fill`]: the caller holds the initialiser lock of the object, whose state is
/// not "ready", and `region` is its only handle in this process.
unsafe fn finish(region: &Region, init: Init<'_>) {
    // SAFETY: the caller's contract is `fill_and_publish_ready`'s.
    unsafe { fill_and_publish_ready(region, init) };
    if let Handle::File { file, .. } = &region.handle {
        let _ = object::byte_unlock(file, INITIALISER_BYTE);
    }
}

/// Initialises an abandoned object in place, under its initialiser lock. Closing `file` (when
/// this returns without a region) releases the lock.
fn reinitialise(
    target: &Target,
    spec: &RegionSpec,
    file: File,
    seen: ObjectStat,
    init: Init<'_>,
) -> Result<Repair> {
    let name = &target.name;
    if !take_initialiser_lock(name, &file)? {
        return match initialiser_lock_refused(name, &file)? {
            // Read locks in the way, perhaps a reader's: they do not reach a new object.
            Repair::ReadLocked if seen.uid == process::effective_uid() => {
                replace_abandoned(target, spec, &file, seen, init)
            }
            other => Ok(other),
        };
    }
    // Under the lock: is it still the object under the name, and still not ready?
    match target.dir.stat(&target.file_name) {
        Ok(now) if now.same_object(&seen) => {}
        _ => return Ok(Repair::Retry),
    }
    let now = object::stat(&file).map_err(|e| Error::io(name, "fstat", e))?;
    // Under the lock nobody else writes the header: only an empty, blank or unfinished object
    // is ours to take over; anything else is left alone, byte for byte.
    let look = look_at(name, &file, &now, Access::ReadWrite)?.0;
    let expected = blank_size(name, spec, Typed::Yes)?;
    match confirm_blank(name, &file, &now, look, expected)? {
        Look::NotReady | Look::Blank => {}
        Look::Ready(_) => return Ok(Repair::Retry),
        Look::Corrupt(reason) => return Err(Error::corrupt(name, reason)),
    }
    // This process creates the region now: give it the mode asked for, as a new object gets
    // (an abandoned object may have come with any mode). Another user's object (accepted with
    // `allow_other_owner`) keeps its owner's mode.
    if now.uid == process::effective_uid() {
        object::set_mode(&file, spec.mode).map_err(|e| Error::io(name, "fchmod", e))?;
    }
    let (map, info) = write_fresh(name, spec, &file)?;
    let region = new_region(target, file, map, info)?;
    // SAFETY: we hold the initialiser lock and wrote a fresh header in state "initialising"
    // (openers wait for "ready"); `region` is its only handle here.
    unsafe { finish(&region, init) };
    Ok(Repair::Done(region))
}

/// Repairs an abandoned object of this user's that read locks keep from an in-place repair (a
/// process with only read access may hold them): builds a new region unnamed, under its own
/// initialiser lock, and renames it over the abandoned one. Locks on the old object do not
/// reach the new one, so a reader cannot block this. `abandoned` is the old object, opened
/// read-write.
///
/// Only one repairer replaces a given object. It claims the repair in the object's header
/// ([`claim_repair`]: a compare-and-swap, which only a process with write access can make)
/// and holds a read lock on its initialiser byte, which keeps in-place repairers (they need
/// the write lock) away, from before the claim until it is done. Under both, only this
/// repairer changes the name while it refers to the abandoned object; it checks that it still
/// does and renames its region over it (the name refers to one or the other at every moment,
/// and the abandoned object loses it in the same step). So no repairer ever moves another's
/// region away, and nothing ever has to be put back. Where it dies:
/// - before the claim: nothing changed;
/// - after the claim, before the rename: the object is still abandoned under the name, its
///   claim names a dead process, and the next repairer takes the claim over (the new region,
///   if already under a hidden temporary name, stays there: README, "Known limits");
/// - after the rename, in `init`: its new region is under the name in state "initialising"
///   without its initialiser lock, that is abandoned, and the next opener repairs it.
///
/// [`Repair::Claimed`] while another repairer that may be alive holds the claim.
fn replace_abandoned(
    target: &Target,
    spec: &RegionSpec,
    abandoned: &File,
    seen: ObjectStat,
    init: Init<'_>,
) -> Result<Repair> {
    let name = &target.name;
    if !object::try_byte_lock(abandoned, INITIALISER_BYTE, ByteLock::Read)
        .map_err(|e| Error::io(name, "fcntl(F_OFD_SETLK)", e))?
    {
        // Someone took the write lock meanwhile: a repairer at work.
        return Ok(Repair::Retry);
    }
    let now = object::stat(abandoned).map_err(|e| Error::io(name, "fstat", e))?;
    if now != seen {
        return Ok(Repair::Retry);
    }
    // Only an unfinished or blank object is ours to replace, as in `reinitialise`.
    let look = look_at(name, abandoned, &now, Access::ReadWrite)?.0;
    let expected = blank_size(name, spec, Typed::Yes)?;
    match confirm_blank(name, abandoned, &now, look, expected)? {
        Look::NotReady | Look::Blank => {}
        Look::Ready(_) => return Ok(Repair::Retry),
        Look::Corrupt(reason) => return Err(Error::corrupt(name, reason)),
    }
    let Some(claim) = claim_repair(name, abandoned, now, expected)? else {
        return Ok(Repair::Claimed);
    };
    let replaced = rename_new_region_over(target, spec, seen, init);
    if !matches!(replaced, Ok(Repair::Done(_))) {
        claim.give_back();
    }
    replaced
}

/// This process's claim to replace an abandoned object (see [`replace_abandoned`]), in the
/// object's header word `repair_claim`: a pid and the PID namespace that numbers it.
struct RepairClaim {
    /// The object's header, mapped (`HEADER_SIZE` bytes).
    map: Mapping,
    name: String,
    me: u64,
}

impl RepairClaim {
    /// The claim word; an error only if the mapping were shorter than a header, which
    /// `claim_repair` never makes.
    fn word(&self) -> Result<&std::sync::atomic::AtomicU64> {
        Ok(&header_of(&self.name, &self.map)?.repair_claim)
    }

    /// Withdraws the claim of a repair that did not happen (the object stays abandoned under
    /// the name, or left it some other way).
    fn give_back(&self) {
        if let Ok(word) = self.word() {
            let _ = word.compare_exchange(self.me, 0, SeqCst, SeqCst);
        }
    }
}

/// Claims the repair of the abandoned object `file` (`stat` as it is now, blank or
/// unfinished, under our read lock on its initialiser byte): from nobody, or from a claimant
/// that is certainly gone (see `Owner::may_be_alive`). `None` while another claimant may be
/// alive: it is repairing the object. An empty object first gets the size an interrupted
/// creation of this type leaves (`expected`), so that it has a header to claim in; it stays
/// blank, since the claim word is the one word a blank object may hold besides zeros.
fn claim_repair(
    name: &str,
    file: &File,
    stat: ObjectStat,
    expected: Option<u64>,
) -> Result<Option<RepairClaim>> {
    if stat.size == 0 {
        let Some(size) = expected else {
            // Never: a repair knows its type. Without a size to give it, leave it alone.
            return Ok(None);
        };
        object::reserve(file, size).map_err(|e| Error::io(name, "fallocate", e))?;
    }
    let size = object::stat(file)
        .map_err(|e| Error::io(name, "fstat", e))?
        .size;
    if size < HEADER_SIZE as u64 {
        return Err(Error::corrupt(
            name,
            format!("it is {size} bytes long, shorter than its own {HEADER_SIZE}-byte header"),
        ));
    }
    let map = Mapping::new(file, HEADER_SIZE, Access::ReadWrite)
        .map_err(|e| Error::io(name, "mmap", e))?;
    let claim = RepairClaim {
        map,
        name: name.to_string(),
        me: Owner::me().word(),
    };
    let held = claim.word()?.load(SeqCst);
    if held != 0 && Owner::from_word(held).may_be_alive() {
        return Ok(None);
    }
    Ok(claim
        .word()?
        .compare_exchange(held, claim.me, SeqCst, SeqCst)
        .is_ok()
        .then_some(claim))
}

/// Builds a new region and renames it over the abandoned object `seen`, under the claim of
/// [`replace_abandoned`]; then runs `init`.
fn rename_new_region_over(
    target: &Target,
    spec: &RegionSpec,
    seen: ObjectStat,
    init: Init<'_>,
) -> Result<Repair> {
    let name = &target.name;
    let (Unnamed { file, hidden }, map, info) = build_unnamed(target, spec)?;
    if !take_initialiser_lock(name, &file)? {
        unreachable_lock(name)?;
    }
    // A name in the same directory to rename from (removed with what it holds if we stop).
    let temp = match hidden {
        Some(hidden) => hidden,
        None => target
            .dir
            .link_hidden(&file, &target.file_name)
            .map_err(|e| Error::io(name, "link the new object", e))?,
    };
    // Under our claim and read lock only we change the name while it refers to the abandoned
    // object: if it still does, it does until our rename.
    match target.dir.stat(&target.file_name) {
        Ok(now) if now.same_object(&seen) => {}
        _ => return Ok(Repair::Retry),
    }
    temp.rename_over(&target.file_name)
        .map_err(|e| Error::io(name, "rename the new region over the abandoned one", e))?;
    let region = new_region(target, file, map, info)?;
    // SAFETY: we hold the initialiser lock of the new object, in state "initialising"
    // (openers wait for "ready"); `region` is its only handle here.
    unsafe { finish(&region, init) };
    Ok(Repair::Done(region))
}

/// Takes the initialiser lock without waiting; `false` if another handle holds a lock on the
/// byte.
fn take_initialiser_lock(name: &str, file: &File) -> Result<bool> {
    object::try_byte_lock(file, INITIALISER_BYTE, ByteLock::Write)
        .map_err(|e| Error::io(name, "fcntl(F_OFD_SETLK)", e))
}

/// Why the initialiser lock was refused: another writer holds it (it is at work: look again),
/// or only read locks are in the way (see [`Repair::ReadLocked`]).
fn initialiser_lock_refused(name: &str, file: &File) -> Result<Repair> {
    let writer = object::byte_write_locked_elsewhere(file, INITIALISER_BYTE)
        .map_err(|e| Error::io(name, "fcntl(F_OFD_GETLK)", e))?;
    Ok(if writer {
        Repair::Retry
    } else {
        Repair::ReadLocked
    })
}

/// A fresh unnamed file cannot be locked by anyone else; report it as an error rather than
/// proceed without the lock if the kernel ever says otherwise.
fn unreachable_lock(name: &str) -> Result<()> {
    Err(Error::Io {
        name: name.to_string(),
        operation: "lock a new object",
        source: io::Error::new(
            io::ErrorKind::WouldBlock,
            "a new unnamed object was already locked",
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_target_is_named_in_its_own_directory() {
        let t = Target::file(Path::new("/dev/shm/state.shm")).unwrap();
        assert_eq!(t.file_name, "state.shm");
        let t = Target::named("limits").unwrap();
        assert_eq!(t.file_name, "limits");
        let e = Target::file(Path::new("/no/such/dir/x.shm")).err().unwrap();
        assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    }

    /// An abandoned object to claim: a file of two headers' size, zeros, already unlinked.
    fn abandoned(test: &str) -> (File, ObjectStat) {
        let path = format!("/dev/shm/unit-claim-{test}-{}", std::process::id());
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path);
        let _ = std::fs::remove_file(&path);
        let file = file.unwrap();
        file.set_len(2 * HEADER_SIZE as u64).unwrap();
        let stat = object::stat(&file).unwrap();
        (file, stat)
    }

    /// The `repair_claim` word: nobody's claim is taken; a live claimant's (this process) is
    /// respected; a claim given back is nobody's again.
    #[test]
    fn claim_repair_takes_no_ones_claim_and_respects_a_live_claimant() {
        let (file, stat) = abandoned("live");
        let claim = claim_repair("live", &file, stat, None)
            .unwrap()
            .expect("unclaimed");
        assert_eq!(claim.word().unwrap().load(SeqCst), Owner::me().word());
        assert!(
            claim_repair("live", &file, stat, None).unwrap().is_none(),
            "claimed twice"
        );
        claim.give_back();
        assert_eq!(claim.word().unwrap().load(SeqCst), 0);
        assert!(claim_repair("live", &file, stat, None).unwrap().is_some());
    }

    /// A claim whose claimant died (a stale claim) is taken over.
    #[test]
    fn claim_repair_takes_over_a_dead_claimants_claim() {
        let (file, stat) = abandoned("dead");
        // A process of this namespace that has exited and been reaped.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        let mut dead = Owner::me();
        dead.pid = child.id();
        let map = Mapping::new(&file, HEADER_SIZE, Access::ReadWrite).unwrap();
        let word = &header_of("dead", &map).unwrap().repair_claim;
        word.store(dead.word(), SeqCst);
        let claim = claim_repair("dead", &file, stat, None)
            .unwrap()
            .expect("stale claim kept");
        assert_eq!(word.load(SeqCst), Owner::me().word());
        drop(claim);
    }
}
