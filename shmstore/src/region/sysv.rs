//! The create/open protocol of System V segments.
//!
//! A segment is visible under its key from the moment `shmget(IPC_CREAT | IPC_EXCL)` returns,
//! zero-filled, and there is no descriptor to `flock`. So:
//!
//! - **Claim.** Whoever initialises a segment first claims it by a compare-and-swap of the
//!   header's `creator_pid` from the value it saw (0 in a fresh segment) to its own pid, and only
//!   then writes the header (state "initialising"), the descriptor and the value, and publishes
//!   "ready" with a release store. Exactly one of several racing creators gets `IPC_EXCL`;
//!   exactly one of several re-initialisers wins the swap.
//! - **Waiting.** An opener that finds a segment not yet ready waits (on the state word, up to
//!   `open_timeout`) while its initialiser is alive: the claimant in the header, or the
//!   segment's creator (`shm_cpid`) before anyone claimed it.
//! - **Abandoned.** If that process is gone, the segment is abandoned: `open` reports
//!   [`Error::Incomplete`]; `open_or_create` claims it from the dead pid and initialises it.
//!   Only a segment a shmstore creator claimed (a nonzero `creator_pid`) can be abandoned:
//!   one whose creator exited with `creator_pid` still 0 may be any program's, and is
//!   [`Error::Corrupt`]. Nor is a header another program wrote (any magic but ours or zero)
//!   ever taken over, nor a zero header over anything but the zeros an interrupted creation of
//!   the type leaves (exactly its size, all zero but the claim).
//!
//! - **Owner.** A segment is accepted only if both its owner (`uid`) and its creator (`cuid`)
//!   are this process's effective uid, or `allow_other_owner` is set: a creator can hand its
//!   segment to another user with `shmctl(IPC_SET)` and keeps control of it.
//!
//! Liveness is a pid check, made safe across PID namespaces with what the kernel reports (see
//! `initialiser_may_live`): a reused pid makes a dead initialiser look alive, and an
//! initialiser in another PID namespace is never thought dead while it may live; the opener then
//! times out instead of taking over — a safe failure. The segment's size is fixed at
//! creation and checked with `IPC_STAT` before `shmat`, and nobody can shrink it afterwards, so
//! no access can fault.

use std::path::Path;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use super::{
    blank_problem, blank_size, check_owner, check_typed, classify, fill_and_publish_ready,
    fresh_layout, header_of, refuse_other_user, write_header, Handle, Init, Look, Region,
    RegionSpec, Typed,
};
use crate::atomic_copy::copy_atomic;
use crate::error::{Error, Result};
use crate::format::{
    Header, LoadAcquire, SharedBytes, HEADER_SIZE, MAGIC, STATE_INITIALISING, STATE_READY,
};
use crate::location::Location;
use crate::sys::object::{Access, Mapping};
use crate::sys::sysv::{self as segment, SegmentStat};
use crate::sys::{futex, process};

// Returned once per open and unpacked at once: boxing the region would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Found {
    Ready(Region),
    /// Not ready, and its initialiser (`claimant`, or the segment's creator if 0) is gone.
    Abandoned {
        map: Mapping,
        stat: SegmentStat,
        claimant: u32,
    },
}

pub(super) fn create(
    key: i32,
    location: &Location,
    spec: &RegionSpec,
    init: Init<'_>,
) -> Result<Region> {
    let name = location.to_string();
    let (info, _) = fresh_layout(&name, spec)?;
    let id = segment::create(key, info.layout.region_size, spec.mode)
        .map_err(|e| Error::io(&name, "shmget(IPC_CREAT | IPC_EXCL)", e))?;
    initialise_new(key, id, location, spec, init).inspect_err(|_| {
        // Nobody can have used a segment that never became ready: take it back.
        let _ = segment::remove(id);
    })
}

pub(super) fn open(
    key: i32,
    location: &Location,
    spec: &RegionSpec,
    access: Access,
    typed: Typed,
) -> Result<Region> {
    match find(key, location, spec, access, typed)? {
        Found::Ready(region) => Ok(region),
        Found::Abandoned { .. } => Err(Error::Incomplete {
            name: location.to_string(),
        }),
    }
}

pub(super) fn open_or_create(
    key: i32,
    location: &Location,
    spec: &RegionSpec,
    init: Init<'_>,
) -> Result<Region> {
    let name = location.to_string();
    let deadline = Instant::now().checked_add(spec.open_timeout);
    loop {
        match find(key, location, spec, Access::ReadWrite, Typed::Yes) {
            Ok(Found::Ready(region)) => return Ok(region),
            Ok(Found::Abandoned {
                map,
                stat,
                claimant,
            }) => {
                if let Some(region) = take_over(key, location, spec, (map, stat), claimant, init)? {
                    return Ok(region);
                }
            }
            Err(Error::NotFound { .. }) => match create(key, location, spec, init) {
                // Another process created it first: open theirs.
                Err(Error::AlreadyExists { .. }) => {}
                created => return created,
            },
            Err(other) => return Err(other),
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Err(Error::Timeout {
                name,
                waiting_for: "its creation to settle (other processes kept creating or \
                              repairing it)",
                after: spec.open_timeout,
            });
        }
        std::thread::yield_now();
    }
}

/// Attaches the segment with `key` read-write or read-only, and checks its owner and size.
fn attach(
    key: i32,
    name: &str,
    spec: &RegionSpec,
    access: Access,
) -> Result<(i32, SegmentStat, Mapping)> {
    let id = segment::get(key).map_err(|e| Error::io(name, "shmget", e))?;
    let stat = segment::stat(id).map_err(|e| match e.raw_os_error() {
        // Removed between the two calls.
        Some(nix::libc::EINVAL | nix::libc::EIDRM) => Error::NotFound {
            name: name.to_string(),
        },
        _ => Error::io(name, "shmctl(IPC_STAT)", e),
    })?;
    check_owner(name, spec, &stat.object)?;
    check_creator(name, spec, &stat)?;
    if stat.object.size < HEADER_SIZE as u64 {
        return Err(Error::corrupt(
            name,
            format!(
                "it is {} bytes long, shorter than its own {HEADER_SIZE}-byte header",
                stat.object.size
            ),
        ));
    }
    let map = segment::attach(id, access).map_err(|e| Error::io(name, "shmat", e))?;
    Ok((id, stat, map))
}

/// Refuses a segment another user created, even if it now belongs to this one: its creator
/// keeps the right to change its owner and mode (`shmctl(IPC_SET)`) and chose its contents, so
/// a segment planted by another user and handed over would otherwise pass [`check_owner`].
fn check_creator(name: &str, spec: &RegionSpec, stat: &SegmentStat) -> Result<()> {
    refuse_other_user(name, spec, stat.creator_uid, |me| {
        format!(
            "it was created by uid {} (and now belongs to uid {}), and this process runs as \
             uid {me}; a segment's creator can hand it to another user with \
             shmctl(IPC_SET), so opening a segment another user created needs \
             `allow_other_owner(true)` on the options",
            stat.creator_uid, stat.object.uid
        )
    })
}

fn find(
    key: i32,
    location: &Location,
    spec: &RegionSpec,
    access: Access,
    typed: Typed,
) -> Result<Found> {
    let name = location.to_string();
    let started = Instant::now();
    loop {
        let (_, stat, map) = attach(key, &name, spec, access)?;
        let header = header_of(&name, &map)?;
        // `access` may be read-only, so these are acquire loads that such a mapping allows
        // (see `LoadAcquire`); they order what follows after whatever the claimant and the
        // creator published, and the claim itself is settled by `compare_exchange` later.
        let claimant = header.creator_pid.load_acquire();
        if header.state.load_acquire() == STATE_READY {
            return match classify(header, stat.object.size) {
                Look::Ready(info) => {
                    let handle = Handle::SysV { key };
                    let region =
                        Region::assemble(location, handle, stat.object, (map, access), info);
                    check_typed(&region, spec, typed)?;
                    Ok(Found::Ready(region))
                }
                Look::Corrupt(reason) => Err(Error::corrupt(&name, reason)),
                Look::NotReady | Look::Blank => continue,
            };
        }
        if !ours_or_blank(header) {
            return Err(Error::corrupt(&name, foreign_reason(header)));
        }
        if !matches!(header.state.load_acquire(), 0 | STATE_INITIALISING) {
            // No initialiser ever writes another state: corrupt, whoever is alive.
            if let Look::Corrupt(reason) = classify(header, stat.object.size) {
                return Err(Error::corrupt(&name, reason));
            }
            continue;
        }
        if !initialiser_may_live(claimant, &stat) {
            if claimant == 0 {
                // A shmstore creator claims a segment before it writes anything: this one is
                // another program's, or a creator died before its claim. Either way nothing
                // here says it is ours to take.
                return Err(Error::corrupt(&name, unclaimed_reason(&stat)));
            }
            // Nobody writes the header unless a re-initialiser claimed it since we looked.
            let look = match classify(header, stat.object.size) {
                Look::Blank => confirm_blank(&name, &map, &stat, spec, typed)?,
                other => other,
            };
            match look {
                _ if header.creator_pid.load_acquire() != claimant => continue,
                Look::NotReady | Look::Blank => {
                    return Ok(Found::Abandoned {
                        map,
                        stat,
                        claimant,
                    })
                }
                Look::Ready(_) => continue,
                Look::Corrupt(reason) => return Err(Error::corrupt(&name, reason)),
            }
        }
        let elapsed = started.elapsed();
        if elapsed >= spec.open_timeout {
            return Err(Error::Timeout {
                name,
                waiting_for: "its creator to finish initialising it",
                after: spec.open_timeout,
            });
        }
        let slice = (spec.open_timeout - elapsed).min(Duration::from_millis(10));
        if header.state.load_acquire() == STATE_INITIALISING {
            futex::wait(&header.state, STATE_INITIALISING, Some(slice));
        } else {
            std::thread::sleep(slice.min(Duration::from_millis(1)));
        }
    }
}

/// Whether the process initialising the segment may still be alive: `claimant` (from the
/// header), or before anyone claimed it, the segment's creator. `false` only when it is
/// certainly gone, in whatever PID namespace it ran.
///
/// The claimant wrote its pid as its own PID namespace numbers it, and a process in another
/// namespace (a container sharing IPC, not pids) may have no pid here, or another process may
/// have that pid here. The kernel, on the other hand, reports `shm_cpid` in our namespace (0 if
/// the creator has no pid in it). So: the creator is checked by the kernel's number; a claimant
/// equal to that number is the creator, numbered as we number it; any other claimant that has
/// no pid here is gone only if nothing is attached to the segment (a live initialiser keeps it
/// attached, and the kernel counts attachments from every namespace). The cost of this caution
/// falls only on abandoned segments: while another opener is attached, an opener waits for a
/// dead re-initialiser until `open_timeout` instead of taking over.
fn initialiser_may_live(claimant: u32, stat: &SegmentStat) -> bool {
    if claimant == 0 || claimant == stat.creator_pid {
        // No pid here (0): the creator lives in another namespace; we cannot tell.
        return stat.creator_pid == 0 || process::is_alive(stat.creator_pid);
    }
    process::is_alive(claimant) || stat.attached > 0
}

fn unclaimed_reason(stat: &SegmentStat) -> String {
    format!(
        "no shmstore creator ever claimed it (its `creator_pid` is 0) and the process that made \
         it (pid {}) is gone: it may be another program's segment, which shmstore never takes \
         over; remove it with `ipcrm -m {}` if nothing uses it",
        stat.creator_pid, stat.object.ino
    )
}

/// Turns a blank-looking segment into [`Look::Corrupt`] unless it is what a claimed,
/// interrupted creation leaves: `region_size` bytes (for a typed open), all zero but the
/// claimant's `creator_pid`. A segment never shrinks, so reading it through the mapping is safe.
fn confirm_blank(
    name: &str,
    map: &Mapping,
    stat: &SegmentStat,
    spec: &RegionSpec,
    typed: Typed,
) -> Result<Look> {
    let size = stat.object.size;
    let zeros = || Ok(zero_but_claim(map, size));
    let problem = blank_problem(size, blank_size(name, spec, typed)?, zeros)
        .map_err(|e| Error::io(name, "read", e))?;
    Ok(match problem {
        None => Look::Blank,
        Some(reason) => Look::Corrupt(reason),
    })
}

/// Whether the segment's `size` bytes are zero, `creator_pid` aside.
fn zero_but_claim(map: &Mapping, size: u64) -> bool {
    let claim = std::mem::offset_of!(Header, creator_pid);
    let claim = claim..claim + std::mem::size_of::<u32>();
    let Ok(size) = usize::try_from(size) else {
        return false;
    };
    let mut chunk = vec![0u8; 64 << 10];
    let mut offset = 0;
    while offset < size {
        let len = (size - offset).min(chunk.len());
        let Some(source) = SharedBytes::of_mapping(map).range(offset, len) else {
            return false;
        };
        // SAFETY: `source` holds `len` bytes readable while `map` lives (checked by `range`);
        // the mapping is page-aligned and `offset` a multiple of the chunk size, so 8-byte
        // aligned; the loads are atomic, so a peer writing meanwhile is no data race in this
        // process. Nobody should write: the claimant is dead, and a re-initialiser swaps
        // `creator_pid` before it writes anything, which the caller checks after this read.
        unsafe { copy_atomic(source.as_ptr(), chunk.as_mut_ptr(), len) };
        let nonzero = chunk[..len]
            .iter()
            .enumerate()
            .any(|(i, &byte)| byte != 0 && !claim.contains(&(offset + i)));
        if nonzero {
            return false;
        }
        offset += len;
    }
    true
}

/// A header this crate may be writing: blank (zero magic) or with our magic.
fn ours_or_blank(header: &Header) -> bool {
    // Through a read-only attachment too: see `LoadAcquire`.
    let magic = header.magic.load_acquire();
    magic == 0 || magic == u64::from_ne_bytes(MAGIC)
}

fn foreign_reason(header: &Header) -> String {
    format!(
        "it does not start with the magic bytes \"SHMSTORE\" (found {:02x?}): another program's \
         segment uses this key",
        header.magic.load_acquire().to_ne_bytes()
    )
}

/// Claims a fresh segment from `IPC_EXCL`, writes its header and value and publishes it.
fn initialise_new(
    key: i32,
    id: i32,
    location: &Location,
    spec: &RegionSpec,
    init: Init<'_>,
) -> Result<Region> {
    let name = location.to_string();
    let stat = segment::stat(id).map_err(|e| Error::io(&name, "shmctl(IPC_STAT)", e))?;
    let map = segment::attach(id, Access::ReadWrite).map_err(|e| Error::io(&name, "shmat", e))?;
    let header = header_of(&name, &map)?;
    // Openers wait for us while we live (we are `shm_cpid`), so nobody else claims it first.
    if header
        .creator_pid
        .compare_exchange(0, process::current_pid(), SeqCst, SeqCst)
        .is_err()
    {
        return Err(Error::corrupt(
            &name,
            "another process claimed the segment this one had just created",
        ));
    }
    initialise_claimed(key, location, spec, (map, stat), init)
}

/// Initialises an abandoned segment, after winning the claim from the dead `claimant`. `None`
/// if another process claimed it first.
fn take_over(
    key: i32,
    location: &Location,
    spec: &RegionSpec,
    (map, stat): (Mapping, SegmentStat),
    claimant: u32,
    init: Init<'_>,
) -> Result<Option<Region>> {
    let name = location.to_string();
    let header = header_of(&name, &map)?;
    if header
        .creator_pid
        .compare_exchange(claimant, process::current_pid(), SeqCst, SeqCst)
        .is_err()
    {
        return Ok(None);
    }
    let (info, _) = fresh_layout(&name, spec)?;
    if stat.object.size < info.layout.region_size as u64 {
        // Too small to hold this type: give the claim back for whoever removes it.
        header.creator_pid.store(claimant, SeqCst);
        return Err(Error::corrupt(
            &name,
            format!(
                "it was left unfinished by its creator, and its {} bytes are too few for this \
                 type ({} needed)",
                stat.object.size, info.layout.region_size
            ),
        ));
    }
    initialise_claimed(key, location, spec, (map, stat), init).map(Some)
}

fn initialise_claimed(
    key: i32,
    location: &Location,
    spec: &RegionSpec,
    (map, stat): (Mapping, SegmentStat),
    init: Init<'_>,
) -> Result<Region> {
    let name = location.to_string();
    let (info, descriptor) = fresh_layout(&name, spec)?;
    // SAFETY: the segment holds at least `region_size` bytes (created so, or checked by the
    // caller); we hold the claim, so nobody else writes the header or uses the lock, and
    // openers wait for "ready" before reading the descriptor.
    unsafe { write_header(&name, &map, &info, &descriptor) }?;
    let handle = Handle::SysV { key };
    let region = Region::assemble(
        location,
        handle,
        stat.object,
        (map, Access::ReadWrite),
        info,
    );
    // SAFETY: we hold the claim and the header says "initialising", so openers wait for
    // "ready" before touching the payload; `region` is its only handle here.
    unsafe { fill_and_publish_ready(&region, init) };
    Ok(region)
}

/// The System V key C programs derive with `ftok(path, id)`: from the inode and device of an
/// existing file and a nonzero project id. Pass it to [`Location::sysv`](crate::Location::sysv) to
/// share a segment
/// with them.
///
/// ```
/// let key = shmstore::ftok("/", 7)?;
/// assert_eq!(key, shmstore::ftok("/", 7)?); // the same file and id give the same key
/// assert_ne!(key, 0);
/// # Ok::<(), shmstore::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::InvalidLocation`] for id 0 (an unspecified key); [`Error::NotFound`] if the path
/// does not exist; [`Error::Io`] otherwise.
pub fn ftok(path: impl AsRef<Path>, id: u8) -> Result<i32> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    if id == 0 {
        return Err(Error::InvalidLocation {
            location: shown,
            reason: "ftok's project id must not be 0",
        });
    }
    segment::ftok(path, id).map_err(|e| Error::io(&shown, "ftok", e))
}
