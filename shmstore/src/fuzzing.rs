//! Fuzzing entry points (feature `fuzzing`): the functions the targets in `fuzz/` call, also
//! called by the corpus replay test (`shmstore/tests/fuzz_corpus.rs`, run with
//! `cargo test -p shmstore --features fuzzing --test fuzz_corpus`) so that every saved input
//! is checked on stable, without libFuzzer.
//!
//! Each function takes arbitrary bytes and panics only when the library misbehaves: a panic
//! inside the library, an accepted header whose layout does not fit, a decoder that does not
//! round-trip, a value that does not read back as written, a queue that disagrees with a
//! `VecDeque`.
//!
//! [`roundtrip`](crate::fuzzing::roundtrip) is for users: call it from your own cargo-fuzz
//! target to check that your derived [`ShmType`] goes through a region byte for byte.
//!
//! Every region these functions make has a unique name `shmstore-fuzz-<pid>-<n>` and is
//! removed before they return, also when they panic and unwind (libFuzzer aborts on a panic
//! instead: after a crash, `rm -f /dev/shm/shmstore-fuzz-*`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use crate::format::{check_type, Descriptor, HeaderState, RegionLayout, SharedBytes, HEADER_SIZE};
use crate::inspect::Inspector;
use crate::sys::object::Access;
use crate::sys::sysv;
use crate::{Error, Location, QueueMode, Shm, ShmQueue, ShmType};

/// How long the opens in [`open_arbitrary_object`] wait for a creator that is still
/// initialising (none is: nobody holds the object's initialiser lock).
const OPEN_TIMEOUT: Duration = Duration::from_millis(20);

/// Where `creator_pid` lives in the header (`FORMAT.md`).
const CREATOR_PID_RANGE: std::ops::Range<usize> = 80..84;

/// Where the mutex lives in the header (`FORMAT.md`).
const MUTEX_RANGE: std::ops::Range<usize> = 192..256;

/// A fresh name `shmstore-fuzz-<pid>-<n>`, unique within this process.
fn unique_name() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "shmstore-fuzz-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Relaxed)
    )
}

/// Removes the object named `.0` from `/dev/shm` when dropped, also while unwinding.
/// Removes the file at this path when dropped.
struct Unlink(String);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Treats `bytes` as the start of a region object of `bytes.len()` bytes and validates its
/// header as an opener does: `Header::check`, then, for a ready header, the descriptor
/// decoder and the type comparison against a few Rust types.
///
/// An object shorter than the header is refused by the opener before it reads the header
/// (`region/fd.rs`, `look_at`), so such inputs check nothing.
///
/// # Panics
///
/// If the library panics, or if an accepted header describes a layout that does not fit in
/// the object: `payload_offset + payload_size ≤ region_size ≤ len`, the descriptor before the
/// payload, the second copy (if any) after the first.
pub fn check_header_bytes(bytes: &[u8]) {
    let len = bytes.len();
    if len < HEADER_SIZE {
        return;
    }
    let words = atomic_words(bytes);
    let Some(header) = SharedBytes::of_words(&words).header() else {
        return;
    };
    let info = match header.check(len as u64) {
        Ok(HeaderState::Ready(info)) => info,
        Ok(HeaderState::Blank | HeaderState::Initialising) | Err(_) => return,
    };
    let layout = &info.layout;
    let first_end = layout
        .payload_offset
        .checked_add(layout.payload_size)
        .expect("accepted payload end overflows");
    assert!(
        first_end <= layout.region_size,
        "payload ends at {first_end}, past the region size {}",
        layout.region_size
    );
    assert!(
        layout.region_size <= len,
        "accepted region size {} is larger than the {len}-byte object",
        layout.region_size
    );
    let descriptor_end = HEADER_SIZE + layout.descriptor_len;
    assert!(
        descriptor_end <= layout.payload_offset,
        "descriptor ends at {descriptor_end}, after the payload offset {}",
        layout.payload_offset
    );
    if let Some((offset, len)) = layout.versions() {
        let end = offset
            .checked_add(len)
            .expect("accepted versions table end overflows");
        assert!(
            offset >= descriptor_end && end <= layout.payload_offset,
            "the versions table at {offset}..{end} is not between the descriptor (ending at \
             {descriptor_end}) and the payload (at {})",
            layout.payload_offset
        );
        decode_versions(&bytes[offset..end]);
    }
    assert_eq!(
        layout.payload_offset % layout.payload_align.max(1),
        0,
        "misaligned payload"
    );
    if let Some(second) = layout.second_copy_offset {
        assert!(second >= first_end, "the copies overlap");
        assert_eq!(second + layout.payload_size, layout.region_size);
    }
    if let Some(queue) = info.queue {
        assert_eq!(info.type_size(), queue.element_size);
    }
    // The same bytes as the buffer's (`check` only loads).
    let descriptor = &bytes[HEADER_SIZE..descriptor_end];
    let _ = Descriptor::decode(descriptor, info.format_version);
    // The type comparison decodes the descriptor to explain a mismatch: it must not panic.
    let _ = check_type("fuzz", &info, || descriptor.to_vec(), &<[u64; 4]>::LAYOUT);
    let _ = check_type("fuzz", &info, || descriptor.to_vec(), &<u8>::LAYOUT);
}

/// `bytes` in 8-byte-aligned atomic words (zero-padded), as a page-aligned mapping holds
/// them, for a typed view ([`SharedBytes::of_words`]).
fn atomic_words(bytes: &[u8]) -> Vec<AtomicU64> {
    bytes
        .chunks(8)
        .map(|chunk| {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            AtomicU64::new(u64::from_ne_bytes(word))
        })
        .collect()
}

/// Decodes `bytes` as a stored type descriptor (`FORMAT.md`), and as a versions table
/// (`FORMAT.md`, "Versions table": a table's entries are descriptors, so the same inputs
/// reach its decoder's corners).
///
/// # Panics
///
/// If the versions table decoder panics, or accepts bytes that it does not encode back to.
///
/// If the decoder panics, or if a descriptor it accepts does not encode back to one that
/// decodes equal (and to the same bytes), or if describing it panics, or if comparing it for
/// compatibility (with itself: identical; with another type, both ways) panics or gives a
/// verdict its entries contradict.
pub fn decode_descriptor(bytes: &[u8]) {
    // Version 1 has no kinds table; version 2 must have one: each input is read both ways.
    for version in [1, 2] {
        decode_descriptor_version(bytes, version);
    }
    decode_versions(bytes);
}

/// Decodes `bytes` as a versions table and each entry's descriptor, checking that an accepted
/// table is exactly its own encoding.
fn decode_versions(bytes: &[u8]) {
    let Ok(versions) = crate::format::versions::decode(bytes) else {
        return;
    };
    assert_eq!(
        crate::format::versions::encode(&versions),
        bytes,
        "a versions table decoded then encoded changed"
    );
    for version in &versions {
        let _ = Descriptor::decode(&version.descriptor, version.format_version);
    }
}

fn decode_descriptor_version(bytes: &[u8], version: u32) {
    let Ok(descriptor) = Descriptor::decode(bytes, version) else {
        return;
    };
    assert_eq!(descriptor.format_version(), version);
    let encoded = descriptor.encode();
    assert_eq!(
        Descriptor::decode(&encoded, version),
        Ok(descriptor.clone())
    );
    // The decoder refuses trailing bytes, so an accepted input is exactly one encoding.
    assert_eq!(encoded, bytes, "decode then encode changed the bytes");
    for field in &descriptor.fields {
        let _ = field.type_text();
    }
    // `differences` matches fields by path; real descriptors never repeat one.
    let mut paths: Vec<&str> = descriptor.fields.iter().map(|f| f.path.as_str()).collect();
    paths.sort_unstable();
    paths.dedup();
    if paths.len() == descriptor.fields.len() {
        assert!(descriptor.differences(&descriptor).is_empty());
    }
    let _ = Descriptor::of(&<[u64; 4]>::LAYOUT).differences(&descriptor);
    // The compatibility verdict is total: itself is identical, and against another type it
    // gives a verdict both ways, consistent with its entries.
    let itself = crate::format::compare(&descriptor, &descriptor);
    assert_eq!(itself.overall, crate::format::Overall::Identical);
    assert!(itself
        .fields
        .iter()
        .all(|f| f.verdict == crate::format::FieldVerdict::Same));
    let other = Descriptor::of(&<[u64; 4]>::LAYOUT);
    for verdict in [
        crate::format::compare(&descriptor, &other),
        crate::format::compare(&other, &descriptor),
    ] {
        assert_eq!(
            verdict.is_compatible(),
            verdict.fields.iter().all(|f| f.verdict.is_compatible())
        );
    }
}

/// Writes `bytes` as a region in each backend — a shared-memory object under a fresh name, a
/// file, and a System V segment of exactly that size — and opens each every way the API
/// offers: [`Shm::open`], [`Shm::open_reader`], [`ShmQueue::open`] and [`Inspector::open`],
/// with a short `open_timeout`. Each must fail cleanly or give a handle that can be used:
/// `read`, `try_pop`, `len`, the inspector's views. The objects are removed afterwards.
///
/// A file whose stored boot id is not this boot's (most inputs) also goes through the reset
/// after a reboot, which re-initialises the mutex and repairs the value.
///
/// Then [`Shm::open_or_create`] runs over each object, and if the object was not blank (empty,
/// or exactly the zeros an interrupted creation leaves), nor an unfinished or valid region, it
/// must fail and every byte must be as planted: nothing may destroy what it did not create.
///
/// The header's mutex bytes (offsets 192 to 256) are zeroed before writing, which is an
/// unlocked `pthread_mutex_t`. A `pthread_mutex_t` is opaque to its users: glibc gives no way
/// to validate one, and locking garbage is undefined behaviour inside the C library (a lock
/// word naming some thread blocks forever), which no opener can detect. Every other byte is
/// taken as given.
///
/// A read-only handle reads with a timeout ([`ShmReader::read_timeout`]): its `read` of an
/// in-place region left mid-write waits, by design, for a writable handle to repair it.
///
/// [`ShmReader::read_timeout`]: crate::ShmReader::read_timeout
///
/// # Panics
///
/// If the library panics while opening or using the object, or if `open_or_create` (or any
/// open before it) changed an object that was not blank.
pub fn open_arbitrary_object(bytes: &[u8]) {
    let mut object = bytes.to_vec();
    if object.len() >= MUTEX_RANGE.end {
        object[MUTEX_RANGE].fill(0);
    }

    let name = unique_name();
    let _unlink = Unlink(format!("/dev/shm/{name}"));
    if std::fs::write(format!("/dev/shm/{name}"), &object).is_ok() {
        open_every_way(&Location::Named(name.clone()));
        let stored = || std::fs::read(format!("/dev/shm/{name}")).unwrap_or_default();
        open_or_create_leaves_alone(&Location::Named(name.clone()), &object, stored);
    }

    let path = std::env::temp_dir().join(format!("{name}.shm"));
    let _remove = Unlink(path.display().to_string());
    if std::fs::write(&path, &object).is_ok() {
        open_every_way(&Location::File(path.clone()));
        let stored = || std::fs::read(&path).unwrap_or_default();
        open_or_create_leaves_alone(&Location::File(path.clone()), &object, stored);
    }

    // An unready segment whose initialiser lives (the `creator_pid` in the header, or, if that
    // is 0, the segment's creator: this process) is waited for until the open times out, a
    // second for the inspector. Correct, and slow for a fuzzer: name a pid that cannot exist
    // instead, so the segment counts as abandoned at once.
    if object.len() >= CREATOR_PID_RANGE.end {
        let pid = u32::from_ne_bytes(object[CREATOR_PID_RANGE].try_into().unwrap_or_default());
        if pid == 0 || crate::sys::process::is_alive(pid) {
            object[CREATOR_PID_RANGE].copy_from_slice(&u32::MAX.to_ne_bytes());
        }
    }
    if let Some((key, id)) = raw_segment(&object) {
        open_every_way(&Location::SysV(key));
        let stored = || segment_bytes(id, object.len());
        open_or_create_leaves_alone(&Location::SysV(key), &object, stored);
        let _ = sysv::remove(id);
    }
}

/// Whether `open_or_create` may take over (and so change) an object that held `bytes`: an
/// empty object, the exact zeros an interrupted creation of `[u64; 4]` leaves (a System V
/// claim aside), an unfinished shmstore region, or a valid one (opening it may reset it after
/// a reboot). Anything else — garbage, a zero header over other bytes, zeros of another size —
/// is someone's data.
fn may_take_over(bytes: &[u8], segment: bool) -> bool {
    let len = bytes.len();
    if len == 0 {
        return true;
    }
    if len < HEADER_SIZE {
        return false;
    }
    let words = atomic_words(bytes);
    let Some(header) = SharedBytes::of_words(&words).header() else {
        return false;
    };
    match header.check(len as u64) {
        Ok(HeaderState::Ready(_) | HeaderState::Initialising) => true,
        Ok(HeaderState::Blank) => {
            let layout = <[u64; 4]>::LAYOUT;
            let descriptor = Descriptor::of(&layout).encode();
            let blank_size =
                RegionLayout::new(descriptor.len(), layout.size(), layout.align(), false)
                    .map(|region| region.region_size);
            let zero = bytes
                .iter()
                .enumerate()
                .all(|(i, &byte)| byte == 0 || (segment && CREATOR_PID_RANGE.contains(&i)));
            zero && blank_size == Some(len)
        }
        Err(_) => false,
    }
}

/// `open_or_create` over the object planted at `location` with `planted` bytes (issue 13,
/// point 4): it must not panic, and if the object was not blank (see [`may_take_over`]) it
/// must fail and leave every byte as planted — `stored` reads them back. The opens of
/// [`open_every_way`] ran before, so they are held to the same rule.
fn open_or_create_leaves_alone(location: &Location, planted: &[u8], stored: impl Fn() -> Vec<u8>) {
    let segment = matches!(location, Location::SysV(_));
    let result = Shm::<[u64; 4]>::options()
        .open_timeout(OPEN_TIMEOUT)
        .open_or_create(location.clone(), || [1, 2, 3, 4]);
    if let Ok(shm) = &result {
        let _ = shm.read();
    }
    let succeeded = result.is_ok();
    drop(result);
    if !may_take_over(planted, segment) {
        assert!(
            !succeeded,
            "{location}: open_or_create took over someone's data"
        );
        assert!(
            stored() == planted,
            "{location}: an object that was not blank changed"
        );
    }
}

/// The first `len` bytes of segment `id` (empty if it cannot be attached).
fn segment_bytes(id: i32, len: usize) -> Vec<u8> {
    let Ok(map) = sysv::attach(id, Access::ReadOnly) else {
        return Vec::new();
    };
    let mut out = vec![0u8; len];
    // SAFETY: the segment was created with `len` bytes (a segment never shrinks) and is
    // attached at `map.ptr()` while `map` lives; no other process knows its key, and this
    // thread's handles on it are dropped, so nothing writes it during the copy.
    unsafe { std::ptr::copy_nonoverlapping(map.ptr(), out.as_mut_ptr(), len) };
    out
}

/// A new System V segment holding exactly `bytes`, under a key unused until now; `None` for
/// no bytes (a segment has at least one) or if the system refuses.
fn raw_segment(bytes: &[u8]) -> Option<(i32, i32)> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    if bytes.is_empty() {
        return None;
    }
    for _ in 0..64 {
        let n = NEXT.fetch_add(1, Relaxed) as i32 & 0xfff;
        let key = 0x5f00_0000 | ((std::process::id() as i32 & 0xfff) << 12) | n;
        let id = match sysv::create(key, bytes.len(), 0o600) {
            Ok(id) => id,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(_) => return None,
        };
        let Ok(map) = sysv::attach(id, Access::ReadWrite) else {
            let _ = sysv::remove(id);
            return None;
        };
        // SAFETY: the segment was created with `bytes.len()` bytes and is attached writable at
        // `map.ptr()`; nobody else knows its key yet; `map` lives until the end of the block.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), map.ptr(), bytes.len()) };
        return Some((key, id));
    }
    None
}

fn open_every_way(location: &Location) {
    if let Ok(shm) = Shm::<[u64; 4]>::options()
        .open_timeout(OPEN_TIMEOUT)
        .open(location.clone())
    {
        let _ = shm.read();
        let _ = shm.version();
        let _ = shm.is_poisoned();
        if let Ok(guard) = shm.lock_timeout(OPEN_TIMEOUT) {
            let _ = *guard;
        }
    }
    if let Ok(reader) = Shm::<[u64; 4]>::options()
        .open_timeout(OPEN_TIMEOUT)
        .open_reader(location.clone())
    {
        let _ = reader.read_timeout(OPEN_TIMEOUT);
        let _ = reader.version();
    }
    if let Ok(queue) = ShmQueue::<u64, 8>::options()
        .open_timeout(OPEN_TIMEOUT)
        .open(location.clone())
    {
        let len = queue.len();
        assert!(len <= 8, "len {len} exceeds the capacity");
        let _ = queue.is_closed();
        for _ in 0..10 {
            match queue.try_pop() {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        let _ = queue.try_push(7);
    }
    if let Ok(inspector) = Inspector::open(location.clone()) {
        let _ = inspector.header_fields();
        let _ = inspector.info();
        // An in-place region left mid-write (an odd version) waits for a writable handle's
        // repair: bounded, as every caller that cannot repair it should.
        let value = inspector
            .read_timeout(Duration::from_millis(20))
            .unwrap_or_default();
        for field in inspector.fields() {
            let _ = field.type_text();
            let _ = field.element_count();
            let _ = field.render(&value, 4);
        }
    }
}

/// Checks that a value of `T` goes through a region byte for byte.
///
/// Takes `size_of::<T>()` bytes of `data` (padded with zeros) as a `T`, then, in the default
/// mode and in place: creates a region under a fresh name, writes the value through a guard,
/// and reads it back with [`Shm::read`], [`Shm::read_into`], [`Shm::lock`], a
/// [`Shm::open_reader`] snapshot and [`Inspector::read`], comparing each with the input's
/// bytes. It also checks that the region records `T`'s layout fingerprint. The region is
/// removed afterwards.
///
/// Call it from a cargo-fuzz target of your own to fuzz your derived types (with `shmstore`'s
/// `fuzzing` feature enabled in `fuzz/Cargo.toml`):
///
/// ```ignore
/// #![no_main]
/// use libfuzzer_sys::fuzz_target;
/// use shmstore::ShmType;
///
/// #[derive(ShmType, Clone, Copy)]
/// #[repr(C)]
/// struct MyType { a: u64, b: [f32; 4] }
///
/// fuzz_target!(|data: &[u8]| shmstore::fuzzing::roundtrip::<MyType>(data));
/// ```
///
/// It runs as a plain test too:
///
/// ```
/// #[derive(shmstore::ShmType, Clone, Copy)]
/// #[repr(C)]
/// struct MyType { a: u64, b: [f32; 4] }
///
/// shmstore::fuzzing::roundtrip::<MyType>(b"any bytes at all");
/// ```
///
/// # Panics
///
/// If the region cannot be created (`/dev/shm` full or unwritable), or if any read gives other
/// bytes than were written.
pub fn roundtrip<T: ShmType>(data: &[u8]) {
    let size = size_of::<T>();
    let mut input = vec![0u8; size];
    let n = data.len().min(size);
    input[..n].copy_from_slice(&data[..n]);
    let value: T = bytemuck::pod_read_unaligned(&input);
    let expected = bytemuck::bytes_of(&value);

    for in_place in [false, true] {
        let name = unique_name();
        let _unlink = Unlink(format!("/dev/shm/{name}"));
        let shm = Shm::<T>::options()
            .in_place(in_place)
            .unlink_on_drop(true)
            .create(&name, T::zeroed())
            .unwrap_or_else(|e| panic!("creating `{name}`: {e}"));
        {
            let mut guard = shm.lock().expect("a fresh region is not poisoned");
            *guard = value;
        }
        let mode = if in_place { "in place" } else { "default" };
        assert_eq!(
            bytemuck::bytes_of(&shm.read()),
            expected,
            "read() ({mode} mode)"
        );
        let mut out = T::zeroed();
        shm.read_into(&mut out);
        assert_eq!(
            bytemuck::bytes_of(&out),
            expected,
            "read_into ({mode} mode)"
        );
        {
            let guard = shm.lock().expect("not poisoned");
            assert_eq!(
                bytemuck::bytes_of(&*guard),
                expected,
                "lock() ({mode} mode)"
            );
        }
        let reader = Shm::<T>::open_reader(&name).expect("open_reader");
        assert_eq!(
            bytemuck::bytes_of(&reader.read()),
            expected,
            "open_reader snapshot ({mode} mode)"
        );
        let inspector = Inspector::open(&name).expect("Inspector::open");
        assert_eq!(
            inspector.header_fields().fingerprint,
            T::LAYOUT.fingerprint(),
            "stored fingerprint ({mode} mode)"
        );
        assert_eq!(inspector.read(), expected, "Inspector::read ({mode} mode)");
    }
}

/// Runs a sequence of operations decoded from `bytes` on a fresh `ShmQueue<u32, 5>` and checks
/// each result against a `VecDeque` model: FIFO order, `QueueFull` at capacity,
/// `QueueClosed` after `close`, consumers draining a closed queue, `len`.
///
/// The first byte chooses the mode (even: MPMC, odd: SPSC). Each following byte is one
/// operation, by its value modulo 6: push (the byte and a running counter make the value), pop,
/// len, close, reopen (drop the handle and open the queue again by name), is_empty. The queue
/// is removed afterwards.
///
/// # Panics
///
/// If the queue and the model disagree, or the library panics.
pub fn queue_ops(bytes: &[u8]) {
    const N: usize = 5;
    let Some((&mode, ops)) = bytes.split_first() else {
        return;
    };
    let mode = if mode & 1 == 0 {
        QueueMode::Mpmc
    } else {
        QueueMode::Spsc
    };
    let name = unique_name();
    let _unlink = Unlink(format!("/dev/shm/{name}"));
    let mut queue = Some(
        ShmQueue::<u32, N>::options()
            .queue_mode(mode)
            .create(&name)
            .unwrap_or_else(|e| panic!("creating `{name}`: {e}")),
    );
    let mut model = VecDeque::new();
    let mut closed = false;
    for (i, &op) in ops.iter().enumerate() {
        let q = queue.as_ref().expect("reopen puts it back");
        match op % 6 {
            0 => {
                let value = (i as u32) << 8 | u32::from(op);
                match q.try_push(value) {
                    Ok(()) => {
                        assert!(!closed, "push succeeded on a closed queue");
                        assert!(model.len() < N, "push succeeded on a full queue");
                        model.push_back(value);
                    }
                    Err(Error::QueueClosed { .. }) => assert!(closed, "QueueClosed while open"),
                    Err(Error::QueueFull { capacity, .. }) => {
                        assert_eq!(capacity, N);
                        assert!(!closed, "QueueFull instead of QueueClosed");
                        assert_eq!(model.len(), N, "QueueFull below capacity");
                    }
                    Err(e) => panic!("try_push: {e}"),
                }
            }
            1 => {
                let popped = q.try_pop().unwrap_or_else(|e| panic!("try_pop: {e}"));
                assert_eq!(popped, model.pop_front(), "try_pop");
            }
            2 => assert_eq!(q.len(), model.len(), "len"),
            3 => {
                q.close();
                closed = true;
                assert!(q.is_closed());
            }
            4 => {
                drop(queue.take());
                let reopened = ShmQueue::<u32, N>::open(&name)
                    .unwrap_or_else(|e| panic!("reopening `{name}`: {e}"));
                assert_eq!(reopened.mode(), mode, "mode after reopening");
                queue = Some(reopened);
            }
            _ => {
                assert_eq!(q.is_empty(), model.is_empty(), "is_empty");
                assert_eq!(q.is_closed(), closed, "is_closed");
            }
        }
    }
    let q = queue.as_ref().expect("present");
    assert_eq!(q.len(), model.len(), "final len");
    while let Some(expected) = model.pop_front() {
        assert_eq!(q.try_pop().expect("try_pop"), Some(expected), "draining");
    }
    assert_eq!(q.try_pop().expect("try_pop"), None, "drained");
}

/// Plants arbitrary objects under a fresh [`Store`](crate::Store) prefix, lists them with
/// [`Store::list`](crate::Store::list), opens each with [`Inspector::open_now`], shrinks some
/// and lists again. The objects are removed afterwards.
///
/// `bytes` is a sequence of objects, each a kind byte, a 16-bit little-endian length, then
/// that many bytes of content (cut short at the end of the input), at most eight objects. The
/// kind (modulo 8) plants: 0 to 3 a regular file with the content; 4 a FIFO; 5 a symbolic link
/// to the previous object; 6 a directory; 7 a regular file that is cut to half its size
/// between the two listings.
///
/// # Panics
///
/// If the library panics, if a listing fails or names an object that is not a planted regular
/// file, or if an object the inspector opens as a ready region is missing from the listing or
/// listed differently from what the inspector reports.
pub fn list_arbitrary_objects(bytes: &[u8]) {
    use std::os::unix::fs::symlink;
    use std::path::Path;

    let prefix = unique_name();
    let store = crate::Store::new(&prefix).expect("a fresh prefix is valid");
    let mut planted: Vec<(String, u8)> = Vec::new();
    let mut cleanup: Vec<Unlink> = Vec::new();
    let mut rest = bytes;
    while planted.len() < 8 {
        let [kind, lo, hi, tail @ ..] = rest else {
            break;
        };
        let kind = kind % 8;
        let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(tail.len());
        let (content, after) = tail.split_at(len);
        rest = after;
        let name = store
            .name_of(&format!("o{}", planted.len()))
            .expect("a short name is valid");
        let path = format!("/dev/shm/{name}");
        cleanup.push(Unlink(path.clone()));
        let made = match kind {
            4 => crate::sys::object::make_fifo(Path::new(&path)).is_ok(),
            5 => match planted.last() {
                Some((previous, _)) => symlink(format!("/dev/shm/{previous}"), &path).is_ok(),
                None => false,
            },
            6 => std::fs::create_dir(&path).is_ok(),
            _ => std::fs::write(&path, content).is_ok(),
        };
        if made {
            planted.push((name, kind));
        }
    }
    // Directories are not files: remove them last, with `remove_dir`.
    let _dirs: Vec<RemoveDir> = planted
        .iter()
        .filter(|(_, kind)| *kind == 6)
        .map(|(name, _)| RemoveDir(format!("/dev/shm/{name}")))
        .collect();

    let is_file = |name: &str| {
        planted
            .iter()
            .any(|(planted, kind)| planted == name && !matches!(kind, 4..=6))
    };
    let listed = store
        .list()
        .expect("listing never fails for what is in /dev/shm");
    for info in &listed {
        assert!(
            is_file(&info.name),
            "listed {info:?}, which is not a planted file"
        );
    }
    let names: Vec<&str> = listed.iter().map(|i| i.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(names, sorted, "sorted by name, once each");

    let mut views = Vec::new();
    for (name, _) in &planted {
        let Ok(view) = Inspector::open_now(name.as_str()) else {
            continue;
        };
        let listed = listed.iter().find(|i| &i.name == name);
        assert_eq!(
            listed,
            Some(&view.info()),
            "{name}: the inspector opened it, the listing says otherwise"
        );
        let _ = view.read_timeout(Duration::from_millis(20));
        views.push(view);
    }

    // Peers shrink objects; looking must still work, and views of them must not crash.
    for (name, kind) in &planted {
        if *kind == 7 {
            if let Ok(file) = std::fs::OpenOptions::new()
                .write(true)
                .open(format!("/dev/shm/{name}"))
            {
                let len = file.metadata().map_or(0, |m| m.len());
                let _ = file.set_len(len / 2);
            }
        }
    }
    store
        .list()
        .expect("listing never fails for what is in /dev/shm");
    for view in &views {
        let _ = view.header_fields();
        let _ = view.info();
        let _ = view.version();
        let _ = view.read_timeout(Duration::from_millis(20));
        let _ = view.wait_for_change(u64::MAX, Some(Duration::ZERO));
    }
}

/// Removes the directory at this path when dropped.
struct RemoveDir(String);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// A peer truncating, regrowing and rewriting a region while another process uses it, run as
/// a script from `bytes`; the other process is a forked child, judged by how it ends.
///
/// `bytes[0]` picks the region: bits 0–1 a `[u64; 1024]` value in the default mode or in
/// place, or a `u64` queue of capacity 1024, MPMC or SPSC; bit 2 a file instead of a POSIX
/// name. The
/// child opens it (as a `Shm` and a `ShmReader`, or as a `ShmQueue`) before anything happens.
/// Then every 3 bytes `[action, a, b]` are one step: this process (the peer) truncates the
/// object to `u16(a, b) mod (size + 1)` bytes, grows it back to its size (the lost bytes come
/// back as zeros), writes byte `b` at offset `a × size / 256`, or rewrites the original bytes;
/// or the child runs operation `a` on its handles and reports back: reads, versions, waits,
/// a lock taken and held across later steps, writes through it and its release, pushes and
/// pops, and looks with the `pread`-based tools (`Inspector`, `list`). The peer never rewrites
/// the mutex (a peer that forges it is trusted by design: README, "Threat model").
///
/// # Panics
///
/// When the child ends other than by exiting normally or by the one death the README allows:
/// SIGBUS from an operation on a mapped handle while the object is shorter than the region.
/// So a panic inside the library, a hang (the child's watchdog), a SIGBUS with the object at
/// its full size, or a SIGBUS in a looking tool, which must read with `pread`.
pub fn truncate_while_operating(bytes: &[u8]) {
    use std::os::unix::fs::FileExt;

    let Some((&shape, script)) = bytes.split_first() else {
        return;
    };
    let kind = Kind::from(shape);
    let name = unique_name();
    let (location, path) = if shape & 4 == 0 {
        let path = format!("/dev/shm/{name}");
        (Location::Named(name), path)
    } else {
        let path = std::env::temp_dir().join(format!("{name}.shm"));
        (Location::File(path.clone()), path.display().to_string())
    };
    let _unlink = Unlink(path.clone());
    if let Err(e) = kind.create(&location) {
        panic!("creating {location}: {e}");
    }
    let object = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("opening {path}: {e}"));
    let original = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let full = original.len() as u64;

    let (mut to_child, in_child) =
        std::os::unix::net::UnixStream::pair().expect("a socket pair for the child");
    // SAFETY: the child only opens and uses regions, allocates and talks over its socket; it
    // never prints (its panic hook is replaced before anything can panic), so it needs no
    // lock another thread of this process may hold.
    let child = unsafe {
        crate::sys::child::fork_child(CHILD_WATCHDOG_SECS, || {
            child_main(kind, &location, in_child)
        })
    }
    .expect("fork");

    let mut size = full;
    // Whether a truncation ever cut through the mutex (see `judge`).
    let mut mutex_cut = false;
    let mut in_flight: Option<Op> = None;
    let mut child_alive = answer(&mut to_child).is_some();
    for step in script.chunks_exact(3) {
        let (action, a, b) = (step[0], step[1], step[2]);
        match action % 8 {
            0 => {
                size = u64::from(u16::from_le_bytes([a, b])) % (full + 1);
                object.set_len(size).expect("ftruncate");
                // Cut through the robust mutex: regrown, it reads as zeros under its holder.
                mutex_cut |= size < MUTEX_RANGE.end as u64;
            }
            1 => {
                size = full;
                object.set_len(size).expect("ftruncate");
            }
            2 => {
                let offset = u64::from(a) * full / 256;
                if offset < size && !MUTEX_RANGE.contains(&(offset as usize)) {
                    object.write_at(&[b], offset).expect("pwrite");
                }
            }
            3 => {
                for range in [0..MUTEX_RANGE.start, MUTEX_RANGE.end..original.len()] {
                    let end = (range.end as u64).min(size) as usize;
                    if range.start < end {
                        object
                            .write_at(&original[range.start..end], range.start as u64)
                            .expect("pwrite");
                    }
                }
            }
            _ if child_alive => {
                let op = Op::pick(kind, a);
                in_flight = Some(op);
                match ask(&mut to_child, op) {
                    Some(Answer::Done) => in_flight = None,
                    Some(Answer::Panicked(message)) => {
                        panic!(
                            "the child panicked in {op:?} (object {size} of {full} bytes): \
                             {message}"
                        )
                    }
                    // It died: judged below, by its exit status.
                    None => child_alive = false,
                }
            }
            _ => {}
        }
        if !child_alive {
            break;
        }
    }
    if child_alive {
        // The child holds a copy of this end too (forked), so closing ours is no end of
        // stream for it: tell it to leave.
        let _ = std::io::Write::write_all(&mut to_child, &[EXIT]);
    }
    let ended = crate::sys::child::wait_child(child).expect("waitpid");
    judge(ended, in_flight, size, full, mutex_cut);
}

/// The child's watchdog: no operation of the script waits more than a few milliseconds.
const CHILD_WATCHDOG_SECS: u32 = 10;

/// What the region in [`truncate_while_operating`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Value { in_place: bool },
    Queue(QueueMode),
}

/// The value of [`truncate_while_operating`]: 8 KiB, so that its region spans several pages
/// (a truncation faults only on the pages wholly past the new end).
type TruncatedValue = [u64; 1024];
/// Its queue: 8 KiB of slots, for the same reason.
type TruncatedQueue = ShmQueue<u64, 1024>;

impl Kind {
    fn from(shape: u8) -> Kind {
        match shape & 3 {
            0 => Kind::Value { in_place: false },
            1 => Kind::Value { in_place: true },
            2 => Kind::Queue(QueueMode::Mpmc),
            _ => Kind::Queue(QueueMode::Spsc),
        }
    }

    fn create(self, location: &Location) -> crate::Result<()> {
        match self {
            Kind::Value { in_place } => Shm::<TruncatedValue>::options()
                .in_place(in_place)
                .create(location.clone(), [7; 1024])
                .map(drop),
            Kind::Queue(mode) => TruncatedQueue::options()
                .queue_mode(mode)
                .create(location.clone())
                .map(drop),
        }
    }
}

/// An operation the child runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    ReadTimeout,
    Version,
    WaitForChange,
    LockWriteUnlock,
    LockAndHold,
    WriteHeld,
    ReleaseHeld,
    ReaderRead,
    Poisoned,
    Push,
    Pop,
    PushTimeout,
    PopTimeout,
    Len,
    Close,
    /// `Inspector::open`, its header, a bounded read, and `list()`: the looking tools.
    Look,
}

impl Op {
    /// The operations on a value region, in the order a fuzz byte picks them.
    const VALUE: [Op; 11] = [
        Op::Read,
        Op::ReadTimeout,
        Op::Version,
        Op::WaitForChange,
        Op::LockWriteUnlock,
        Op::LockAndHold,
        Op::WriteHeld,
        Op::ReleaseHeld,
        Op::ReaderRead,
        Op::Poisoned,
        Op::Look,
    ];
    /// The operations on a queue, in the order a fuzz byte picks them.
    const QUEUE: [Op; 7] = [
        Op::Push,
        Op::Pop,
        Op::PushTimeout,
        Op::PopTimeout,
        Op::Len,
        Op::Close,
        Op::Look,
    ];

    fn pick(kind: Kind, a: u8) -> Op {
        match kind {
            Kind::Value { .. } => Self::VALUE[usize::from(a) % Self::VALUE.len()],
            Kind::Queue(_) => Self::QUEUE[usize::from(a) % Self::QUEUE.len()],
        }
    }

    fn code(self) -> u8 {
        self as u8
    }

    /// The operation whose [`code`](Self::code) is `code`: every operation is a value or a
    /// queue operation (`Look` is both), so the two lists hold them all.
    fn from_code(code: u8) -> Option<Op> {
        Self::VALUE
            .into_iter()
            .chain(Self::QUEUE)
            .find(|op| op.code() == code)
    }
}

/// The child's answer to one operation.
enum Answer {
    Done,
    Panicked(String),
}

/// The byte the child sends after an operation that returned.
const DONE: u8 = 0;
/// The byte the child sends, followed by the message, after an operation that panicked.
const PANICKED: u8 = 1;
/// The byte that tells the child to exit (status 0).
const EXIT: u8 = 0xff;

/// Sends `op` to the child and reads its answer; `None` if the child died first.
fn ask(to_child: &mut std::os::unix::net::UnixStream, op: Op) -> Option<Answer> {
    use std::io::Write;
    to_child.write_all(&[op.code()]).ok()?;
    answer(to_child)
}

/// Reads one answer of the child; `None` at end of stream (it died, or exited).
fn answer(from_child: &mut std::os::unix::net::UnixStream) -> Option<Answer> {
    use std::io::Read;
    let mut byte = [0u8];
    from_child.read_exact(&mut byte).ok()?;
    if byte[0] == DONE {
        return Some(Answer::Done);
    }
    let mut message = String::new();
    let _ = from_child.read_to_string(&mut message);
    Some(Answer::Panicked(message))
}

/// Fails unless the child ended as the README allows.
fn judge(
    ended: crate::sys::child::Ended,
    in_flight: Option<Op>,
    size: u64,
    full: u64,
    mutex_cut: bool,
) {
    use crate::sys::child::Ended;
    use nix::sys::signal::Signal;
    match ended {
        Ended::Exited(0) => {}
        // Documented (README, Threat model): a peer that truncates the object through the
        // header's robust mutex zeroes it; glibc then follows the zeroed robust-list link of
        // the mutex this process holds when it unlocks it (releasing a guard, or at exit),
        // and faults at address -8. The same class as the SIGBUS of a truncated page below.
        Ended::Killed(Signal::SIGSEGV)
            if mutex_cut && matches!(in_flight, Some(Op::ReleaseHeld) | None) => {}
        Ended::Killed(Signal::SIGBUS) => match in_flight {
            Some(Op::Look) => panic!(
                "a looking tool (Inspector, list) died of SIGBUS on an object shrunk to {size} \
                 of {full} bytes: they must read with pread"
            ),
            Some(op) if size < full => {
                // Documented: a mapped handle faults on a page the peer truncated away.
                let _ = op;
            }
            Some(op) => panic!(
                "{op:?} died of SIGBUS with the object at its full size ({size} of {full} bytes)"
            ),
            None => panic!("the child died of SIGBUS outside any operation"),
        },
        Ended::Killed(Signal::SIGALRM) => {
            panic!("the child hung in {in_flight:?} (object {size} of {full} bytes)")
        }
        other => panic!(
            "the child ended with {other:?} in {in_flight:?} (object {size} of {full} bytes)"
        ),
    }
}

/// What the child holds.
struct ChildHandles {
    shm: Option<Shm<TruncatedValue>>,
    reader: Option<crate::ShmReader<TruncatedValue>>,
    queue: Option<TruncatedQueue>,
}

/// The child: opens its handles, says so, then runs the operations it is sent until told to
/// exit. Returns its exit status.
fn child_main(kind: Kind, location: &Location, mut stream: std::os::unix::net::UnixStream) -> i32 {
    use std::io::{Read, Write};
    std::panic::set_hook(Box::new(|_| {}));
    let opened = std::panic::catch_unwind(|| match kind {
        Kind::Value { .. } => ChildHandles {
            shm: Shm::open(location.clone()).ok(),
            reader: Shm::open_reader(location.clone()).ok(),
            queue: None,
        },
        Kind::Queue(_) => ChildHandles {
            shm: None,
            reader: None,
            queue: TruncatedQueue::options().open(location.clone()).ok(),
        },
    });
    let Ok(handles) = opened else {
        let _ = stream.write_all(&[PANICKED]);
        let _ = stream.write_all(b"opening panicked");
        return 101;
    };
    if stream.write_all(&[DONE]).is_err() {
        return 0;
    }
    // The guard held across steps: it borrows `handles.shm`, which outlives it.
    let mut held: Option<crate::ShmGuard<'_, TruncatedValue>> = None;
    let mut written = 0u64;
    let status = loop {
        let mut code = [0u8];
        if stream.read_exact(&mut code).is_err() || code[0] == EXIT {
            break 0;
        }
        let Some(op) = Op::from_code(code[0]) else {
            break 2;
        };
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_op(op, location, &handles, &mut held, &mut written)
        }));
        match ran {
            Ok(()) => {
                if stream.write_all(&[DONE]).is_err() {
                    break 0;
                }
            }
            Err(payload) => {
                let message = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let _ = stream.write_all(&[PANICKED]);
                let _ = stream.write_all(message.as_bytes());
                break 101;
            }
        }
    };
    // Leave without dropping the guard or the handles: their drops touch a region that may be
    // shrunk, outside any operation the parent could blame.
    std::mem::forget(held);
    std::mem::forget(handles);
    status
}

/// How long the child's bounded operations wait.
const CHILD_WAIT: Duration = Duration::from_millis(2);

fn run_op<'a>(
    op: Op,
    location: &Location,
    handles: &'a ChildHandles,
    held: &mut Option<crate::ShmGuard<'a, TruncatedValue>>,
    written: &mut u64,
) {
    *written += 1;
    let n = *written;
    match op {
        // Reads from the thread holding a guard are the caller's mistake in place (they panic
        // by design): the script reads only while no guard is held.
        Op::Read if held.is_none() => {
            if let Some(shm) = &handles.shm {
                if shm.is_in_place() {
                    let _ = shm.read_timeout(CHILD_WAIT);
                } else {
                    let _ = shm.read();
                }
            }
        }
        Op::ReadTimeout if held.is_none() => {
            if let Some(shm) = &handles.shm {
                let _ = shm.read_timeout(CHILD_WAIT);
            }
        }
        Op::Version => {
            if let Some(shm) = &handles.shm {
                let _ = shm.version();
            }
            if let Some(reader) = &handles.reader {
                let _ = reader.version();
            }
        }
        Op::WaitForChange => {
            if let Some(reader) = &handles.reader {
                let _ = reader.wait_for_change(reader.version(), Some(CHILD_WAIT));
            }
        }
        Op::LockWriteUnlock if held.is_none() => {
            if let Some(shm) = &handles.shm {
                let guard = match shm.lock_timeout(CHILD_WAIT) {
                    Ok(guard) => Some(guard),
                    Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
                    Err(std::sync::TryLockError::WouldBlock) => None,
                };
                if let Some(mut guard) = guard {
                    guard[0] = n;
                }
            }
        }
        Op::LockAndHold if held.is_none() => {
            if let Some(shm) = &handles.shm {
                *held = match shm.lock_timeout(CHILD_WAIT) {
                    Ok(guard) => Some(guard),
                    Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
                    Err(std::sync::TryLockError::WouldBlock) => None,
                };
            }
        }
        Op::WriteHeld => {
            if let Some(guard) = held.as_mut() {
                guard[1] = n;
            }
        }
        Op::ReleaseHeld => drop(held.take()),
        Op::ReaderRead => {
            if let Some(reader) = &handles.reader {
                let _ = reader.read_timeout(CHILD_WAIT);
            }
        }
        Op::Poisoned => {
            if let Some(shm) = &handles.shm {
                if shm.is_poisoned() && held.is_none() {
                    shm.clear_poison();
                }
            }
        }
        Op::Push => {
            if let Some(queue) = &handles.queue {
                let _ = queue.try_push(n);
            }
        }
        Op::Pop => {
            if let Some(queue) = &handles.queue {
                let _ = queue.try_pop();
            }
        }
        Op::PushTimeout => {
            if let Some(queue) = &handles.queue {
                let _ = queue.push_timeout(n, CHILD_WAIT);
            }
        }
        Op::PopTimeout => {
            if let Some(queue) = &handles.queue {
                let _ = queue.pop_timeout(CHILD_WAIT);
            }
        }
        Op::Len => {
            if let Some(queue) = &handles.queue {
                let _ = queue.len();
                let _ = queue.is_closed();
            }
        }
        Op::Close => {
            if let Some(queue) = &handles.queue {
                queue.close();
            }
        }
        Op::Look => {
            if let Ok(inspector) = Inspector::open(location.clone()) {
                let _ = inspector.header_fields();
                let _ = inspector.read_timeout(CHILD_WAIT);
            }
            let _ = crate::list();
        }
        // An operation skipped while a guard is held.
        _ => {}
    }
}

/// Parses the records of a byte channel's ring made of arbitrary bytes, as a receiver does
/// (`format::parse_front`): bytes 0..8 give the largest message, 8..16 `head`, 16..24 `tail`
/// (little-endian), the rest is the ring (cut to a multiple of 8). Walks the records from
/// `head` until the ring is empty or a record is refused, and panics if an accepted record
/// lies outside the ring or past the published bytes: a forged record must be refused, never
/// read out of bounds.
pub fn channel_records(bytes: &[u8]) {
    use crate::format::{parse_front, RECORD_HEADER};
    let word = |at: usize| {
        let mut w = [0u8; 8];
        if let Some(src) = bytes.get(at..at + 8) {
            w.copy_from_slice(src);
        }
        u64::from_le_bytes(w)
    };
    let ring_bytes = bytes.get(24..).unwrap_or_default();
    let ring_len = ring_bytes.len() / 8 * 8;
    if ring_len < 16 {
        return;
    }
    let ring = &ring_bytes[..ring_len];
    let max_message = (word(0) % (ring_len as u64 / 2)) as usize;
    let (mut head, tail) = (word(8), word(16));
    let header_at = |at: usize| {
        assert!(
            at + RECORD_HEADER <= ring_len,
            "a header read past the ring"
        );
        u64::from_ne_bytes(ring[at..at + 8].try_into().expect("8 bytes"))
    };
    for _ in 0..ring_len {
        match parse_front(ring_len as u64, max_message, head, tail, header_at) {
            Ok(Some(front)) => {
                assert!(
                    front.data + front.len <= ring_len,
                    "a message past the ring"
                );
                assert!(front.len <= max_message, "a message past the largest");
                assert!(
                    front.advance <= tail - head,
                    "a record past the published bytes"
                );
                head += front.advance;
            }
            Ok(None) | Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Op;

    /// The child decodes every operation the parent can send: each is in `Op::VALUE` or
    /// `Op::QUEUE`. (`Look` is declared last, so its code is the largest.)
    #[test]
    fn every_operation_code_decodes() {
        for code in 0..=Op::Look.code() {
            assert_eq!(Op::from_code(code).map(Op::code), Some(code));
        }
        assert_eq!(Op::from_code(Op::Look.code() + 1), None);
    }
}
