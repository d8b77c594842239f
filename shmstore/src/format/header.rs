//! The header at offset 0, the validated view of mapped bytes ([`SharedBytes`], [`SharedView`])
//! and where the payload copies go ([`RegionLayout`]). `FORMAT.md` documents the same thing
//! byte for byte; the tests at the bottom of this file keep the two in step.
//!
//! Every header field is an atomic of the field's width, so a `&Header` over memory that other
//! processes write concurrently is sound; the fields fixed at creation are read once, validated,
//! and kept in a [`HeaderInfo`].

use std::marker::PhantomData;
use std::mem::{size_of, size_of_val};
use std::ptr::NonNull;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicU8};

use crate::sys::mutex::{RobustMutex, PTHREAD_MUTEX_SIZE};
use crate::sys::object::Mapping;

use super::queue::{QueueShape, QUEUE_MPMC, QUEUE_SPSC};

/// Bytes 0..8 of every region.
pub(crate) const MAGIC: [u8; 8] = *b"SHMSTORE";
/// The format this build writes and reads.
pub(crate) const FORMAT_VERSION: u32 = 2;
/// The oldest format version this build reads: version 1 is version 2 without a kinds table,
/// and every type without value kinds is still written as version 1 (`FORMAT.md`).
pub(crate) const OLDEST_FORMAT_VERSION: u32 = 1;
/// Size of [`Header`]; the descriptor starts here.
pub(crate) const HEADER_SIZE: usize = 256;
/// Payload copies start on a multiple of `max(PAYLOAD_MIN_ALIGN, align_of::<T>())`: a cache
/// line, so that the copies never share a line with the header or with each other.
pub(crate) const PAYLOAD_MIN_ALIGN: usize = 64;
/// The largest payload alignment a mapping (page-aligned) can honour.
pub(crate) const MAX_PAYLOAD_ALIGN: usize = 4096;
/// Refuse descriptors larger than this (a sanity bound against corrupt headers).
pub(crate) const MAX_DESCRIPTOR_LEN: usize = 16 << 20;
/// The versions table starts on a multiple of this after the descriptor, so that its `u64`
/// fingerprints are aligned for readers that map it.
pub(crate) const VERSIONS_ALIGN: usize = 8;

/// The byte of the object whose open-file-description write lock (the *initialiser lock*) a
/// process holds while it creates, repairs or resets a region behind a descriptor after a
/// reboot; openers probe it with a read lock. Bytes 0 and 1 are a queue's SPSC roles. Locks may
/// lie beyond the end of the object, so even an empty object has this byte.
pub(crate) const INITIALISER_BYTE: u64 = 2;

/// `state`: the creator is still writing the header or running `init`.
pub(crate) const STATE_INITIALISING: u32 = 1;
/// `state`: the region is complete; published with a release store.
pub(crate) const STATE_READY: u32 = 2;

/// `lifecycle`: the object its name refers to (as far as its lock holders know).
pub(crate) const LIFECYCLE_CURRENT: u32 = 0;
/// `lifecycle`: the lock holder is replacing the object under its name by a migrated region;
/// if it died meanwhile, whether the name already refers to the new object tells.
pub(crate) const LIFECYCLE_MIGRATING: u32 = 1;
/// `lifecycle`: the object was replaced under its name by a migrated region, complete and
/// holding every committed write: handles reopen the name and go on there.
pub(crate) const LIFECYCLE_MOVED: u32 = 2;

/// `flags`: one payload copy, seqlock readers, poisoning (DESIGN §6 `in_place`).
pub(crate) const FLAG_IN_PLACE: u32 = 1 << 0;
/// `flags`: every publish wakes sleepers, so read-only handles need not poll.
pub(crate) const FLAG_NOTIFY_READERS: u32 = 1 << 1;
const KNOWN_FLAGS: u32 = FLAG_IN_PLACE | FLAG_NOTIFY_READERS;

/// `kind`: a single value of one type ([`Shm`](crate::Shm)).
pub(crate) const KIND_VALUE: u32 = 1;
/// `kind`: a bounded queue of elements of one type ([`ShmQueue`](crate::ShmQueue)).
pub(crate) const KIND_QUEUE: u32 = 2;

/// The region header, at offset 0 of every region. Native endianness.
#[repr(C)]
pub(crate) struct Header {
    // Line 0 and 1: fixed at creation.
    pub(crate) magic: AtomicU64,
    pub(crate) format_version: AtomicU32,
    pub(crate) header_size: AtomicU32,
    pub(crate) state: AtomicU32,
    pub(crate) flags: AtomicU32,
    pub(crate) fingerprint: AtomicU64,
    pub(crate) payload_offset: AtomicU64,
    pub(crate) payload_size: AtomicU64,
    pub(crate) payload_align: AtomicU64,
    pub(crate) region_size: AtomicU64,
    pub(crate) descriptor_offset: AtomicU64,
    pub(crate) descriptor_len: AtomicU64,
    pub(crate) creator_pid: AtomicU32,
    pub(crate) mutex_size: AtomicU32,
    pub(crate) boot_id: [AtomicU8; 16],
    pub(crate) kind: AtomicU32,
    // For a queue: its mode, capacity and element size. Zero for a value.
    pub(crate) queue_mode: AtomicU32,
    pub(crate) queue_capacity: AtomicU64,
    pub(crate) queue_element_size: AtomicU64,
    // Line 2: what readers and writers touch on every operation.
    pub(crate) version: AtomicU64,
    pub(crate) waiters: AtomicU32,
    pub(crate) poisoned: AtomicU32,
    pub(crate) commit_in_progress: AtomicU32,
    pub(crate) read_requests: AtomicU32,
    pub(crate) reads_served: AtomicU32,
    /// Where the region stands in a migration (`LIFECYCLE_*`): `LIFECYCLE_CURRENT` (0) for
    /// the object its name refers to, `LIFECYCLE_MIGRATING` while the lock holder replaces it
    /// under its name by a region of a wider type, `LIFECYCLE_MOVED` once it did. Written by
    /// the lock holder (or the next locker after it died), and by a writable handle that finds
    /// `LIFECYCLE_MIGRATING` with the name taken by another object (a compare-and-swap to
    /// `LIFECYCLE_MOVED`, which the migrator stores next anyway).
    pub(crate) lifecycle: AtomicU32,
    /// While an abandoned object is repaired by swapping a new region in under its name: the
    /// repairer's claim (see `region::fd::replace_abandoned`), a pid and its PID namespace.
    /// Zero otherwise.
    pub(crate) repair_claim: AtomicU64,
    /// The `CLOCK_MONOTONIC` time (ns) before which no writer holds the value for readers
    /// asking for help again (see `snapshot`, "Never starving"): one budget for every writer
    /// of the region. Read and written only by the lock holder.
    pub(crate) help_resumes_at: AtomicU64,
    /// Where the versions table lies (`FORMAT.md`, "Versions table"): the byte offset and
    /// length of the list of every type that shaped the region through a migration; both 0
    /// for a region never migrated (its only version is the stored type). Fixed at creation.
    pub(crate) versions_offset: AtomicU64,
    pub(crate) versions_len: AtomicU64,
    // Line 3: the lock, away from the version that readers poll.
    pub(crate) mutex: RobustMutex,
}

const _: () = assert!(std::mem::size_of::<Header>() == HEADER_SIZE);
const _: () = assert!(std::mem::align_of::<Header>() <= PAYLOAD_MIN_ALIGN);

/// Acquire loads that are sound through a read-only mapping.
///
/// std's rules for "Atomic accesses to read-only memory" (`std::sync::atomic`) allow only
/// `Relaxed` loads no wider than a register there; any other atomic access, an `Acquire` or
/// `SeqCst` load included, may be compiled to an instruction that writes (and so faults on a
/// page mapped without write permission). Read-only handles ([`ShmReader`], `list` on a
/// System V segment, `inspect`) map regions `PROT_READ`, so every load that can run through
/// such a mapping is this: a `Relaxed` load followed by `fence(Acquire)`, which orders
/// everything after it exactly as an acquire load would (a fence after a load that reads a
/// release store synchronises with that store). On x86-64 both compile to a plain `mov`.
///
/// [`ShmReader`]: crate::ShmReader
pub(crate) trait LoadAcquire {
    /// The integer the atomic holds.
    type Value;
    /// The value, with acquire ordering, through a read-only mapping too.
    fn load_acquire(&self) -> Self::Value;
}

macro_rules! load_acquire {
    ($($atomic:ty => $value:ty),*) => {$(
        impl LoadAcquire for $atomic {
            type Value = $value;
            #[inline(always)]
            fn load_acquire(&self) -> $value {
                let value = self.load(Relaxed);
                fence(Acquire);
                value
            }
        }
    )*};
}
load_acquire!(AtomicU8 => u8, AtomicU32 => u32, AtomicU64 => u64);

// A register holds every atomic loaded through a read-only mapping (`u64` at most), which is
// what makes a relaxed load of it a plain load: not so on 32-bit targets.
const _: () = assert!(
    size_of::<usize>() >= size_of::<u64>(),
    "read-only mappings need 64-bit atomic loads to be plain loads"
);

/// A type that may be viewed in place over bytes that other processes share and write: the
/// header and a queue's control block. [`SharedBytes::view`] is the only way to get one.
///
/// # Safety
///
/// An implementor is `repr(C)`, has no padding whose contents matter, and is made only of
/// integer atomics and `UnsafeCell`s of bytes (the pthread mutex), so that
/// - every bit pattern is a valid value, whatever a peer wrote;
/// - a shared reference permits the concurrent writes of other processes and threads
///   (interior mutability), and every access through it is atomic or goes through pthread.
pub(crate) unsafe trait SharedView: Sized {}

// SAFETY: `Header` is `repr(C)`; its fields are integer atomics (any bits are valid, every
// access atomic) and `RobustMutex`, an `UnsafeCell<[u8; N]>` that only pthread and atomic
// futex operations touch. Its size is exactly HEADER_SIZE with no padding (asserted above and
// in `header_offsets_match_format_md`).
unsafe impl SharedView for Header {}

/// Bytes shared with other processes, readable (at least) and alive for `'a`: a mapping, or
/// a private copy held in atomics. The unsafe core of the crate's typed access to shared
/// memory: the one place that turns such bytes into a `&Header` or a `&Control`, checking
/// their length and alignment, so no other module casts a mapped pointer.
#[derive(Clone, Copy)]
pub(crate) struct SharedBytes<'a> {
    ptr: NonNull<u8>,
    len: usize,
    _borrow: PhantomData<&'a [AtomicU8]>,
}

impl<'a> SharedBytes<'a> {
    /// The `len` bytes from `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr..ptr + len` is readable (mapped, or owned by a borrow) for all of `'a`; nothing
    /// in this process writes it other than atomically while `'a` lasts.
    #[inline]
    unsafe fn new(ptr: NonNull<u8>, len: usize) -> SharedBytes<'a> {
        SharedBytes {
            ptr,
            len,
            _borrow: PhantomData,
        }
    }

    /// The whole of a mapping, for as long as it is borrowed.
    #[inline]
    pub(crate) fn of_mapping(map: &'a Mapping) -> SharedBytes<'a> {
        let Some(ptr) = NonNull::new(map.ptr()) else {
            return SharedBytes::empty();
        };
        // SAFETY: `Mapping`'s invariant: `ptr..ptr + len` stays mapped while the mapping
        // lives, and the borrow `'a` keeps it alive; this process writes mapped shared memory
        // only through atomics, the pthread mutex, or under the region's lock (the payload,
        // which no view covers).
        unsafe { SharedBytes::new(ptr, map.len()) }
    }

    /// A private copy held in atomic words (a header or control block read with `pread`).
    pub(crate) fn of_words(words: &'a [AtomicU64]) -> SharedBytes<'a> {
        let len = size_of_val(words);
        let ptr = NonNull::from(words).cast::<u8>();
        // SAFETY: the slice is borrowed for `'a`, so its `len` bytes stay alive and readable;
        // they are atomics, so any write to them while borrowed is atomic.
        unsafe { SharedBytes::new(ptr, len) }
    }

    fn empty() -> SharedBytes<'a> {
        // SAFETY: zero bytes from a dangling, well-aligned pointer: nothing to read.
        unsafe { SharedBytes::new(NonNull::dangling(), 0) }
    }

    /// The `len` bytes from `offset`; `None` unless they lie within these.
    pub(crate) fn range(self, offset: usize, len: usize) -> Option<SharedBytes<'a>> {
        if offset.checked_add(len)? > self.len {
            return None;
        }
        // SAFETY: `offset ≤ self.len`, so the result is within (or one past) the same range.
        let ptr = unsafe { self.ptr.add(offset) };
        // SAFETY: `offset..offset + len` lies within these bytes (checked above), which the
        // contract of `self` makes readable and only atomically written for `'a`.
        Some(unsafe { SharedBytes::new(ptr, len) })
    }

    /// The first address (for atomic byte copies, which must stay within these bytes).
    pub(crate) fn as_ptr(self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// A copy of the bytes, loaded one by one with relaxed atomic loads (sound through a
    /// read-only mapping: see [`LoadAcquire`]). Not a consistent copy if someone writes them
    /// meanwhile: each byte is one that was there.
    pub(crate) fn load_bytes(self) -> Vec<u8> {
        (0..self.len)
            .map(|i| {
                // SAFETY: `i < len`: within these bytes.
                let at = unsafe { self.ptr.add(i) };
                // SAFETY: readable for `'a` (contract of `SharedBytes`); a byte atomic needs no
                // alignment; this process writes these bytes only atomically (same contract),
                // so the atomic view races with no non-atomic access of ours.
                unsafe { AtomicU8::from_ptr(at.as_ptr()) }.load(Relaxed)
            })
            .collect()
    }

    /// The bytes at the start as a `T`: `None` if they are too few or misaligned for it.
    #[inline]
    pub(crate) fn view<T: SharedView>(self) -> Option<&'a T> {
        if self.len < size_of::<T>() || !self.ptr.cast::<T>().is_aligned() {
            return None;
        }
        // SAFETY:
        // - in bounds and readable for `'a`: `size_of::<T>() ≤ len` (checked) and the contract
        //   of `SharedBytes`;
        // - aligned for `T` (checked);
        // - a valid `T`: any bits are, by `SharedView`;
        // - aliasing: `T` is all interior mutability and this process writes these bytes only
        //   atomically (contract of `SharedBytes`), so a shared reference next to other
        //   processes' and threads' writes is sound.
        Some(unsafe { self.ptr.cast::<T>().as_ref() })
    }

    /// The header at the start: `None` if fewer than [`HEADER_SIZE`] bytes.
    ///
    /// `#[inline]`, as are `of_mapping`, `new`, `view` and `Mapping::ptr`: one lock and unlock
    /// asks a region for its header about six times, and as out-of-line calls (they were
    /// compiled so) the checks cost ~8 ns of a ~27 ns lock+write+unlock; inlined, they fold
    /// into a few loads and compares (benches/lock.rs).
    #[inline]
    pub(crate) fn header(self) -> Option<&'a Header> {
        self.view::<Header>()
    }

    /// The header at `base`, without building and checking a `SharedBytes` (null, length,
    /// alignment): for a region's lock and unlock, which ask for it about six times each. The
    /// region checked its mapping once, when it was assembled; the per-call checks were ~40
    /// of the ~190 instructions shmstore added to a raw lock+unlock (callgrind on
    /// benches/lock.rs).
    ///
    /// # Safety
    ///
    /// `base` is the start of bytes that satisfy the contract of `SharedBytes` for `'a`
    /// (readable for all of `'a`, written by this process only atomically), and
    /// [`header`](Self::header) returns `Some` for them: at least [`HEADER_SIZE`] long and
    /// aligned for a `Header`.
    #[inline]
    pub(crate) unsafe fn header_at(base: NonNull<u8>) -> &'a Header {
        // SAFETY: as in `view`: the length and alignment checks it makes hold, and the bytes
        // are readable and only atomically written for `'a` (the caller's contract); any bits
        // are a valid `Header` and its fields are all interior mutability (`SharedView`).
        unsafe { base.cast::<Header>().as_ref() }
    }
}

/// The header fields fixed at creation, read once and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderInfo {
    /// 1, or 2 when the descriptor has a kinds table.
    pub(crate) format_version: u32,
    pub(crate) flags: u32,
    /// `None` for a single value.
    pub(crate) queue: Option<QueueShape>,
    pub(crate) fingerprint: u64,
    pub(crate) layout: RegionLayout,
    pub(crate) creator_pid: u32,
    pub(crate) boot_id: [u8; 16],
}

impl HeaderInfo {
    pub(crate) fn in_place(&self) -> bool {
        self.flags & FLAG_IN_PLACE != 0
    }

    /// The size of the stored type: the value's, or one queue element's.
    pub(crate) fn type_size(&self) -> usize {
        self.queue
            .map_or(self.layout.payload_size, |queue| queue.element_size)
    }
}

/// Where everything goes in a region of a given type and mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RegionLayout {
    pub(crate) descriptor_len: usize,
    /// Where the versions table starts (right after the descriptor, aligned to
    /// [`VERSIONS_ALIGN`]) and its length: both 0 for a region without one.
    pub(crate) versions_offset: usize,
    pub(crate) versions_len: usize,
    pub(crate) payload_size: usize,
    pub(crate) payload_align: usize,
    /// The working copy (the only one in `in_place` mode).
    pub(crate) payload_offset: usize,
    /// The second copy in the default (crash-atomic) mode.
    pub(crate) second_copy_offset: Option<usize>,
    pub(crate) region_size: usize,
}

impl RegionLayout {
    /// Lays out a region with one payload copy (`in_place` values, queues) or two; `None` if
    /// the sizes overflow or the alignment is unusable.
    // The fuzzing entry points and the tests lay out regions without a versions table.
    #[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))]
    pub(crate) fn new(
        descriptor_len: usize,
        payload_size: usize,
        payload_align: usize,
        single_copy: bool,
    ) -> Option<RegionLayout> {
        RegionLayout::with_versions(descriptor_len, 0, payload_size, payload_align, single_copy)
    }

    /// [`new`](Self::new) with a versions table of `versions_len` bytes (0: none) between
    /// the descriptor and the payload (`FORMAT.md`, "Versions table").
    pub(crate) fn with_versions(
        descriptor_len: usize,
        versions_len: usize,
        payload_size: usize,
        payload_align: usize,
        single_copy: bool,
    ) -> Option<RegionLayout> {
        if !payload_align.is_power_of_two() || payload_align > MAX_PAYLOAD_ALIGN {
            return None;
        }
        let align = payload_align.max(PAYLOAD_MIN_ALIGN);
        let descriptor_end = HEADER_SIZE.checked_add(descriptor_len)?;
        let (versions_offset, versions_end) = if versions_len == 0 {
            (0, descriptor_end)
        } else {
            let offset = align_up(descriptor_end, VERSIONS_ALIGN)?;
            (offset, offset.checked_add(versions_len)?)
        };
        let payload_offset = align_up(versions_end, align)?;
        let first_end = payload_offset.checked_add(payload_size)?;
        let (second_copy_offset, region_size) = if single_copy {
            (None, first_end)
        } else {
            let second = align_up(first_end, align)?;
            (Some(second), second.checked_add(payload_size)?)
        };
        Some(RegionLayout {
            descriptor_len,
            versions_offset,
            versions_len,
            payload_size,
            payload_align,
            payload_offset,
            second_copy_offset,
            region_size,
        })
    }

    /// The versions table's offset and length, if the region has one.
    pub(crate) fn versions(&self) -> Option<(usize, usize)> {
        (self.versions_len != 0).then_some((self.versions_offset, self.versions_len))
    }
}

fn align_up(n: usize, align: usize) -> Option<usize> {
    Some(n.checked_add(align - 1)? & !(align - 1))
}

/// Why a header is not usable, before anything about the type is compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderState {
    /// Never written: the object is empty or its header is all zeros.
    Blank,
    /// Written, but the creator has not published it yet.
    Initialising,
    /// Complete and valid.
    Ready(HeaderInfo),
}

impl Header {
    /// Reads the state of a header over an object of `object_size` bytes, validating every
    /// fixed field of a ready region. Errors describe corruption (for
    /// [`Error::Corrupt`](crate::Error::Corrupt)).
    pub(crate) fn check(&self, object_size: u64) -> std::result::Result<HeaderState, String> {
        let magic = self.magic.load(Relaxed);
        if magic == 0 && self.state.load(Relaxed) == 0 {
            return Ok(HeaderState::Blank);
        }
        if magic != u64::from_ne_bytes(MAGIC) {
            return Err(format!(
                "it does not start with the magic bytes \"SHMSTORE\" (found {:02x?})",
                magic.to_ne_bytes()
            ));
        }
        let version = self.format_version.load(Relaxed);
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(format!(
                "it has format version {version}, and this build reads versions \
                 {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION}"
            ));
        }
        let header_size = self.header_size.load(Relaxed);
        if header_size as usize != HEADER_SIZE {
            return Err(format!(
                "its header size is {header_size}, not {HEADER_SIZE}"
            ));
        }
        let mutex_size = self.mutex_size.load(Relaxed);
        if mutex_size as usize != PTHREAD_MUTEX_SIZE {
            return Err(format!(
                "it was made with a {mutex_size}-byte pthread_mutex_t and this process uses \
                 {PTHREAD_MUTEX_SIZE} bytes (another C library or architecture)"
            ));
        }
        match self.state.load_acquire() {
            STATE_INITIALISING => return Ok(HeaderState::Initialising),
            STATE_READY => {}
            other => return Err(format!("its state word is {other}, which means nothing")),
        }
        let flags = self.flags.load(Relaxed);
        if flags & !KNOWN_FLAGS != 0 {
            return Err(format!("it has unknown mode flags {flags:#x}"));
        }
        let field = |a: &AtomicU64| usize::try_from(a.load(Relaxed)).ok();
        let queue = match self.kind.load(Relaxed) {
            KIND_VALUE => None,
            KIND_QUEUE => {
                let mode = self.queue_mode.load(Relaxed);
                let (Some(capacity), Some(element_size)) =
                    (field(&self.queue_capacity), field(&self.queue_element_size))
                else {
                    return Err(
                        "its queue capacity does not fit this process's address space".into(),
                    );
                };
                if flags != 0
                    || !matches!(mode, QUEUE_SPSC | QUEUE_MPMC)
                    || capacity == 0
                    || element_size == 0
                {
                    return Err(format!(
                        "its queue fields make no sense (flags {flags:#x}, mode {mode}, capacity \
                         {capacity}, element size {element_size})"
                    ));
                }
                Some(QueueShape {
                    mode,
                    capacity,
                    element_size,
                })
            }
            other => return Err(format!("it holds an object of unknown kind {other}")),
        };
        let (Some(descriptor_offset), Some(descriptor_len)) =
            (field(&self.descriptor_offset), field(&self.descriptor_len))
        else {
            return Err("its descriptor location does not fit this process's address space".into());
        };
        if descriptor_offset != HEADER_SIZE || descriptor_len > MAX_DESCRIPTOR_LEN {
            return Err(format!(
                "its type descriptor is at {descriptor_offset} with length {descriptor_len}; \
                 expected offset {HEADER_SIZE} and at most {MAX_DESCRIPTOR_LEN} bytes"
            ));
        }
        let (Some(size), Some(align)) = (field(&self.payload_size), field(&self.payload_align))
        else {
            return Err("its payload size does not fit this process's address space".into());
        };
        let versions_len = self.versions_location(descriptor_len)?;
        let single_copy = queue.is_some() || flags & FLAG_IN_PLACE != 0;
        let Some(layout) =
            RegionLayout::with_versions(descriptor_len, versions_len, size, align, single_copy)
        else {
            return Err(format!(
                "its payload size {size} and alignment {align} cannot be laid out"
            ));
        };
        if let Some(queue) = queue {
            if queue.element_size % align != 0 || queue.payload_size(align) != Some(size) {
                return Err(format!(
                    "its queue of {} elements of {} bytes (alignment {align}) does not fill its \
                     {size}-byte payload",
                    queue.capacity, queue.element_size
                ));
            }
        }
        if field(&self.payload_offset) != Some(layout.payload_offset)
            || field(&self.region_size) != Some(layout.region_size)
        {
            return Err(format!(
                "its payload offset ({}) or region size ({}) disagree with its own layout \
                 (expected {} and {})",
                self.payload_offset.load(Relaxed),
                self.region_size.load(Relaxed),
                layout.payload_offset,
                layout.region_size
            ));
        }
        if object_size < layout.region_size as u64 {
            return Err(format!(
                "it is {object_size} bytes long but its header describes {} bytes (truncated)",
                layout.region_size
            ));
        }
        let boot_id = self.boot_id();
        Ok(HeaderState::Ready(HeaderInfo {
            format_version: version,
            flags,
            queue,
            fingerprint: self.fingerprint.load(Relaxed),
            layout,
            creator_pid: self.creator_pid.load(Relaxed),
            boot_id,
        }))
    }

    /// The versions table's length (0: none) after checking that it lies where the layout
    /// puts it: right after the descriptor, aligned to [`VERSIONS_ALIGN`], at most
    /// [`MAX_VERSIONS_LEN`] bytes; or that both words are 0. The layout check that follows
    /// places it before the payload and inside the region.
    ///
    /// [`MAX_VERSIONS_LEN`]: super::versions::MAX_VERSIONS_LEN
    fn versions_location(&self, descriptor_len: usize) -> std::result::Result<usize, String> {
        let offset = self.versions_offset.load(Relaxed);
        let len = self.versions_len.load(Relaxed);
        if offset == 0 && len == 0 {
            return Ok(0);
        }
        let expected = align_up(HEADER_SIZE + descriptor_len, VERSIONS_ALIGN);
        match (usize::try_from(len), expected) {
            (Ok(len), Some(expected))
                if offset == expected as u64
                    && (1..=super::versions::MAX_VERSIONS_LEN).contains(&len) =>
            {
                Ok(len)
            }
            _ => Err(format!(
                "its versions table is at {offset} with length {len}; expected both 0 (no \
                 table), or offset {} (right after the descriptor) and 1 to {} bytes",
                expected.map_or_else(|| "?".to_string(), |e| e.to_string()),
                super::versions::MAX_VERSIONS_LEN
            )),
        }
    }

    /// Writes every fixed field with state "initialising" and a fresh lock. The version and
    /// the flags of the lock protocol start at zero.
    ///
    /// # Safety
    ///
    /// No other process may use the region's lock meanwhile: either the object is unnamed, or
    /// the caller holds its initialiser lock and the state is not "ready".
    pub(crate) unsafe fn initialise(&self, info: &HeaderInfo) -> std::io::Result<()> {
        let layout = &info.layout;
        self.state.store(STATE_INITIALISING, Relaxed);
        self.magic.store(u64::from_ne_bytes(MAGIC), Relaxed);
        self.format_version.store(info.format_version, Relaxed);
        self.header_size.store(HEADER_SIZE as u32, Relaxed);
        self.flags.store(info.flags, Relaxed);
        self.fingerprint.store(info.fingerprint, Relaxed);
        self.payload_offset
            .store(layout.payload_offset as u64, Relaxed);
        self.payload_size.store(layout.payload_size as u64, Relaxed);
        self.payload_align
            .store(layout.payload_align as u64, Relaxed);
        self.region_size.store(layout.region_size as u64, Relaxed);
        self.descriptor_offset.store(HEADER_SIZE as u64, Relaxed);
        self.descriptor_len
            .store(layout.descriptor_len as u64, Relaxed);
        self.versions_offset
            .store(layout.versions_offset as u64, Relaxed);
        self.versions_len.store(layout.versions_len as u64, Relaxed);
        self.creator_pid.store(info.creator_pid, Relaxed);
        self.mutex_size.store(PTHREAD_MUTEX_SIZE as u32, Relaxed);
        for (a, b) in self.boot_id.iter().zip(info.boot_id) {
            a.store(b, Relaxed);
        }
        let (kind, queue) = match info.queue {
            None => (KIND_VALUE, (0, 0, 0)),
            Some(q) => (
                KIND_QUEUE,
                (q.mode, q.capacity as u64, q.element_size as u64),
            ),
        };
        self.kind.store(kind, Relaxed);
        self.queue_mode.store(queue.0, Relaxed);
        self.queue_capacity.store(queue.1, Relaxed);
        self.queue_element_size.store(queue.2, Relaxed);
        self.version.store(0, Relaxed);
        self.waiters.store(0, Relaxed);
        self.poisoned.store(0, Relaxed);
        self.commit_in_progress.store(0, Relaxed);
        self.read_requests.store(0, Relaxed);
        self.reads_served.store(0, Relaxed);
        // A new object is the one its name refers to (an in-place repair takes over only an
        // object that was never ready, so never migrated; this clears a peer's stray word).
        self.lifecycle.store(LIFECYCLE_CURRENT, Relaxed);
        // An in-place repair may find a dead swap repairer's claim here: it goes.
        self.repair_claim.store(0, Relaxed);
        self.help_resumes_at.store(0, Relaxed);
        // SAFETY: the caller guarantees nobody else uses the lock meanwhile.
        unsafe { self.mutex.init() }
    }

    /// The boot id stored at creation or at the last reset after a reboot.
    pub(crate) fn boot_id(&self) -> [u8; 16] {
        let mut boot_id = [0u8; 16];
        for (b, a) in boot_id.iter_mut().zip(&self.boot_id) {
            // Relaxed, then one fence for all: see `LoadAcquire` (read-only mappings).
            *b = a.load(Relaxed);
        }
        fence(Acquire);
        boot_id
    }

    /// Records the boot the region's lock state belongs to, after [`reset_after_reboot`].
    ///
    /// [`reset_after_reboot`]: Header::reset_after_reboot
    pub(crate) fn set_boot_id(&self, boot_id: [u8; 16]) {
        for (a, b) in self.boot_id.iter().zip(boot_id) {
            a.store(b, Release);
        }
    }

    /// Makes the lock and the sleeper counts valid again in a region kept across a reboot: a
    /// lock word or a count of sleepers from before it describes threads that no longer exist.
    /// The version, the poison flag, the commit flag and the payload stay: the next locker
    /// repairs an interrupted write from them as after any dead holder.
    ///
    /// # Safety
    ///
    /// No thread of any process may use the lock during the call.
    pub(crate) unsafe fn reset_after_reboot(&self) -> std::io::Result<()> {
        self.waiters.store(0, Relaxed);
        self.read_requests.store(0, Relaxed);
        self.reads_served.store(0, Relaxed);
        // A time of the previous boot's monotonic clock, which started again at zero.
        self.help_resumes_at.store(0, Relaxed);
        // SAFETY: the caller guarantees nobody uses the lock.
        unsafe { self.mutex.init() }
    }

    /// Publishes the region: everything written before becomes visible to any process that
    /// sees the state "ready" (it loads it with acquire ordering).
    pub(crate) fn publish_ready(&self) {
        self.state.store(STATE_READY, Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    /// The offsets FORMAT.md documents. If this fails, update FORMAT.md with the change.
    #[test]
    fn header_offsets_match_format_md() {
        let expected: &[(&str, usize, usize)] = &[
            ("magic", offset_of!(Header, magic), 0),
            ("format_version", offset_of!(Header, format_version), 8),
            ("header_size", offset_of!(Header, header_size), 12),
            ("state", offset_of!(Header, state), 16),
            ("flags", offset_of!(Header, flags), 20),
            ("fingerprint", offset_of!(Header, fingerprint), 24),
            ("payload_offset", offset_of!(Header, payload_offset), 32),
            ("payload_size", offset_of!(Header, payload_size), 40),
            ("payload_align", offset_of!(Header, payload_align), 48),
            ("region_size", offset_of!(Header, region_size), 56),
            (
                "descriptor_offset",
                offset_of!(Header, descriptor_offset),
                64,
            ),
            ("descriptor_len", offset_of!(Header, descriptor_len), 72),
            ("creator_pid", offset_of!(Header, creator_pid), 80),
            ("mutex_size", offset_of!(Header, mutex_size), 84),
            ("boot_id", offset_of!(Header, boot_id), 88),
            ("kind", offset_of!(Header, kind), 104),
            ("queue_mode", offset_of!(Header, queue_mode), 108),
            ("queue_capacity", offset_of!(Header, queue_capacity), 112),
            (
                "queue_element_size",
                offset_of!(Header, queue_element_size),
                120,
            ),
            ("version", offset_of!(Header, version), 128),
            ("waiters", offset_of!(Header, waiters), 136),
            ("poisoned", offset_of!(Header, poisoned), 140),
            (
                "commit_in_progress",
                offset_of!(Header, commit_in_progress),
                144,
            ),
            ("read_requests", offset_of!(Header, read_requests), 148),
            ("reads_served", offset_of!(Header, reads_served), 152),
            ("repair_claim", offset_of!(Header, repair_claim), 160),
            ("help_resumes_at", offset_of!(Header, help_resumes_at), 168),
            ("versions_offset", offset_of!(Header, versions_offset), 176),
            ("versions_len", offset_of!(Header, versions_len), 184),
            ("mutex", offset_of!(Header, mutex), 192),
        ];
        let doc = include_str!("../../../FORMAT.md");
        for &(name, actual, documented) in expected {
            assert_eq!(actual, documented, "offset of `{name}`");
            let row = format!("| {documented} | ");
            assert!(
                doc.lines()
                    .any(|l| l.starts_with(&row) && l.contains(&format!("`{name}`"))),
                "FORMAT.md has no row `| {documented} | ... `{name}` ...`"
            );
        }
        assert_eq!(std::mem::size_of::<Header>(), 256);
        assert!(doc.contains("`HEADER_SIZE` = 256"));
        assert!(doc.contains(&format!("\"{}\"", std::str::from_utf8(&MAGIC).unwrap())));
    }

    #[test]
    fn layout_aligns_copies_to_cache_lines_or_the_type() {
        let l = RegionLayout::new(10, 100, 8, false).unwrap();
        assert_eq!(l.payload_offset, 320);
        assert_eq!(l.second_copy_offset, Some(448));
        assert_eq!(l.region_size, 548);
        let l = RegionLayout::new(10, 100, 256, true).unwrap();
        assert_eq!(l.payload_offset, 512);
        assert_eq!(l.second_copy_offset, None);
        assert_eq!(l.region_size, 612);
        assert!(RegionLayout::new(0, 8, 3, false).is_none());
        assert!(RegionLayout::new(0, 8, 8192, false).is_none());
        assert!(RegionLayout::new(usize::MAX - 10, 8, 8, false).is_none());
    }

    #[test]
    fn versions_table_sits_between_the_descriptor_and_the_payload() {
        let l = RegionLayout::with_versions(10, 100, 8, 8, false).unwrap();
        // 256 + 10, aligned to 8; the payload after the table, aligned to 64.
        assert_eq!(l.versions(), Some((272, 100)));
        assert_eq!(l.payload_offset, 384);
        assert_eq!(l.region_size, 448 + 8);
        let without = RegionLayout::new(10, 8, 8, false).unwrap();
        assert_eq!(
            RegionLayout::with_versions(10, 0, 8, 8, false),
            Some(without)
        );
        assert_eq!((without.versions_offset, without.versions_len), (0, 0));
        assert_eq!(without.versions(), None);
        assert!(RegionLayout::with_versions(0, usize::MAX - 200, 8, 8, false).is_none());
    }

    /// The typed view checks what its callers used to promise: enough bytes, aligned.
    #[test]
    fn shared_view_refuses_short_or_misaligned_bytes() {
        let words: Vec<AtomicU64> = (0..40).map(|_| AtomicU64::new(0)).collect();
        let bytes = SharedBytes::of_words(&words);
        assert!(bytes.header().is_some());
        assert!(bytes
            .range(0, HEADER_SIZE - 1)
            .and_then(SharedBytes::header)
            .is_none());
        assert!(bytes
            .range(4, HEADER_SIZE)
            .and_then(SharedBytes::header)
            .is_none());
        assert!(bytes
            .range(8, HEADER_SIZE)
            .and_then(SharedBytes::header)
            .is_some());
        assert!(bytes.range(0, 321).is_none(), "past the end");
        assert!(bytes.range(usize::MAX, 2).is_none(), "overflowing offset");
        let header = bytes.header().unwrap();
        header.version.store(7, Relaxed);
        assert_eq!(
            words[16].load(Relaxed),
            7,
            "the view is over the same words"
        );
    }
}
