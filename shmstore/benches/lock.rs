//! Lock and read costs against their raw baselines (DESIGN §11), measured in one run:
//! `cargo bench -p shmstore --bench lock`.
//!
//! Baselines: a robust, process-shared, error-checking pthread mutex in a shared mapping
//! (what `lock()` is built on), and a race-free copy with relaxed `u64` loads (what `read()`
//! is built on) next to a plain `memcpy`.
//!
//! The baseline mutex has shmstore's attributes (process-shared, robust, error-checking; see
//! `shmstore/src/sys/mutex.rs`) and lives in a shared mapping, and the process has a second
//! thread (`common::start_second_thread`), as the services shmstore serves do.

mod common;

use std::hint::black_box;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU64, Ordering};

use common::Regions;
use criterion::Criterion;
use nix::libc;
use shmstore::{Shm, ShmType};

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Small {
    a: u64,
    b: u64,
}

/// Release 1 of a 64-byte config…
#[derive(ShmType, Clone, Copy)]
#[repr(C)]
#[shm(name = "BenchConfig")]
struct ConfigV1 {
    a: [u64; 8],
}

/// …and release 2, one field added: opening it for writing migrates a release-1 region to it,
/// after which release 1's handles write through a compatible layout.
#[derive(ShmType, Clone, Copy)]
#[repr(C)]
#[shm(name = "BenchConfig")]
struct ConfigV2 {
    a: [u64; 8],
    added: u64,
}

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Page {
    words: [u64; 512],
}

/// A raw robust pthread mutex in a shared anonymous mapping: the floor for `lock()`.
struct RawMutex {
    ptr: *mut libc::pthread_mutex_t,
}

impl RawMutex {
    fn new() -> RawMutex {
        // SAFETY: a new anonymous shared mapping of one page at an address the kernel picks,
        // so no existing memory is replaced; the result is checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        let a = attr.as_mut_ptr();
        // SAFETY: `a` is writable storage for an attribute object, initialised by this call.
        unsafe { libc::pthread_mutexattr_init(a) };
        // SAFETY: `a` was initialised above.
        unsafe { libc::pthread_mutexattr_setpshared(a, libc::PTHREAD_PROCESS_SHARED) };
        // SAFETY: as above.
        unsafe { libc::pthread_mutexattr_setrobust(a, libc::PTHREAD_MUTEX_ROBUST) };
        // SAFETY: as above.
        unsafe { libc::pthread_mutexattr_settype(a, libc::PTHREAD_MUTEX_ERRORCHECK) };
        let m = p.cast::<libc::pthread_mutex_t>();
        // SAFETY: `m` is the start of a fresh, page-aligned 4096-byte mapping (room and
        // alignment for a `pthread_mutex_t`) that nothing else uses; `a` is initialised. The
        // mutex is never moved and the mapping never unmapped.
        assert_eq!(unsafe { libc::pthread_mutex_init(m, a) }, 0);
        RawMutex { ptr: m }
    }

    fn lock_write_unlock(&self, slot: &AtomicU64) {
        // SAFETY: the mutex was initialised in `new` and its mapping is never unmapped.
        unsafe { libc::pthread_mutex_lock(self.ptr) };
        slot.store(slot.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        // SAFETY: locked just above by this thread.
        unsafe { libc::pthread_mutex_unlock(self.ptr) };
    }
}

fn copy_relaxed(src: &[AtomicU64], dst: &mut [u64]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = s.load(Ordering::Relaxed);
    }
}

fn benches(c: &mut Criterion) {
    let pid = std::process::id();
    let names = Regions(vec![
        format!("shmstore-bench-small-{pid}"),
        format!("shmstore-bench-small-inplace-{pid}"),
        format!("shmstore-bench-page-{pid}"),
        format!("shmstore-bench-config-{pid}"),
        format!("shmstore-bench-config-same-{pid}"),
    ]);
    let small = Shm::<Small>::create(&names.0[0], Small { a: 0, b: 0 }).unwrap();
    let small_in_place = Shm::<Small>::options()
        .in_place(true)
        .create(&names.0[1], Small { a: 0, b: 0 })
        .unwrap();
    let page = Shm::<Page>::create(&names.0[2], Page { words: [7; 512] }).unwrap();

    let mut g = c.benchmark_group("lock+write 8 B+unlock, 16 B value");
    let raw = RawMutex::new();
    let slot = AtomicU64::new(0);
    g.bench_function("raw robust pthread mutex", |b| {
        b.iter(|| raw.lock_write_unlock(&slot))
    });
    g.bench_function("Shm default (crash-atomic)", |b| {
        b.iter(|| small.lock().unwrap().a += 1)
    });
    g.bench_function("Shm in_place", |b| {
        b.iter(|| small_in_place.lock().unwrap().a += 1)
    });
    g.bench_function("Shm default, read-only guard", |b| {
        b.iter(|| black_box(small.lock().unwrap().a))
    });
    g.finish();

    // One region migrated from release 1 to release 2: release 2 takes the direct path there,
    // release 1 writes through a compatible layout; a region of release 1 alone for reference.
    let same = Shm::<ConfigV1>::create(&names.0[4], ConfigV1 { a: [0; 8] }).unwrap();
    let old = Shm::<ConfigV1>::create(&names.0[3], ConfigV1 { a: [0; 8] }).unwrap();
    let new = Shm::<ConfigV2>::open(&names.0[3]).unwrap();
    old.read(); // follows the migration
    assert!(!same.is_projected() && !new.is_projected() && old.is_projected());
    let mut g = c.benchmark_group("lock+write 8 B+unlock, 64 B value, through a compatible layout");
    g.bench_function("Shm, same type (direct)", |b| {
        b.iter(|| same.lock().unwrap().a[0] += 1)
    });
    g.bench_function("Shm, the type the region migrated to (direct)", |b| {
        b.iter(|| new.lock().unwrap().a[0] += 1)
    });
    g.bench_function("Shm, an older type (projected, a field kept)", |b| {
        b.iter(|| old.lock().unwrap().a[0] += 1)
    });
    g.finish();

    let mut g = c.benchmark_group("read 4 KiB");
    let words: Vec<AtomicU64> = (0..512).map(AtomicU64::new).collect();
    let mut out = vec![0u64; 512];
    g.bench_function("memcpy", |b| {
        let src = vec![1u64; 512];
        b.iter(|| out.copy_from_slice(black_box(&src)))
    });
    g.bench_function("race-free copy (relaxed u64 loads)", |b| {
        b.iter(|| copy_relaxed(black_box(&words), &mut out))
    });
    g.bench_function("Shm::read", |b| b.iter(|| black_box(page.read())));
    g.finish();

    let mut g = c.benchmark_group("read 16 B");
    g.bench_function("Shm::read", |b| b.iter(|| black_box(small.read())));
    g.finish();
    drop(names);
}

fn main() {
    common::start_second_thread();
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
}
