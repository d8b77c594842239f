//! Looking into any region without knowing its Rust type: the header, the stored field table,
//! and values decoded from a consistent snapshot. This is what the `shmstore` command shows.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;

use std::time::{Duration, Instant};

pub use crate::editor::{Committed, Editor, EditorOptions};
pub use crate::format::{
    Compatibility, FieldCompatibility, FieldVerdict, KindEntry, Overall, StoredKind,
};
pub use crate::values::{ByteWrite, Value};

use crate::error::{Error, Result};
use crate::format::{
    self, Descriptor, DescriptorField, Header, HeaderInfo, LoadAcquire, QueueShape,
    MAX_DESCRIPTOR_LEN,
};
use crate::info::{summarize, RegionInfo};
use crate::layout::{Primitive, ShmType};
use crate::location::Location;
use crate::look::{self, Looked};
use crate::region::{Region, RegionSpec};
use crate::snapshot::read_timed_out;
use crate::sys::{object, sysv};
use crate::values::StoredType;
use crate::wait::{wait_for_change, TimedOut};

/// A read-only, untyped view of a region (a value or a queue) of any type and any owner.
///
/// It never locks the region and never writes to it, so it cannot disturb the processes that
/// use it; it opens regions of other users too (reading them is what their mode allows).
///
/// It never maps a POSIX object or a file either: it reads them with `pread`, so another
/// process that shrinks, swaps or rewrites the object can make a read fail or show a stale
/// value, never kill the inspecting process with SIGBUS or hang it. A System V segment, whose
/// size nobody can change, is attached read-only.
///
/// ```
/// use shmstore::inspect::Inspector;
/// use shmstore::{Shm, ShmType};
///
/// #[derive(ShmType, Clone, Copy)]
/// #[repr(C)]
/// struct Limits { rate_per_s: u32, burst: u32, weights: [u16; 4] }
///
/// # let name = format!("doc-inspect-{}", std::process::id());
/// let shm = Shm::<Limits>::options().unlink_on_drop(true).create(
///     &name,
///     Limits { rate_per_s: 500, burst: 50, weights: [1, 2, 3, 4] },
/// )?;
///
/// let view = Inspector::open(&name)?;
/// assert_eq!(view.type_name(), "Limits");
/// let lines: Vec<String> = view
///     .fields()
///     .iter()
///     .map(|f| format!("{} = {}", f.path, f.render(&view.read(), 8)))
///     .collect();
/// assert_eq!(lines, ["rate_per_s = 500", "burst = 50", "weights = [1, 2, 3, 4]"]);
/// # Ok::<(), shmstore::Error>(())
/// ```
pub struct Inspector {
    source: Source,
    stored: StoredType,
    /// The stored descriptor as decoded, for comparisons ([`Inspector::descriptor`]).
    descriptor: Descriptor,
}

/// A type descriptor (`FORMAT.md`, "Type descriptor"): a type's name, its field table and its
/// kinds table, as a region stores them. A region's comes from
/// [`Inspector::descriptor`], a Rust type's from [`TypeDescriptor::of`], and any stored
/// bytes (a `shmstore inspect --json` dump's `descriptor`) through
/// [`TypeDescriptor::decode`]; [`compatibility`] compares two of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeDescriptor(Descriptor);

impl TypeDescriptor {
    /// The descriptor a region of `T` stores.
    pub fn of<T: ShmType>() -> TypeDescriptor {
        TypeDescriptor(Descriptor::of(&T::LAYOUT))
    }

    /// Decodes the stored bytes of a descriptor of `format_version` (1: no kinds table, 2: with
    /// one), checked as opening a region checks them.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] (naming `source`, which says where the bytes come from) when the
    /// bytes are not a descriptor of that version.
    pub fn decode(source: &str, bytes: &[u8], format_version: u32) -> Result<TypeDescriptor> {
        Descriptor::decode(bytes, format_version)
            .map(TypeDescriptor)
            .map_err(|why| Error::corrupt(source, why))
    }

    /// The stored bytes, which [`decode`](Self::decode) reads back.
    pub fn encode(&self) -> Vec<u8> {
        self.0.encode()
    }

    /// The header's `format_version` for this descriptor: 1 without kinds, 2 with them.
    pub fn format_version(&self) -> u32 {
        self.0.format_version()
    }

    /// The type's name.
    pub fn type_name(&self) -> &str {
        &self.0.type_name
    }
}

/// Whether a type described by `other` may share a region whose stored type is `region`,
/// field by field (`FORMAT.md`, "Comparing two descriptors"; the README's "Changing a region's
/// type" gives the rules). A pure comparison: it never reads a region.
///
/// A region opens on the direct path only for its identical type ([`Overall::Identical`]),
/// and through a compatible layout for a [`Compatible`](Overall::Compatible) one; the verdict
/// tells an operator, before a deploy, whether a new version of the type keeps to the rules
/// that let the two share the region.
///
/// ```
/// use shmstore::inspect::{compatibility, FieldVerdict, Overall, TypeDescriptor};
/// use shmstore::ShmType;
///
/// #[derive(ShmType, Clone, Copy)]
/// #[repr(C)]
/// #[shm(name = "Limits")]
/// struct LimitsV1 { rate: u32, burst: u32 }
///
/// #[derive(ShmType, Clone, Copy)]
/// #[repr(C)]
/// #[shm(name = "Limits")]
/// struct LimitsV2 { rate: u64, burst: u32, window_ms: u32 }
///
/// let old = TypeDescriptor::of::<LimitsV1>();
/// let new = TypeDescriptor::of::<LimitsV2>();
/// let verdict = compatibility(&old, &new);
/// assert_eq!(verdict.overall, Overall::Compatible);
/// let lines: Vec<String> = verdict
///     .fields
///     .iter()
///     .map(|f| format!("{} {}", f.path, f.verdict.name()))
///     .collect();
/// assert_eq!(lines, ["rate widened", "burst same", "window_ms added"]);
///
/// // The other way round, `rate` would be cut from u64 to u32.
/// let back = compatibility(&new, &old);
/// assert_eq!(back.overall, Overall::Incompatible);
/// assert!(matches!(back.fields[0].verdict, FieldVerdict::Incompatible { .. }));
/// assert_eq!(compatibility(&old, &old).overall, Overall::Identical);
/// ```
pub fn compatibility(region: &TypeDescriptor, other: &TypeDescriptor) -> Compatibility {
    format::compare(&region.0, &other.0)
}

/// One type that shaped a region: a version of its type that opened it for writing and
/// migrated it to a layout that holds its fields (`FORMAT.md`, "Versions table"), or, for a
/// region never migrated, its stored type alone. [`Inspector::versions`] lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VersionInfo {
    /// The type's layout fingerprint (`FORMAT.md`, "Fingerprint").
    pub fingerprint: u64,
    /// The type's name.
    pub type_name: String,
    /// The paths of its stored field table, in its order, spelled as [`FieldInfo::path`]
    /// spells them: the fields this version knows.
    pub fields: Vec<String>,
    /// Whether it is the type the region holds (its fingerprint is the header's): a region
    /// migrated to the union of two types holds neither, and no version is.
    pub is_stored: bool,
}

/// How an inspector reads its region.
enum Source {
    /// A POSIX object or a file, read with `pread` and never mapped: another process that
    /// shrinks it makes a read fail, never raise SIGBUS here.
    Read {
        location: Location,
        /// `location` as text, for messages.
        name: String,
        /// Where the object is named: to tell whether a migration replaced it.
        path: PathBuf,
        looked: Looked,
    },
    /// A System V segment, attached read-only: its size is fixed at creation and checked with
    /// `IPC_STAT` before `shmat`, so nobody can shrink it under the mapping.
    Mapped {
        region: Region,
        /// The segment's `cuid`, as `IPC_STAT` said when it was opened.
        creator_uid: Option<u32>,
    },
}

/// How long [`Inspector::open`] waits for a creator that is still initialising the region.
const OPEN_WAIT: Duration = Duration::from_secs(1);

/// One row of a region's stored field table: a primitive leaf of the type, or an array of them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FieldInfo {
    /// The dotted path (`limits.rate_per_s`, `wheels[].pressure`); empty for a type that is
    /// itself a primitive or an array of primitives.
    pub path: String,
    /// The primitive, or `None` for a code this build does not know.
    pub primitive: Option<Primitive>,
    /// The byte offset of the first element within the value.
    pub offset: u64,
    /// `(count, stride in bytes)` per dimension, outermost first; empty for a scalar.
    pub dims: Vec<(u64, u64)>,
    type_text: String,
}

impl FieldInfo {
    pub(crate) fn from_descriptor(field: &DescriptorField) -> FieldInfo {
        FieldInfo {
            path: field.path.clone(),
            primitive: u8::try_from(field.primitive)
                .ok()
                .and_then(Primitive::from_code),
            offset: field.offset,
            dims: field.dims.clone(),
            type_text: field.type_text(),
        }
    }

    /// The field's type as text: `u32`, `[f32; 4]`, or `f32 ×4 (stride 8)` for an array
    /// whose elements are spread out (a field inside an array of structs).
    pub fn type_text(&self) -> &str {
        &self.type_text
    }

    /// How many primitive elements the field has (1 for a scalar).
    pub fn element_count(&self) -> u64 {
        self.dims
            .iter()
            .fold(1u64, |n, (count, _)| n.saturating_mul(*count))
    }

    /// The field's elements decoded from `value` (the bytes of a whole value, as
    /// [`Inspector::read`] returns them), in order, at most `limit` of them. Elements that
    /// would lie outside `value`, and fields of an unknown primitive, give nothing.
    pub fn values(&self, value: &[u8], limit: usize) -> Vec<Scalar> {
        let Some(primitive) = self.primitive else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut index = vec![0u64; self.dims.len()];
        while out.len() < limit {
            let mut at = Some(self.offset);
            for (i, (_, stride)) in index.iter().zip(&self.dims) {
                at = at.and_then(|a| a.checked_add(i.checked_mul(*stride)?));
            }
            match at.and_then(|a| Scalar::decode(primitive, value, a)) {
                Some(scalar) => out.push(scalar),
                None => break,
            }
            // Next index, last dimension fastest.
            let mut d = self.dims.len();
            loop {
                if d == 0 {
                    return out;
                }
                d -= 1;
                index[d] += 1;
                if index[d] < self.dims[d].0 {
                    break;
                }
                index[d] = 0;
            }
        }
        out
    }

    /// The field's value as text: `500`, or `[1, 2, 3, 4]` for an array, or
    /// `[0, 0, 0, … (1021 more)]` when it has more than `max_elements` elements.
    pub fn render(&self, value: &[u8], max_elements: usize) -> String {
        let values = self.values(value, max_elements.max(1));
        if self.dims.is_empty() {
            return values
                .first()
                .map_or_else(|| "?".to_string(), |v| v.to_string());
        }
        let total = self.element_count();
        let mut text: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        if (values.len() as u64) < total {
            text.push(format!("… ({} more)", total - values.len() as u64));
        }
        format!("[{}]", text.join(", "))
    }
}

/// One decoded primitive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar {
    /// `u8` to `u128`.
    Unsigned(u128),
    /// `i8` to `i128`.
    Signed(i128),
    /// `f32` or `f64`.
    Float(f64),
}

impl Scalar {
    pub(crate) fn decode(primitive: Primitive, bytes: &[u8], at: u64) -> Option<Scalar> {
        let at = usize::try_from(at).ok()?;
        let size = primitive.size();
        let raw = bytes.get(at..at.checked_add(size)?)?;
        // Native byte order, widened to 128 bits.
        let mut wide = [0u8; 16];
        let unsigned = if cfg!(target_endian = "little") {
            wide[..size].copy_from_slice(raw);
            u128::from_le_bytes(wide)
        } else {
            wide[16 - size..].copy_from_slice(raw);
            u128::from_be_bytes(wide)
        };
        let unused_bits = 128 - 8 * size as u32;
        Some(match primitive {
            Primitive::U8 | Primitive::U16 | Primitive::U32 | Primitive::U64 | Primitive::U128 => {
                Scalar::Unsigned(unsigned)
            }
            Primitive::I8 | Primitive::I16 | Primitive::I32 | Primitive::I64 | Primitive::I128 => {
                // Sign-extend from the primitive's width.
                Scalar::Signed(((unsigned << unused_bits) as i128) >> unused_bits)
            }
            Primitive::F32 => Scalar::Float(f64::from(f32::from_bits(unsigned as u32))),
            Primitive::F64 => Scalar::Float(f64::from_bits(unsigned as u64)),
        })
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Unsigned(v) => write!(f, "{v}"),
            Scalar::Signed(v) => write!(f, "{v}"),
            Scalar::Float(v) => write!(f, "{v:?}"),
        }
    }
}

/// Every header field of a region, as stored (`FORMAT.md`), read without a lock. `version` is
/// the raw word, twice the version the API reports: see
/// [`published_version`](Self::published_version).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[allow(missing_docs)] // each field is the `FORMAT.md` header field of the same name
pub struct HeaderFields {
    pub format_version: u32,
    pub header_size: u32,
    pub state: u32,
    pub flags: u32,
    pub fingerprint: u64,
    pub payload_offset: u64,
    pub payload_size: u64,
    pub payload_align: u64,
    pub region_size: u64,
    pub descriptor_offset: u64,
    pub descriptor_len: u64,
    pub creator_pid: u32,
    pub mutex_size: u32,
    pub boot_id: [u8; 16],
    pub kind: u32,
    pub queue_mode: u32,
    pub queue_capacity: u64,
    pub queue_element_size: u64,
    pub version: u64,
    pub waiters: u32,
    pub poisoned: u32,
    pub commit_in_progress: u32,
    pub read_requests: u32,
    pub reads_served: u32,
    pub versions_offset: u64,
    pub versions_len: u64,
}

impl HeaderFields {
    /// The version the API reports for this header's raw `version` word, as
    /// [`Inspector::version`] counts them: the commits (and rollbacks) published since the
    /// region was created. The word itself moves by two per commit (FORMAT.md).
    pub fn published_version(&self) -> u64 {
        crate::snapshot::version_from_word(self.version)
    }

    /// Whether the raw `version` word is odd: a write is under way (or its writer died, and
    /// the next `lock()` repairs the region).
    pub fn write_under_way(&self) -> bool {
        self.version & 1 == 1
    }
}

impl Inspector {
    /// Opens a region read-only, whatever its type, kind or owner: a name, a file path or a
    /// System V key. A `&str` is a name; the `shmstore` command reads its argument with
    /// [`Location::parse`](crate::Location::parse) (`limits`, `./state.shm`, `sysv:0x5eed0001`).
    /// It waits up to one second for a creator that is still initialising the region.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] or [`Error::InvalidLocation`], [`Error::NotFound`],
    /// [`Error::Corrupt`] (not a shmstore region, or it changed under us),
    /// [`Error::Incomplete`], [`Error::PermissionDenied`] (its mode refuses reading),
    /// [`Error::Timeout`] (its creator is still initialising it), [`Error::Io`].
    pub fn open(location: impl Into<Location>) -> Result<Inspector> {
        Self::open_waiting(location.into(), OPEN_WAIT)
    }

    /// [`open`](Self::open) without waiting: a region whose creator is still initialising it
    /// is [`Error::Timeout`] at once. For tools that look at many regions, so that each one
    /// costs a bounded amount of work whatever other processes do (`shmstore list`).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub fn open_now(location: impl Into<Location>) -> Result<Inspector> {
        Self::open_waiting(location.into(), Duration::ZERO)
    }

    /// The first bytes of the object at a name or a file path (up to its 256-byte header;
    /// fewer if it is shorter), to tell a region from another program's object before opening
    /// it: read with `pread` from a descriptor opened without blocking or following a link, and
    /// never locked or mapped.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] or [`Error::InvalidLocation`] (also for a System V key: a segment
    /// cannot be read without attaching it), [`Error::NotFound`], [`Error::Corrupt`] (not a
    /// regular file, or it shrank while being read), [`Error::PermissionDenied`],
    /// [`Error::Io`].
    pub fn read_head(location: &Location) -> Result<Vec<u8>> {
        location.validate()?;
        let name = location.to_string();
        match location {
            Location::Named(region) => look::head(&name, &object::shm_path(region)),
            Location::File(path) => look::head(&name, path),
            Location::SysV(_) => Err(Error::InvalidLocation {
                location: name,
                reason: "a System V segment cannot be read without attaching it",
            }),
        }
    }

    fn open_waiting(location: Location, wait: Duration) -> Result<Inspector> {
        location.validate()?;
        let name = location.to_string();
        let (source, descriptor) = match &location {
            Location::Named(region) => read_source(&location, &object::shm_path(region), wait)?,
            Location::File(path) => read_source(&location, path, wait)?,
            Location::SysV(key) => {
                let spec = RegionSpec {
                    layout: &<u8 as ShmType>::LAYOUT,
                    stored: None,
                    in_place: false,
                    notify_readers: false,
                    mode: 0,
                    open_timeout: wait,
                    allow_other_owner: true,
                    unlink_on_drop: false,
                    wait_for_creation: None,
                    queue: None,
                    versions: None,
                };
                let region = Region::open_untyped(&location, &spec)?;
                let descriptor = region.descriptor_copy();
                let creator_uid = sysv::get(*key)
                    .and_then(sysv::stat)
                    .ok()
                    .map(|stat| stat.creator_uid);
                (
                    Source::Mapped {
                        region,
                        creator_uid,
                    },
                    descriptor,
                )
            }
        };
        let format_version = match &source {
            Source::Read { looked, .. } => looked.info.format_version,
            Source::Mapped { region, .. } => region.info().format_version,
        };
        let stored = StoredType::decode(&name, &descriptor, format_version)?;
        // The decoder accepted these bytes just above.
        let descriptor = Descriptor::decode(&descriptor, format_version)
            .map_err(|why| Error::corrupt(&name, why))?;
        Ok(Inspector {
            stored,
            source,
            descriptor,
        })
    }

    /// The region's name.
    pub fn name(&self) -> &str {
        match &self.source {
            Source::Read { name, .. } => name,
            Source::Mapped { region, .. } => region.name(),
        }
    }

    /// The stored type's name (of the value, or of one queue element).
    pub fn type_name(&self) -> &str {
        &self.stored.type_name
    }

    /// The stored field table.
    pub fn fields(&self) -> &[FieldInfo] {
        &self.stored.fields
    }

    /// The stored kinds table: which values are text, flags, optional values, timestamps,
    /// enums or lists (empty for a region of format version 1). [`values`](Self::values)
    /// decodes them.
    pub fn kinds(&self) -> &[KindEntry] {
        &self.stored.kinds
    }

    /// The field and kinds tables together, to decode and encode values (values.rs).
    pub(crate) fn schema(&self) -> crate::values::Schema<'_> {
        let info = self.header_info();
        self.stored.schema(
            self.name(),
            // The bytes one value takes: a queue's element, or the single value.
            info.queue
                .map_or(info.layout.payload_size, |shape| shape.element_size) as u64,
        )
    }

    /// The region's stored type descriptor (of one element, for a queue).
    pub fn descriptor(&self) -> TypeDescriptor {
        TypeDescriptor(self.descriptor.clone())
    }

    /// Every type that shaped the region, oldest first: the last one is the type that last
    /// migrated it (`FORMAT.md`, "Versions table"). A region never migrated has no table:
    /// its one version is its stored type. Read when called (the table never changes).
    ///
    /// ```
    /// use shmstore::inspect::Inspector;
    /// use shmstore::{Shm, ShmType};
    ///
    /// #[derive(ShmType, Clone, Copy)]
    /// #[repr(C)]
    /// struct Config { workers: u32, timeout_ms: u32 }
    ///
    /// # let name = format!("doc-versions-{}", std::process::id());
    /// let _shm = Shm::<Config>::options()
    ///     .unlink_on_drop(true)
    ///     .create(&name, Config { workers: 4, timeout_ms: 500 })?;
    /// let view = Inspector::open(&name)?;
    /// let versions = view.versions()?;
    /// assert_eq!(versions.len(), 1);
    /// assert_eq!(versions[0].type_name, "Config");
    /// assert_eq!(versions[0].fields, ["workers", "timeout_ms"]);
    /// assert!(versions[0].is_stored);
    /// // Which versions know each field of the held layout: here, the only one.
    /// assert_eq!(view.fields_known_by(&versions), [vec![0], vec![0]]);
    /// # Ok::<(), shmstore::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] when the table is unreadable (truncated, or an entry whose
    /// descriptor does not decode: a peer wrote it), or when the object can no longer be read
    /// (another process shrank it); [`Error::Io`].
    pub fn versions(&self) -> Result<Vec<VersionInfo>> {
        let info = self.header_info();
        if info.layout.versions().is_none() {
            return Ok(vec![VersionInfo {
                fingerprint: info.fingerprint,
                type_name: self.descriptor.type_name.clone(),
                fields: paths_of(&self.descriptor),
                is_stored: true,
            }]);
        }
        let name = self.name();
        let bytes = match &self.source {
            Source::Read { name, looked, .. } => looked.versions(name)?,
            Source::Mapped { region, .. } => region.versions_copy(),
        };
        let unreadable =
            |why: String| Error::corrupt(name, format!("its versions table is unreadable: {why}"));
        let table = format::versions::decode(&bytes).map_err(unreadable)?;
        table
            .into_iter()
            .enumerate()
            .map(|(index, entry)| {
                let descriptor = Descriptor::decode(&entry.descriptor, entry.format_version)
                    .map_err(|why| unreadable(format!("version #{}: {why}", index + 1)))?;
                Ok(VersionInfo {
                    fingerprint: entry.fingerprint,
                    type_name: descriptor.type_name.clone(),
                    fields: paths_of(&descriptor),
                    is_stored: entry.fingerprint == info.fingerprint,
                })
            })
            .collect()
    }

    /// For each field of the held layout ([`fields`](Self::fields), in its order), the indexes
    /// into `versions` ([`versions`](Self::versions)' result) of the versions that know it: a
    /// field that only a newer version added is known by that version and the later ones.
    pub fn fields_known_by(&self, versions: &[VersionInfo]) -> Vec<Vec<usize>> {
        // One pass over every version's fields, so that a forged table of many long field
        // lists costs time linear in its size, not a product of its lengths. A path that the
        // held layout repeats (only a forged descriptor does) gets the list at its first row.
        let mut by_path: HashMap<&str, Vec<usize>> = HashMap::new();
        for field in self.fields() {
            by_path.entry(field.path.as_str()).or_default();
        }
        for (index, version) in versions.iter().enumerate() {
            for path in &version.fields {
                if let Some(known) = by_path.get_mut(path.as_str()) {
                    if known.last() != Some(&index) {
                        known.push(index);
                    }
                }
            }
        }
        self.fields()
            .iter()
            .map(|field| by_path.remove(field.path.as_str()).unwrap_or_default())
            .collect()
    }

    /// Whether a program whose type is `T` may share this region with the programs of its
    /// stored type, field by field: [`compatibility`] of the stored descriptor and `T`'s.
    /// [`Overall::Identical`] opens on the direct path, [`Overall::Compatible`] through a
    /// compatible layout (migrating the region first when `T` adds fields); this is the check
    /// to run before a deploy.
    ///
    /// ```
    /// use shmstore::inspect::{Inspector, Overall};
    /// use shmstore::{Shm, ShmType};
    ///
    /// #[derive(ShmType, Clone, Copy)]
    /// #[repr(C)]
    /// #[shm(name = "Config")]
    /// struct ConfigV1 { workers: u32 }
    ///
    /// #[derive(ShmType, Clone, Copy)]
    /// #[repr(C)]
    /// #[shm(name = "Config")]
    /// struct ConfigV2 { workers: u32, timeout_ms: u32 }
    ///
    /// # let name = format!("doc-compat-{}", std::process::id());
    /// let _v1 = Shm::<ConfigV1>::options()
    ///     .unlink_on_drop(true)
    ///     .create(&name, ConfigV1 { workers: 4 })?;
    /// let view = Inspector::open(&name)?;
    /// assert_eq!(view.compatibility_with::<ConfigV1>().overall, Overall::Identical);
    /// let v2 = view.compatibility_with::<ConfigV2>();
    /// assert_eq!(v2.overall, Overall::Compatible);
    /// assert_eq!(v2.fields[1].path, "timeout_ms");
    /// # Ok::<(), shmstore::Error>(())
    /// ```
    pub fn compatibility_with<T: ShmType>(&self) -> Compatibility {
        let mut verdict = format::compare(&self.descriptor, &Descriptor::of(&T::LAYOUT));
        // Equal descriptors can still belong to types that `open` tells apart: the fingerprint
        // also covers nested struct names and the alignment (`packed` or not), which the
        // descriptor does not store. Identical means that `open` accepts `T` today.
        let info = self.header_info();
        if verdict.overall == Overall::Identical
            && (info.fingerprint != T::LAYOUT.fingerprint()
                || info.queue.is_none() && info.layout.payload_align != T::LAYOUT.align())
        {
            verdict.overall = Overall::Compatible;
        }
        verdict
    }

    /// Whether the region is a queue ([`ShmQueue`](crate::ShmQueue)).
    pub fn is_queue(&self) -> bool {
        self.header_info().queue.is_some()
    }

    fn header_info(&self) -> &HeaderInfo {
        match &self.source {
            Source::Read { looked, .. } => &looked.info,
            Source::Mapped { region, .. } => region.info(),
        }
    }

    /// What [`list`](crate::list) reports about it, as of now. If the object can no longer be
    /// read (another process shrank it), as of when it was opened, with a queue's length 0.
    pub fn info(&self) -> RegionInfo {
        let type_name = self.stored.type_name.clone();
        match &self.source {
            Source::Read {
                location,
                name,
                looked,
                ..
            } => {
                let header = looked.header_now(name).ok();
                let header = header.as_ref().unwrap_or(&looked.header);
                let queue = looked.info.queue.map(|shape| {
                    looked
                        .queue_control(name)
                        .ok()
                        .and_then(|control| {
                            let capacity = format::counted_capacity(&type_name, shape.capacity);
                            format::peek(control.bytes(), capacity)
                        })
                        .unwrap_or((0, false))
                });
                summarize(
                    location,
                    type_name,
                    header.header(),
                    &looked.info,
                    queue,
                    None,
                )
            }
            Source::Mapped {
                region,
                creator_uid,
            } => summarize(
                region.location(),
                type_name,
                region.header(),
                region.info(),
                peek_region(region, &self.stored.type_name),
                *creator_uid,
            ),
        }
    }

    /// For a byte channel ([`ShmChannel`](crate::ShmChannel)), its capacity, largest message,
    /// bytes used, whether it is closed, its mode and SPSC role holders, as of now; `None` for
    /// a value or a [`ShmQueue`](crate::ShmQueue), or if the object can no longer be read.
    pub fn channel(&self) -> Option<ChannelInfo> {
        let shape = self.header_info().queue?;
        if !format::is_channel_type(&self.stored.type_name) {
            return None;
        }
        match &self.source {
            Source::Read { name, looked, .. } => {
                let control = looked.queue_control(name).ok()?;
                let at = looked.info.layout.payload_offset + format::SETTINGS_OFFSET;
                let settings = looked.bytes_at(name, at, 8).ok()?;
                Some(channel_info(shape, control.bytes().view()?, &settings))
            }
            Source::Mapped { region, .. } => {
                let payload = region.payload()?;
                let settings = payload.range(format::SETTINGS_OFFSET, 8)?.load_bytes();
                Some(channel_info(shape, payload.view()?, &settings))
            }
        }
    }

    /// Every header field, as of now. If the object can no longer be read (another process
    /// shrank it), as of when it was opened.
    pub fn header_fields(&self) -> HeaderFields {
        match &self.source {
            Source::Read { name, looked, .. } => {
                let now = looked.header_now(name).ok();
                header_fields_of(now.as_ref().unwrap_or(&looked.header).header())
            }
            Source::Mapped { region, .. } => header_fields_of(region.header()),
        }
    }

    /// A consistent snapshot of the value's bytes (never half a write), to decode with
    /// [`FieldInfo::values`]. For a queue, the bytes of its oldest element, if it has one
    /// (a copy taken without the queue's protocol: a consumer may be taking it meanwhile).
    ///
    /// Like [`ShmReader::read`](crate::ShmReader::read), it waits while an `in_place` write is
    /// in progress, and for as long as a writer that died mid-write stays unrepaired (a
    /// writable handle's next lock repairs it): use [`read_timeout`](Self::read_timeout) to
    /// bound that. If the value can no longer be read (another process shrank the object),
    /// the bytes are empty and every field renders as `?`; `read_timeout` says why.
    pub fn read(&self) -> Vec<u8> {
        self.read_until(None).unwrap_or_default()
    }

    /// [`read`](Self::read), waiting at most `timeout` for a consistent value.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when an `in_place` write stayed in progress (or a dead writer stayed
    /// unrepaired) for the whole `timeout`; [`Error::Corrupt`] when the object no longer holds
    /// the value (another process shrank it).
    pub fn read_timeout(&self, timeout: Duration) -> Result<Vec<u8>> {
        // A timeout too large to represent as a deadline means none.
        self.read_until(Instant::now().checked_add(timeout))
            .map_err(|e| e.unwrap_or_else(|| read_timed_out(self.name(), timeout)))
    }

    /// `Err(None)` when the deadline passed first.
    fn read_until(&self, deadline: Option<Instant>) -> std::result::Result<Vec<u8>, Option<Error>> {
        match &self.source {
            Source::Read { name, looked, .. } => match looked.info.queue {
                None => looked.snapshot(name, deadline)?.ok_or(None),
                Some(shape) => {
                    let control = looked.queue_control(name)?;
                    let Some(index) = format::front_slot(control.bytes(), shape.capacity) else {
                        return Ok(Vec::new());
                    };
                    let layout = &looked.info.layout;
                    // In bounds of the region the header was validated for: `index < capacity`.
                    let start = layout.payload_offset
                        + QueueShape::slots_offset(layout.payload_align)
                        + index * shape.element_size;
                    Ok(looked.bytes_at(name, start, shape.element_size)?)
                }
            },
            Source::Mapped { region, .. } => match region.info().queue {
                None => {
                    let size = region.info().layout.payload_size;
                    let mut out = vec![0u8; size];
                    // SAFETY: `out` has `size` bytes, the payload size of this region.
                    unsafe { region.snapshot_into(out.as_mut_ptr(), size, deadline) }
                        .map_err(|TimedOut| None)?;
                    Ok(out)
                }
                Some(_) => Ok(front_copy(region).unwrap_or_default()),
            },
        }
    }

    /// The last published version, counted as [`Shm::version`](crate::Shm::version) counts
    /// them: 0 for a value never written since it was created, then one more per commit (0 for
    /// a queue). If the object can no longer be read (another process shrank it), the version
    /// it had when it was opened.
    pub fn version(&self) -> u64 {
        match &self.source {
            Source::Read { name, looked, .. } => crate::snapshot::version_from_word(
                looked
                    .version_now(name)
                    .unwrap_or_else(|_| looked.header.header().version.load(Relaxed)),
            ),
            Source::Mapped { region, .. } => region.published_version(),
        }
    }

    /// Waits until a version other than `since` (a [`version`](Self::version) or a previous
    /// result) is published and returns it, at most `timeout` (forever if `None`); as
    /// [`Shm::wait_for_change`](crate::Shm::wait_for_change). Read-only: a System V segment wakes
    /// it at once in `notify_readers` regions, and
    /// otherwise it re-checks every 10 ms.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when the timeout passes first; [`Error::Corrupt`] when the object can
    /// no longer be read (another process shrank it); [`Error::Removed`] when a migration
    /// replaced the region under its name (README, "Changing a region's type": open the name
    /// again to see its successor) and, for a System V segment, when it is removed (or its key
    /// given to another segment) while this waits. (A POSIX object or a file that is removed
    /// without a migration is followed through its descriptor, as before.)
    pub fn wait_for_change(&self, since: u64, timeout: Option<Duration>) -> Result<u64> {
        match &self.source {
            Source::Read {
                name, path, looked, ..
            } => {
                let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
                looked
                    .wait_for_change(name, path, since, deadline)?
                    .ok_or_else(|| Error::Timeout {
                        name: name.clone(),
                        waiting_for: "a new version",
                        after: timeout.unwrap_or_default(),
                    })
            }
            Source::Mapped { region, .. } => wait_for_change(region, since, timeout),
        }
    }
}

/// The paths of a descriptor's field table, in its order.
fn paths_of(descriptor: &Descriptor) -> Vec<String> {
    descriptor.fields.iter().map(|f| f.path.clone()).collect()
}

/// Looks at a POSIX object or a file at `path` (see [`look`]): the source and the whole
/// descriptor.
fn read_source(location: &Location, path: &Path, wait: Duration) -> Result<(Source, Vec<u8>)> {
    let name = location.to_string();
    let looked = look::look(&name, path, wait)?;
    let descriptor = looked.descriptor(&name, MAX_DESCRIPTOR_LEN)?;
    let source = Source::Read {
        location: location.clone(),
        name,
        path: path.to_path_buf(),
        looked,
    };
    Ok((source, descriptor))
}

/// Every field of a header (mapped, or a private copy).
fn header_fields_of(h: &Header) -> HeaderFields {
    let mut boot_id = [0u8; 16];
    for (b, a) in boot_id.iter_mut().zip(&h.boot_id) {
        *b = a.load(Relaxed);
    }
    HeaderFields {
        format_version: h.format_version.load(Relaxed),
        header_size: h.header_size.load(Relaxed),
        state: h.state.load_acquire(),
        flags: h.flags.load(Relaxed),
        fingerprint: h.fingerprint.load(Relaxed),
        payload_offset: h.payload_offset.load(Relaxed),
        payload_size: h.payload_size.load(Relaxed),
        payload_align: h.payload_align.load(Relaxed),
        region_size: h.region_size.load(Relaxed),
        descriptor_offset: h.descriptor_offset.load(Relaxed),
        descriptor_len: h.descriptor_len.load(Relaxed),
        creator_pid: h.creator_pid.load(Relaxed),
        mutex_size: h.mutex_size.load(Relaxed),
        boot_id,
        kind: h.kind.load(Relaxed),
        queue_mode: h.queue_mode.load(Relaxed),
        queue_capacity: h.queue_capacity.load(Relaxed),
        queue_element_size: h.queue_element_size.load(Relaxed),
        version: h.version.load_acquire(),
        waiters: h.waiters.load(Relaxed),
        poisoned: h.poisoned.load(Relaxed),
        commit_in_progress: h.commit_in_progress.load(Relaxed),
        read_requests: h.read_requests.load(Relaxed),
        reads_served: h.reads_served.load(Relaxed),
        versions_offset: h.versions_offset.load(Relaxed),
        versions_len: h.versions_len.load(Relaxed),
    }
}

impl fmt::Debug for Inspector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inspector")
            .field("name", &self.name())
            .field("type_name", &self.stored.type_name)
            .field("queue", &self.is_queue())
            .finish()
    }
}

/// A byte channel's ([`ShmChannel`](crate::ShmChannel)'s) geometry and state, as
/// [`Inspector::channel`] read them: what `shmstore inspect` shows of a channel instead of an
/// element (its ring holds records, not values of its unit type). How many messages it holds
/// is not counted: that would take walking the ring.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChannelInfo {
    /// Its mode.
    pub mode: crate::QueueMode,
    /// The ring's size in bytes.
    pub capacity: usize,
    /// The largest message in bytes, as its settings line says (a forged one as stored:
    /// [`ShmChannel::open`](crate::ShmChannel::open) refuses a channel whose largest message
    /// its ring cannot carry).
    pub max_message: u64,
    /// The ring bytes that hold messages, record headers and padding included (clamped to
    /// the capacity).
    pub used_bytes: usize,
    /// Whether it is closed.
    pub closed: bool,
    /// SPSC: the pid recorded as holding the producer's role; `None` if none is (always in
    /// MPMC mode) or it was recorded in another PID namespace. A holder that died without
    /// giving the role back is still recorded.
    pub producer_pid: Option<u32>,
    /// SPSC: the pid recorded as holding the consumer's role, as for `producer_pid`.
    pub consumer_pid: Option<u32>,
}

/// A channel's state from its control block and the first 16 bytes of its settings line.
fn channel_info(shape: QueueShape, control: &format::Control, settings: &[u8]) -> ChannelInfo {
    let capacity = format::ring_for(shape.capacity).unwrap_or(0);
    let (used_bytes, closed) = control.len_and_closed(capacity);
    let max_message = settings
        .get(..8)
        .and_then(|word| word.try_into().ok())
        .map_or(0, u64::from_ne_bytes);
    let holder = |line: &format::Line| {
        let pid = format::Owner::from_word(line.owner.load_acquire()).pid_here();
        (pid != 0).then_some(pid)
    };
    ChannelInfo {
        mode: crate::QueueMode::from_code(shape.mode),
        capacity,
        max_message,
        used_bytes,
        closed,
        producer_pid: holder(&control.tail),
        consumer_pid: holder(&control.head),
    }
}

/// [`peek`](format::peek) through a region known to be a queue; `None` for a value.
pub(crate) fn peek_region(region: &Region, type_name: &str) -> Option<(usize, bool)> {
    let shape = region.info().queue?;
    let capacity = format::counted_capacity(type_name, shape.capacity);
    format::peek(region.payload()?, capacity)
}

/// A copy of the bytes of a queue's oldest element, taken with atomic loads and without the
/// queue's protocol (a consumer may be taking it meanwhile: for display only). `None` if the
/// queue is empty or the region is a value.
pub(crate) fn front_copy(region: &Region) -> Option<Vec<u8>> {
    let shape = region.info().queue?;
    let index = format::front_slot(region.payload()?, shape.capacity)?;
    let start = format::QueueShape::slots_offset(region.info().layout.payload_align)
        + index * shape.element_size;
    let slot = region.payload()?.range(start, shape.element_size)?;
    // Not a consistent copy: without the lock, a consumer may pop this element and a producer
    // write the next one into the slot while we load (with a plain, non-atomic copy), so the
    // bytes may mix two elements. Such a race across processes is outside what Rust's memory
    // model describes; what these atomic byte loads guarantee is only that each of our loads
    // reads some byte that was in the slot. Hence "for display only".
    Some(slot.load_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::HEADER_SIZE;
    use crate::{QueueMode, Shm, ShmQueue};

    #[derive(crate::ShmType, Clone, Copy)]
    #[repr(C)]
    struct Wheel {
        pressure: f32,
        rpm: i32,
    }

    #[derive(crate::ShmType, Clone, Copy)]
    #[repr(C)]
    struct Robot {
        id: u64,
        offset: i16,
        tilt: i8,
        flags: u8,
        heading: f32,
        big: i128,
        wheels: [Wheel; 3],
        grid: [[u16; 2]; 3],
        spare: [u8; 12],
    }

    fn rendered(view: &Inspector, max: usize) -> Vec<String> {
        let bytes = view.read();
        view.fields()
            .iter()
            .map(|f| format!("{} = {}", f.path, f.render(&bytes, max)))
            .collect()
    }

    #[test]
    fn decodes_every_kind_of_field_from_the_stored_descriptor() {
        let name = format!("shmstore-test-inspect-{}", std::process::id());
        let robot = Robot {
            id: u64::MAX,
            offset: -300,
            tilt: -1,
            flags: 0x81,
            heading: 1.5,
            big: i128::MIN,
            wheels: [
                Wheel {
                    pressure: 2.25,
                    rpm: -10,
                },
                Wheel {
                    pressure: 2.5,
                    rpm: 20,
                },
                Wheel {
                    pressure: 2.75,
                    rpm: -30,
                },
            ],
            grid: [[1, 2], [3, 4], [5, 6]],
            spare: [0; 12],
        };
        let _shm = Shm::<Robot>::options()
            .unlink_on_drop(true)
            .create(&name, robot)
            .unwrap();
        let view = Inspector::open(&name).unwrap();
        assert_eq!(view.type_name(), "Robot");
        assert!(!view.is_queue());
        assert_eq!(
            rendered(&view, 8),
            [
                format!("id = {}", u64::MAX),
                "offset = -300".to_string(),
                "tilt = -1".to_string(),
                "flags = 129".to_string(),
                "heading = 1.5".to_string(),
                format!("big = {}", i128::MIN),
                "wheels[].pressure = [2.25, 2.5, 2.75]".to_string(),
                "wheels[].rpm = [-10, 20, -30]".to_string(),
                "grid = [1, 2, 3, 4, 5, 6]".to_string(),
                "spare = [0, 0, 0, 0, 0, 0, 0, 0, … (4 more)]".to_string(),
            ]
        );
        // Long arrays are cut short, saying how much is left out.
        assert_eq!(rendered(&view, 2)[8], "grid = [1, 2, … (4 more)]");
        assert_eq!(view.header_fields().payload_size, 80);
        assert_eq!(view.info().type_name, "Robot");
    }

    #[test]
    fn identical_means_that_open_accepts_the_type() {
        #[derive(crate::ShmType, Clone, Copy)]
        #[repr(C)]
        struct Pair {
            a: u32,
            b: u32,
        }
        mod packed {
            #[derive(crate::ShmType, Clone, Copy)]
            #[repr(C, packed)]
            pub(super) struct Pair {
                a: u32,
                b: u32,
            }
        }
        let name = format!("shmstore-test-inspect-compat-{}", std::process::id());
        let _shm = Shm::<Pair>::options()
            .unlink_on_drop(true)
            .create(&name, Pair { a: 1, b: 2 })
            .unwrap();
        let view = Inspector::open(&name).unwrap();
        assert_eq!(
            view.compatibility_with::<Pair>().overall,
            Overall::Identical
        );
        // The same descriptor, another alignment: not identical, so `open` takes it through
        // a compatible layout rather than the direct path.
        assert_eq!(view.descriptor(), TypeDescriptor::of::<packed::Pair>());
        assert!(Shm::<packed::Pair>::open(&name).unwrap().is_projected());
        let verdict = view.compatibility_with::<packed::Pair>();
        assert_eq!(verdict.overall, Overall::Compatible);
        assert!(verdict
            .fields
            .iter()
            .all(|f| f.verdict == FieldVerdict::Same));
    }

    #[derive(crate::ShmType, Clone, Copy)]
    #[repr(C)]
    #[shm(name = "Config")]
    struct ConfigV1 {
        workers: u32,
    }

    #[derive(crate::ShmType, Clone, Copy)]
    #[repr(C)]
    #[shm(name = "Config")]
    struct ConfigV2 {
        workers: u32,
        timeout_ms: u32,
    }

    fn known(layout: &crate::layout::TypeLayout) -> format::KnownVersion {
        let descriptor = Descriptor::of(layout);
        format::KnownVersion {
            fingerprint: layout.fingerprint(),
            format_version: descriptor.format_version(),
            descriptor: descriptor.encode(),
        }
    }

    /// A region that a migration made: its table lists both versions, the held layout is the
    /// newest, and each field says which versions know it.
    #[test]
    fn shows_every_version_of_a_migrated_region_and_who_knows_each_field() {
        let table = format::versions::encode(&[known(&ConfigV1::LAYOUT), known(&ConfigV2::LAYOUT)]);
        let region = crate::region::scratch_with_versions("versions", &ConfigV2::LAYOUT, &table);
        assert_eq!(region.versions_copy(), table);
        let (offset, len) = region.info().layout.versions().unwrap();
        assert!(offset >= HEADER_SIZE + region.info().layout.descriptor_len && offset % 8 == 0);
        assert!(offset + len <= region.info().layout.payload_offset);

        let view = Inspector::open(region.name()).unwrap();
        let versions = view.versions().unwrap();
        let summary: Vec<(&str, &[String], bool)> = versions
            .iter()
            .map(|v| (v.type_name.as_str(), v.fields.as_slice(), v.is_stored))
            .collect();
        assert_eq!(
            summary,
            [
                ("Config", &["workers".to_string()][..], false),
                (
                    "Config",
                    &["workers".to_string(), "timeout_ms".to_string()][..],
                    true
                ),
            ]
        );
        assert_eq!(versions[0].fingerprint, ConfigV1::LAYOUT.fingerprint());
        assert_eq!(versions[1].fingerprint, ConfigV2::LAYOUT.fingerprint());
        assert_eq!(view.fields_known_by(&versions), [vec![0, 1], vec![1]]);
        // The held layout is unchanged by the table: the value reads as usual.
        assert_eq!(rendered(&view, 8), ["workers = 0", "timeout_ms = 0"]);
        assert_eq!(
            view.header_fields().payload_offset,
            region.info().layout.payload_offset as u64
        );
    }

    /// A table that does not decode leaves everything else readable and says why.
    #[test]
    fn a_forged_table_is_unreadable_and_the_rest_still_shows() {
        let mut garbage_descriptor = known(&ConfigV1::LAYOUT);
        garbage_descriptor.descriptor.truncate(3);
        let cases: [(&str, Vec<u8>, &str); 3] = [
            ("bad-count", vec![9, 0, 0, 0, 1, 2, 3], "claims 9 entries"),
            (
                "bad-descriptor",
                format::versions::encode(&[garbage_descriptor]),
                "version #1: its descriptor is truncated",
            ),
            (
                "trailing",
                {
                    let mut t = format::versions::encode(&[known(&ConfigV2::LAYOUT)]);
                    t.extend_from_slice(&[0; 5]);
                    t
                },
                "5 unexpected bytes",
            ),
        ];
        for (test, table, why) in cases {
            let region = crate::region::scratch_with_versions(test, &ConfigV2::LAYOUT, &table);
            let view = Inspector::open(region.name()).unwrap();
            match view.versions() {
                Err(Error::Corrupt { reason, .. }) => {
                    assert!(
                        reason.contains("versions table is unreadable"),
                        "{test}: {reason}"
                    );
                    assert!(reason.contains(why), "{test}: {reason}");
                }
                other => panic!("{test}: {other:?}"),
            }
            assert_eq!(view.type_name(), "Config");
            assert_eq!(rendered(&view, 8), ["workers = 0", "timeout_ms = 0"]);
        }
    }

    /// The header's table words must point right after the descriptor, or both be 0.
    #[test]
    fn a_misplaced_versions_table_is_corrupt_on_open() {
        let table = format::versions::encode(&[known(&ConfigV2::LAYOUT)]);
        let region = crate::region::scratch_with_versions("misplaced", &ConfigV2::LAYOUT, &table);
        let header = region.header();
        let (offset, len) = (
            header.versions_offset.load(Relaxed),
            header.versions_len.load(Relaxed),
        );
        let forgeries = [
            (offset + 8, len),
            (offset, 0),
            (0, len),
            (offset, len + 64),
            (offset, u64::MAX),
            (u64::MAX - 4, len),
        ];
        for (bad_offset, bad_len) in forgeries {
            header.versions_offset.store(bad_offset, Relaxed);
            header.versions_len.store(bad_len, Relaxed);
            for opened in [
                Inspector::open(region.name()).map(drop),
                Shm::<ConfigV2>::open(region.name()).map(drop),
            ] {
                match opened {
                    Err(Error::Corrupt { reason, .. }) => assert!(
                        reason.contains("versions table") || reason.contains("disagree"),
                        "({bad_offset}, {bad_len}): {reason}"
                    ),
                    other => panic!("({bad_offset}, {bad_len}): {other:?}"),
                }
            }
        }
        header.versions_offset.store(offset, Relaxed);
        header.versions_len.store(len, Relaxed);
        assert!(Inspector::open(region.name()).is_ok());
        assert!(Shm::<ConfigV2>::open(region.name()).is_ok());
    }

    #[test]
    fn shows_a_queue_and_its_oldest_element() {
        let name = format!("shmstore-test-inspect-queue-{}", std::process::id());
        let queue = ShmQueue::<[u32; 3], 4>::options()
            .queue_mode(QueueMode::Spsc)
            .unlink_on_drop(true)
            .create(&name)
            .unwrap();
        let view = Inspector::open(&name).unwrap();
        assert!(view.is_queue());
        assert!(
            view.read().is_empty(),
            "an empty queue has no element to show"
        );
        queue.push([7, 8, 9]).unwrap();
        queue.push([1, 1, 1]).unwrap();
        let bytes = view.read();
        assert_eq!(view.fields()[0].render(&bytes, 8), "[7, 8, 9]");
        let info = view.info();
        let q = info.queue.unwrap();
        assert_eq!(
            (q.mode, q.capacity, q.len, q.closed),
            (QueueMode::Spsc, 4, 2, false)
        );
        let header = view.header_fields();
        assert_eq!(
            (header.kind, header.queue_mode, header.queue_capacity),
            (2, 1, 4)
        );
    }
}
