//! What a typed handle is attached to: a region, and how the handle's type `T` reaches its
//! value there — directly when the region holds `T`, through a projection (and, for writing,
//! a writeback) when it holds another, compatible version of `T` (README, "Changing a region's
//! type"). Opening finds out which; [`Chain`](crate::follow::Chain) keeps the attachments a
//! handle followed through migrations.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::format::{
    check_type, compare, migration, versions, Descriptor, KnownVersion, Migration, Projection,
    Refusal, Writeback,
};
use crate::guard::GuardScratch;
use crate::layout::ShmType;
use crate::location::Location;
use crate::lock::Wait;
use crate::reboot;
use crate::region::{Region, RegionSpec};
use crate::snapshot::{
    read_timed_out, snapshot, snapshot_bytes_until, snapshot_to, snapshot_within,
};
use crate::sys::object::Access;
use crate::wait::{unchanged_error, TimedOut, Unchanged};

/// A region, and how a handle's type reaches its value there.
pub(crate) struct Attached {
    pub(crate) region: Region,
    /// `None` when the region holds the handle's type (the direct path); the plan that
    /// projects the stored value onto it otherwise.
    pub(crate) read: Option<Box<Projection>>,
    /// For a writable handle of another, compatible type: how its guard's value is written
    /// back into the region's type. `None` on the direct path and for readers.
    pub(crate) write: Option<Box<Writeback>>,
    /// Where a guard through a compatible layout keeps its value.
    pub(crate) scratch: GuardScratch,
}

impl Attached {
    /// The direct path: `region` holds the handle's type.
    pub(crate) fn direct(region: Region) -> Self {
        Attached {
            region,
            read: None,
            write: None,
            scratch: GuardScratch::new(),
        }
    }

    /// The attachment of a handle made with `spec`: dropping it removes the location if
    /// `spec` asks for it ([`Region::arm_unlink_on_drop`]).
    pub(crate) fn armed(mut self, spec: &RegionSpec) -> Self {
        self.region.arm_unlink_on_drop(spec);
        self
    }

    /// Whether the handle reads the region through a projection.
    #[inline]
    pub(crate) fn is_projected(&self) -> bool {
        self.read.is_some()
    }

    /// A `T` projected from one consistent snapshot of the stored value.
    #[cold]
    pub(crate) fn read_projected<T: ShmType>(
        &self,
        projection: &Projection,
        deadline: Option<Instant>,
    ) -> std::result::Result<T, TimedOut> {
        let mut out = T::zeroed();
        self.project_into(projection, bytemuck::bytes_of_mut(&mut out), deadline)?;
        Ok(out)
    }

    /// What a guard of a projected handle starts from: the committed value (the region's
    /// type) and its projection onto a `T` on the heap (a guard's value may be too large for
    /// the stack). The caller holds the lock, so the read never waits and nobody writes the
    /// value until the guard commits.
    #[cold]
    pub(crate) fn begin_projected<T: ShmType>(&self) -> (Box<T>, Vec<u8>) {
        let mut value: Box<T> = bytemuck::zeroed_box();
        let mut stored = Vec::new();
        // No deadline: never times out.
        let _ = snapshot_bytes_until(&self.region, &mut stored, None);
        if let Some(projection) = &self.read {
            projection.apply(&stored, bytemuck::bytes_of_mut(&mut *value));
        }
        (value, stored)
    }

    /// Writes `value`'s fields back into `stored` (the committed value the guard started
    /// from, whose other fields stay as they are): what a projected guard commits. All or
    /// nothing: `InvalidField` names the first field the region's type cannot hold, and then
    /// `stored` is unchanged.
    #[cold]
    pub(crate) fn write_back<T: ShmType>(&self, value: &T, stored: &mut [u8]) -> Result<()> {
        let Some(write) = &self.write else {
            return Ok(());
        };
        write
            .apply(bytemuck::bytes_of(value), stored)
            .map_err(|unfit| Error::InvalidField {
                name: self.region.name().to_string(),
                field: unfit.path,
                reason: format!("{}; nothing was committed", unfit.reason),
            })
    }

    /// Projects one consistent snapshot of the stored value into `out` (a zeroed value of the
    /// handle's type), through a per-thread buffer (no allocation once it has grown to the
    /// stored size).
    fn project_into(
        &self,
        projection: &Projection,
        out: &mut [u8],
        deadline: Option<Instant>,
    ) -> std::result::Result<(), TimedOut> {
        thread_local! {
            static STORED: std::cell::RefCell<Vec<u8>> =
                const { std::cell::RefCell::new(Vec::new()) };
        }
        let mut project = |stored: &mut Vec<u8>| {
            snapshot_bytes_until(&self.region, stored, deadline)?;
            projection.apply(stored, out);
            Ok(())
        };
        // The buffer is only borrowed here, around a copy that calls nothing else: never
        // borrowed twice; a fresh buffer all the same if it were (or during thread exit).
        STORED
            .try_with(|buffer| match buffer.try_borrow_mut() {
                Ok(mut stored) => project(&mut stored),
                Err(_) => project(&mut Vec::new()),
            })
            .unwrap_or_else(|_| project(&mut Vec::new()))
    }
}

/// Opens `location` read-only for a reader of `T` (`spec.layout`): directly when it holds `T`,
/// through a projection when it holds a compatible type, and the `LayoutMismatch` of
/// `Shm::open` otherwise.
pub(crate) fn attach_reader<T: ShmType>(
    location: &Location,
    spec: &RegionSpec,
) -> Result<Attached> {
    match reboot::open(location, spec, Access::ReadOnly) {
        Ok(region) => Ok(Attached::direct(region)),
        // Another stored type: read through it if it is compatible with `T` (opened again,
        // untyped, and compared with whatever the location holds now).
        Err(Error::LayoutMismatch { .. }) => {
            through_compatible_layout::<T>(Region::open_untyped(location, spec)?, spec)
        }
        Err(other) => Err(other),
    }
}

/// An attachment to `region` (opened without comparing its type) for a reader of `T`.
fn through_compatible_layout<T: ShmType>(region: Region, spec: &RegionSpec) -> Result<Attached> {
    let name = region.name();
    if region.info().queue.is_some() {
        return Err(Error::WrongKind {
            name: name.to_string(),
            expected: "a single value",
            found: "a queue",
        });
    }
    let descriptor = region.descriptor_copy();
    let mismatch = match check_type(name, region.info(), || descriptor.clone(), spec.layout) {
        Ok(()) => return Ok(Attached::direct(region)),
        Err(mismatch) => mismatch,
    };
    let stored = Descriptor::decode(&descriptor, region.info().format_version)
        .map_err(|why| Error::corrupt(name, why))?;
    let plan = Projection::plan(
        &stored,
        region.info().layout.payload_size,
        &Descriptor::of(spec.layout),
        std::mem::size_of::<T>(),
    )
    .map_err(|refusal| match refusal {
        Refusal::Incompatible(_) => mismatch,
        // The stored table does not fit the stored value: a forged region.
        Refusal::Forged(why) => Error::corrupt(name, why),
    })?;
    Ok(Attached {
        region,
        read: Some(Box::new(plan)),
        write: None,
        scratch: GuardScratch::new(),
    })
}

/// How many times opening for writing looks at the location again after a migration (its
/// own, or another writer's that came first) before it gives up: each migration adds fields,
/// so the second look normally finds a region it writes through.
const MIGRATIONS_PER_OPEN: usize = 8;

/// Opens `location` read-write for a handle of `T` (`spec.layout`): directly when it holds
/// `T`; through a projection and a writeback when it holds a compatible type that has every
/// field of `T`; after migrating it (README, "Changing a region's type") when `T` has fields
/// it lacks; `LayoutMismatch` for an incompatible type.
pub(crate) fn attach_writer<T: ShmType>(
    location: &Location,
    spec: &RegionSpec,
) -> Result<Attached> {
    for _ in 0..MIGRATIONS_PER_OPEN {
        let mismatch = match reboot::open(location, spec, Access::ReadWrite) {
            Ok(region) => return Ok(Attached::direct(region)),
            Err(mismatch @ Error::LayoutMismatch { .. }) => mismatch,
            Err(other) => return Err(other),
        };
        // Another stored type: opened again, untyped (and reset if it is of another boot, as
        // every writable open does), and compared with whatever the location holds now.
        let region = reboot::open_untyped_writable(location, spec)?;
        match plan_writer::<T>(&region, spec, mismatch)? {
            WriterPlan::Direct => return Ok(Attached::direct(region)),
            WriterPlan::Through { read, write } => {
                return Ok(Attached {
                    region,
                    read: Some(read),
                    write: Some(write),
                    scratch: GuardScratch::new(),
                })
            }
            WriterPlan::Migrate(migration) => migrate(&region, spec, &migration)?,
        }
    }
    Err(Error::Timeout {
        name: location.to_string(),
        waiting_for: "a region it can write through (other writers migrated it again each time)",
        after: Duration::ZERO,
    })
}

/// What a writer of `T` does with a region of another stored type.
enum WriterPlan {
    /// It holds `T` after all (it was replaced meanwhile).
    Direct,
    /// It holds every field of `T`: read and write through these plans.
    Through {
        read: Box<Projection>,
        write: Box<Writeback>,
    },
    /// `T` has fields it lacks: migrate it, then look again.
    Migrate(Migration),
}

/// Compares `region`'s stored type with `T`; `mismatch` is the error of an incompatible one.
fn plan_writer<T: ShmType>(
    region: &Region,
    spec: &RegionSpec,
    mismatch: Error,
) -> Result<WriterPlan> {
    let name = region.name();
    if region.info().queue.is_some() {
        return Err(Error::WrongKind {
            name: name.to_string(),
            expected: "a single value",
            found: "a queue",
        });
    }
    let descriptor = region.descriptor_copy();
    if check_type(name, region.info(), || descriptor.clone(), spec.layout).is_ok() {
        return Ok(WriterPlan::Direct);
    }
    let stored = Descriptor::decode(&descriptor, region.info().format_version)
        .map_err(|why| Error::corrupt(name, why))?;
    let mine = Descriptor::of(spec.layout);
    let verdict = compare(&stored, &mine);
    if !verdict.is_compatible() || !verdict.shares_a_field() {
        return Err(mismatch);
    }
    let (size, align) = (
        region.info().layout.payload_size,
        region.info().layout.payload_align,
    );
    let forged = |refusal| match refusal {
        Refusal::Forged(why) => Error::corrupt(name, why),
        Refusal::Incompatible(why) => Error::NotMigratable {
            name: name.to_string(),
            reason: why,
        },
    };
    if let Some(migration) = migration(&stored, size, align, spec.layout).map_err(forged)? {
        return Ok(WriterPlan::Migrate(migration));
    }
    let read = Projection::plan(&stored, size, &mine, std::mem::size_of::<T>()).map_err(forged)?;
    let write = Writeback::plan(&stored, size, &mine, std::mem::size_of::<T>()).map_err(forged)?;
    Ok(WriterPlan::Through {
        read: Box::new(read),
        write: Box::new(write),
    })
}

/// Migrates `region` to `migration`'s target under its lock (the caller then opens the
/// location again): unless another writer migrated or replaced it first, which the lock
/// holder sees.
fn migrate(region: &Region, spec: &RegionSpec, migration: &Migration) -> Result<()> {
    let wait = Wait::For(spec.open_timeout);
    let held = region.lock_step(wait, 1).map_err(|not_locked| {
        not_locked
            .into_error(region)
            .unwrap_or_else(|| Error::Timeout {
                name: region.name().to_string(),
                waiting_for: "its lock, to migrate it (another process holds it)",
                after: spec.open_timeout,
            })
    })?;
    if region.has_moved() || region.is_removed()? {
        // Another writer came first: look at what the location holds now.
        return Ok(());
    }
    let target = RegionSpec {
        stored: Some(Arc::new(migration.target.clone())),
        versions: versions_after(region, spec).map(Into::into),
        ..spec.clone()
    };
    // SAFETY: `held` is this thread's lock of `region`, taken through it, and nothing was
    // written under it.
    let migrated = unsafe { region.migrate(&target, &|old, new| migration.carry.apply(old, new)) };
    drop(held);
    migrated
}

/// The versions table of the region that replaces `region`: its own table (or, without one,
/// its stored type as the first version), then the type of `spec`, the writer that migrates.
fn versions_after(region: &Region, spec: &RegionSpec) -> Option<Vec<u8>> {
    let held = KnownVersion {
        fingerprint: region.info().fingerprint,
        format_version: region.info().format_version,
        descriptor: region.descriptor_copy(),
    };
    let mine = Descriptor::of(spec.layout);
    let mine = KnownVersion {
        fingerprint: spec.layout.fingerprint(),
        format_version: mine.format_version(),
        descriptor: mine.encode(),
    };
    next_versions(&region.versions_copy(), held, mine)
}

/// [`versions_after`] of a region whose versions table is `table` (empty without one) and
/// whose stored type is `held`, migrated by a writer of `mine`. The table is kept within
/// what opening accepts (`versions::encode_newest`): a region's table may be up to the
/// limit already (a peer can write any valid table), and a table one entry longer would
/// make the migrated region unopenable for everyone once it is renamed over the name.
/// `None` (no table) if not even `mine` fits.
fn next_versions(table: &[u8], held: KnownVersion, mine: KnownVersion) -> Option<Vec<u8>> {
    let mut known = versions::decode(table).unwrap_or_default();
    if known.is_empty() {
        known.push(held);
    }
    known.retain(|version| version.fingerprint != mine.fingerprint);
    known.push(mine);
    versions::encode_newest(&known)
}

/// One consistent value of `T` from `attached`: its snapshot, or the projection of one.
#[inline]
pub(crate) fn read_from<T: ShmType>(attached: &Attached) -> T {
    match &attached.read {
        None => snapshot(&attached.region),
        Some(projection) => match attached.read_projected(projection, None) {
            Ok(value) => value,
            Err(TimedOut) => unreachable!("a read without a deadline cannot time out"),
        },
    }
}

/// [`read_from`], waiting at most `timeout` for a consistent value (`read_timeout`).
pub(crate) fn read_within<T: ShmType>(attached: &Attached, timeout: Duration) -> Result<T> {
    match &attached.read {
        None => snapshot_within(&attached.region, timeout),
        Some(projection) => attached
            .read_projected(projection, Instant::now().checked_add(timeout))
            .map_err(|TimedOut| read_timed_out(attached.region.name(), timeout)),
    }
}

/// `wait_for_change` of a handle: waits on `attached`'s region and, when it is migrated,
/// goes on waiting on the region `follow` attaches to (its versions continue the old ones,
/// so `since` keeps its meaning) within the same `timeout`.
/// `Removed` when that region cannot be opened.
pub(crate) fn wait_following<'a>(
    mut attached: &'a Attached,
    since: u64,
    timeout: Option<Duration>,
    follow: impl Fn(&'a Attached) -> Result<&'a Attached>,
) -> Result<u64> {
    // A timeout too large to represent as a deadline means none.
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let left = match deadline {
            Some(deadline) => Some(deadline.saturating_duration_since(Instant::now())),
            None => timeout,
        };
        match attached.region.wait_for_change(since, left) {
            Ok(version) => return Ok(version),
            // A successor this handle cannot open (removed since, or a region it refuses put
            // there) ends the wait as a removal does: the region waited on is no longer at
            // its location, and opening the location again tells what is there now.
            Err(Unchanged::Moved) => match follow(attached) {
                Ok(next) => attached = next,
                Err(_) => return Err(unchanged_error(&attached.region, Unchanged::Moved, timeout)),
            },
            Err(unchanged) => return Err(unchanged_error(&attached.region, unchanged, timeout)),
        }
    }
}

/// Whether a failure to follow a migrated region means there is nothing to follow: the region
/// that replaced it was removed in turn, or the name now holds a region of another type or
/// kind. The handle then stays on its own region, as a handle of a removed region does
/// (`is_removed` says so), instead of failing.
pub(crate) fn successor_gone(error: &Error) -> bool {
    matches!(
        error,
        Error::NotFound { .. }
            | Error::Removed { .. }
            | Error::LayoutMismatch { .. }
            | Error::WrongKind { .. }
    )
}

/// `read` of a handle: a consistent `T` from `attached`, or, when it was migrated, from the
/// region `follow` attaches to (following each migration; from the old region if no
/// successor opens: removed meanwhile, its value is the last one committed there). A move
/// found after the read is found by the next operation: the value read was committed before.
/// No frame holds more than one `T`, for values too large for several copies on a stack.
#[inline]
pub(crate) fn read_following<'a, T: ShmType>(
    attached: &'a Attached,
    follow: impl Fn(&'a Attached) -> Result<&'a Attached>,
) -> T {
    if attached.region.has_moved() {
        return read_from(after_move(attached, follow));
    }
    read_from(attached)
}

/// The attachment to read after finding `moved` migrated: the last one `follow` reaches, or
/// the last that was still current when following failed.
#[cold]
pub(crate) fn after_move<'a>(
    mut moved: &'a Attached,
    follow: impl Fn(&'a Attached) -> Result<&'a Attached>,
) -> &'a Attached {
    loop {
        match follow(moved) {
            Ok(next) if next.region.has_moved() => moved = next,
            Ok(next) => return next,
            Err(_) => return moved,
        }
    }
}

/// What a handle made with `unlink_on_drop` does as it drops: if its region was migrated,
/// follows it to the region that replaced it (as its next operation would), so that dropping
/// the chain removes that region, the one under the location now; a handle that never
/// followed would otherwise leave it behind, since the region it has is no longer under the
/// location. Nothing when following fails: the location is left as it is.
pub(crate) fn follow_before_unlink<'a>(
    attached: &'a Attached,
    unlink_on_drop: bool,
    follow: impl Fn(&'a Attached) -> Result<&'a Attached>,
) {
    if unlink_on_drop && attached.region.has_moved() {
        after_move(attached, follow);
    }
}

/// `read_into` of a handle: [`read_following`] into `out`.
#[inline]
pub(crate) fn read_into_following<'a, T: ShmType>(
    attached: &'a Attached,
    out: &mut T,
    follow: impl Fn(&'a Attached) -> Result<&'a Attached>,
) {
    let attached = if attached.region.has_moved() {
        after_move(attached, follow)
    } else {
        attached
    };
    match &attached.read {
        None => snapshot_to(&attached.region, out),
        Some(projection) => {
            let out = bytemuck::bytes_of_mut(out);
            out.fill(0);
            // No deadline: never times out.
            let _ = attached.project_into(projection, out, None);
        }
    }
}

/// `read_timeout` of a handle: [`read_within`], from the region that replaced `attached` if
/// it was migrated.
pub(crate) fn read_within_following<'a, T: ShmType>(
    attached: &'a Attached,
    timeout: Duration,
    follow: impl Fn(&'a Attached) -> Result<&'a Attached>,
) -> Result<T> {
    if attached.region.has_moved() {
        return read_within(after_move(attached, follow), timeout);
    }
    read_within(attached, timeout)
}

/// `version` of a handle: the published version of `attached`, or of the region that
/// replaced it (versions continue across a migration).
#[inline]
pub(crate) fn version_following<'a>(
    attached: &'a Attached,
    follow: impl Fn(&'a Attached) -> Result<&'a Attached>,
) -> u64 {
    let version = attached.region.published_version();
    if !attached.region.has_moved() {
        return version;
    }
    follow(attached).map_or(version, |next| next.region.published_version())
}

/// `is_removed` of a handle: a migrated region is not removed, its successor is asked. When
/// the successor cannot be followed (removed meanwhile, or of a type this handle refuses),
/// the location is asked about the region the handle has, which it no longer refers to: the
/// answer is about the location, never the successor's open error.
pub(crate) fn is_removed_following<'a>(
    attached: &'a Attached,
    follow: impl Fn(&'a Attached) -> Result<&'a Attached>,
) -> Result<bool> {
    if attached.region.has_moved() {
        if let Ok(next) = follow(attached) {
            return next.region.is_removed();
        }
    }
    attached.region.is_removed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(fingerprint: u64, descriptor_len: usize) -> KnownVersion {
        KnownVersion {
            fingerprint,
            format_version: 1,
            descriptor: vec![0; descriptor_len],
        }
    }

    /// A region whose versions table is as long as opening accepts (a peer can write one):
    /// the table of the region that replaces it still opens, the oldest entries left out.
    /// Before, the writer's entry was appended past the limit, and the migrated region, once
    /// renamed over the name, was refused as corrupt by everyone.
    #[test]
    fn a_full_versions_table_stays_within_the_limit_after_a_migration() {
        let limit = versions::MAX_VERSIONS_LEN;
        let full = versions::encode(&[version(1, limit / 2), version(2, limit / 2 - 40)]);
        assert!(full.len() <= limit && versions::decode(&full).is_ok());
        let next = next_versions(&full, version(2, 8), version(3, 64)).expect("a table");
        assert!(next.len() <= limit, "{} bytes", next.len());
        let known = versions::decode(&next).expect("it decodes");
        let fingerprints: Vec<u64> = known.iter().map(|v| v.fingerprint).collect();
        assert_eq!(
            fingerprints,
            [2, 3],
            "the oldest left out, the migrating writer last"
        );
    }

    /// A region without a table gets its own type, then the writer's.
    #[test]
    fn a_first_migration_lists_the_held_type_then_the_writer() {
        let next = next_versions(&[], version(1, 8), version(2, 8)).expect("a table");
        let known = versions::decode(&next).expect("it decodes");
        assert_eq!(known, [version(1, 8), version(2, 8)]);
    }
}
