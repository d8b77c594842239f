//! Changing any region's value without knowing its Rust type (`shmstore set`): the stored
//! descriptor says how to parse text into bytes ([`values`](crate::values)), and the writes
//! are committed under the region's lock through the same protocol as
//! [`Shm::lock`](crate::Shm::lock) (lock.rs), so they are published together or not at all.

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::KindEntry;
use crate::inspect::FieldInfo;
use crate::layout::ShmType;
use crate::location::Location;
use crate::lock::Wait;
use crate::region::{Region, RegionSpec};
use crate::values::{ByteWrite, Schema, StoredType, Value};

/// A read-write, untyped handle on a single-value region: it parses text by the region's
/// stored field kinds ([`parse_assignment`](Self::parse_assignment)) and commits byte writes
/// as one update under the region's lock ([`commit`](Self::commit)), with the guarantees of
/// [`Shm::lock`](crate::Shm::lock): readers see all the writes or none; if this process dies
/// in the middle, the next locker rolls the value back (or, in an `in_place` region, poisons
/// it).
///
/// It refuses queues, and `in_place` regions unless [`EditorOptions::in_place`] allows them
/// (their readers may wait for the whole commit, and a crash mid-commit poisons them).
///
/// ```
/// use shmstore::value::{FixedStr, Flag};
/// use shmstore::inspect::Editor;
/// use shmstore::{Shm, ShmType};
///
/// #[derive(ShmType, Clone, Copy)]
/// #[repr(C)]
/// struct Config { verbose: Flag, service: FixedStr<15> }
///
/// # let name = format!("doc-editor-{}", std::process::id());
/// let shm = Shm::<Config>::options().unlink_on_drop(true).create(&name, shmstore::zeroed())?;
///
/// let editor = Editor::open(&name)?;
/// let mut writes = editor.parse_assignment("verbose", "true")?;
/// writes.extend(editor.parse_assignment("service", "billing")?);
/// editor.commit(&writes)?;
///
/// let config = shm.read();
/// assert!(config.verbose.get());
/// assert_eq!(config.service, "billing");
/// # Ok::<(), shmstore::Error>(())
/// ```
pub struct Editor {
    region: Region,
    stored: StoredType,
    lock_timeout: Duration,
}

/// How an [`Editor`] opens a region: [`Editor::options`].
#[derive(Debug, Clone)]
pub struct EditorOptions {
    in_place: bool,
    allow_other_owner: bool,
    timeout: Duration,
}

/// What [`Editor::commit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Committed {
    /// The version published by the commit.
    pub version: u64,
    /// The region was poisoned (an `in_place` region whose writer died mid-write) before
    /// this commit, and stays so: the rest of the value may still be half-written. A typed
    /// handle's [`clear_poison`](crate::Shm::clear_poison) clears it once the value is checked.
    pub poisoned: bool,
}

impl EditorOptions {
    /// Allows `in_place` regions (refused by default).
    pub fn in_place(mut self, allow: bool) -> Self {
        self.in_place = allow;
        self
    }

    /// Allows regions that belong to another user (refused by default, as by
    /// [`ShmOptions::allow_other_owner`](crate::ShmOptions::allow_other_owner)).
    pub fn allow_other_owner(mut self, allow: bool) -> Self {
        self.allow_other_owner = allow;
        self
    }

    /// How long opening waits for a creator that is still initialising the region, and a
    /// commit for the lock (default one second).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Opens the region at `location` (a name, a file path or a System V key) read-write.
    ///
    /// # Errors
    ///
    /// [`Error::PermissionDenied`] when its mode does not let this user write it, when it
    /// belongs to another user and that was not allowed, or when it is an `in_place` region
    /// and that was not allowed; [`Error::WrongKind`] for a queue; and the errors of
    /// [`Shm::open`](crate::Shm::open) ([`Error::NotFound`], [`Error::Corrupt`] …).
    pub fn open(&self, location: impl Into<Location>) -> Result<Editor> {
        let location = location.into();
        let spec = RegionSpec {
            // Not compared: an untyped open reads the stored descriptor instead.
            layout: &<u8 as ShmType>::LAYOUT,
            stored: None,
            in_place: false,
            notify_readers: false,
            mode: 0,
            open_timeout: self.timeout,
            allow_other_owner: self.allow_other_owner,
            unlink_on_drop: false,
            wait_for_creation: None,
            queue: None,
            versions: None,
        };
        let region = crate::reboot::open_untyped_writable(&location, &spec)?;
        let name = region.name().to_string();
        if region.in_place() && !self.in_place {
            return Err(Error::PermissionDenied {
                name,
                detail: "it is an in_place region: its readers wait for a whole commit and a \
                         crash in the middle of one poisons it; allow it explicitly \
                         (EditorOptions::in_place, `shmstore set --in-place`)"
                    .into(),
            });
        }
        let stored = StoredType::decode(
            &name,
            &region.descriptor_copy(),
            region.info().format_version,
        )?;
        Ok(Editor {
            region,
            stored,
            lock_timeout: self.timeout,
        })
    }
}

impl Editor {
    /// Opens the region at `location` read-write with the default [`options`](Self::options).
    ///
    /// # Errors
    ///
    /// As [`EditorOptions::open`].
    pub fn open(location: impl Into<Location>) -> Result<Editor> {
        Self::options().open(location)
    }

    /// Options: `in_place` regions, other owners, the timeout.
    pub fn options() -> EditorOptions {
        EditorOptions {
            in_place: false,
            allow_other_owner: false,
            timeout: Duration::from_secs(1),
        }
    }

    /// The region's name.
    pub fn name(&self) -> &str {
        self.region.name()
    }

    /// The stored type's name.
    pub fn type_name(&self) -> &str {
        &self.stored.type_name
    }

    /// The stored field table.
    pub fn fields(&self) -> &[FieldInfo] {
        &self.stored.fields
    }

    /// The stored kinds table.
    pub fn kinds(&self) -> &[KindEntry] {
        &self.stored.kinds
    }

    fn schema(&self) -> Schema<'_> {
        self.stored.schema(
            self.region.name(),
            self.region.info().layout.payload_size as u64,
        )
    }

    /// As [`Inspector::parse_assignment`](crate::inspect::Inspector::parse_assignment), by this
    /// region's own descriptor.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidField`], saying what to type instead.
    pub fn parse_assignment(&self, path: &str, text: &str) -> Result<Vec<ByteWrite>> {
        self.schema().parse_assignment(path, text)
    }

    /// The value at `path` as of now (a consistent snapshot), as
    /// [`Inspector::value`](crate::inspect::Inspector::value).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidField`] when the path names no field; [`Error::Timeout`] when an
    /// `in_place` write stays in progress for the whole timeout.
    pub fn value(&self, path: &str) -> Result<Value> {
        let size = self.region.info().layout.payload_size;
        let mut bytes = vec![0u8; size];
        let deadline = std::time::Instant::now().checked_add(self.lock_timeout);
        // SAFETY: `bytes` has `size` bytes, the payload size of this region.
        unsafe {
            self.region
                .snapshot_into(bytes.as_mut_ptr(), size, deadline)
        }
        .map_err(|_| crate::snapshot::read_timed_out(self.region.name(), self.lock_timeout))?;
        self.schema().value(&bytes, path)
    }

    /// Applies `writes` in order, as one update under the region's lock: readers see the
    /// value before or after all of them. Waits for the lock at most the options' timeout.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidField`] when a write lies outside the value (nothing is written);
    /// [`Error::Timeout`] when another process held the lock for the whole timeout;
    /// [`Error::Corrupt`] when the lock is unusable; [`Error::Removed`] when a migration
    /// replaced the region under its name by one of a wider type (nothing is written: open
    /// a new editor, parse the assignments by the new region's descriptor and commit again).
    pub fn commit(&self, writes: &[ByteWrite]) -> Result<Committed> {
        let region = &self.region;
        let size = region.info().layout.payload_size;
        for write in writes {
            let fits = usize::try_from(write.offset)
                .ok()
                .and_then(|offset| offset.checked_add(write.bytes.len()))
                .is_some_and(|end| end <= size);
            if !fits {
                return Err(Error::InvalidField {
                    name: region.name().to_string(),
                    field: String::new(),
                    reason: format!(
                        "a write of {} bytes at offset {} lies outside the {size}-byte value",
                        write.bytes.len(),
                        write.offset
                    ),
                });
            }
        }
        let wait = Wait::For(self.lock_timeout);
        let poisoned = match region.acquire(wait) {
            Ok(poisoned) => poisoned,
            Err(failure) => {
                // `into_error` is `None` only for a busy lock: here, a timeout.
                let not_locked = region.not_locked(failure, wait);
                return Err(not_locked
                    .into_error(region)
                    .unwrap_or_else(|| Error::Timeout {
                        name: region.name().to_string(),
                        waiting_for: "its lock (another process holds it)",
                        after: self.lock_timeout,
                    }));
            }
        };
        if region.has_moved() {
            // A migration replaced the region under its name (under this lock, before we
            // took it): the byte writes were parsed by the old descriptor, whose offsets
            // need not hold in the new region, so they are not retried there.
            // SAFETY: this thread holds the lock, taken through this region just above;
            // nothing was written.
            unsafe { region.release(false, size) };
            return Err(Error::Removed {
                name: region.name().to_string(),
            });
        }
        let wrote = !writes.is_empty();
        if wrote {
            region.begin_write();
            let working = region.working_copy();
            for write in writes {
                // SAFETY: `offset + len <= payload_size` (checked above, before locking), so
                // the address is inside the working copy, which lies in the mapping.
                let target = unsafe { working.add(write.offset as usize) };
                // SAFETY: `target` is valid for `len` bytes of the working copy (as above),
                // which the mapping holds read-write (this handle was opened so); this thread
                // holds the lock and made the version odd, so no other process writes it and
                // lock-free readers only load it atomically and discard what they read, as
                // with `ShmGuard`'s writes; the source is our own `Vec`, which does not
                // overlap the mapping; bytes need no alignment.
                unsafe {
                    std::ptr::copy_nonoverlapping(write.bytes.as_ptr(), target, write.bytes.len())
                };
            }
        }
        // SAFETY: this thread holds the lock, taken through this region by `acquire` above,
        // and the size is the region's own payload size. Had this process died above, the
        // next locker would have rolled the write back (or poisoned an in-place region).
        unsafe { region.release(wrote, size) };
        Ok(Committed {
            version: region.published_version(),
            poisoned,
        })
    }
}

impl fmt::Debug for Editor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Editor")
            .field("name", &self.name())
            .field("type_name", &self.stored.type_name)
            .finish()
    }
}
