//! `read()` against its baselines (DESIGN §11), measured in one run:
//! `cargo bench -p shmstore --bench read`.
//!
//! - 64 B and 4 KiB values, default and `in_place` regions, `Shm::read`, `Shm::read_into` and
//!   `ShmReader::read`, next to a race-free copy of the same size with relaxed `AtomicU64` loads
//!   (the floor `read()` is built on; returned by value and into a buffer) and a plain
//!   `memcpy`, all from shared mappings.
//! - `ShmReader::read` of a 64 B region through its own type and through two compatible types
//!   (a field added; 16 `u32` widened to `u64`): the projected path beside the direct one.
//! - `read()` of 4 KiB while a writer process (this binary re-executed as a helper) rewrites the
//!   value back to back: the mean (criterion, `iter_custom`) and the latency distribution of
//!   100 000 individually timed reads, printed as p50/p99/p99.9/max (target: p99 ≤ 2 µs). Each
//!   read is also checked for tearing (the writer stores one number in every word). A
//!   `ShmReader` cannot lock to get past the writer, so its reads there use `read_timeout`:
//!   a reader that starves is reported (and criterion's measurement of it skipped) instead of
//!   hanging the run.

mod common;

use std::hint::black_box;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use common::{bench_name, helper_role, pin_to_cpu, Helper, Percentiles, RawShm, Regions};
use criterion::{BenchmarkGroup, Criterion};
use shmstore::{Shm, ShmReader};

type Small = [u64; 8];
type Page = [u64; 512];

/// Release 1 of a 64-byte config, for the projected read.
#[derive(shmstore::ShmType, Clone, Copy)]
#[repr(C)]
#[shm(name = "BenchConfig")]
struct ConfigV1 {
    a: [u64; 8],
}

/// Release 2: one field added (read as zero); the shared fields are one copy.
#[derive(shmstore::ShmType, Clone, Copy)]
#[repr(C)]
#[shm(name = "BenchConfig")]
struct ConfigAdded {
    a: [u64; 8],
    added: u64,
}

/// Release 1 with 16 `u32`s (64 bytes)…
#[derive(shmstore::ShmType, Clone, Copy)]
#[repr(C)]
#[shm(name = "BenchConfig")]
struct ConfigNarrow {
    a: [u32; 16],
}

/// …read as 16 `u64`s: 16 conversions.
#[derive(shmstore::ShmType, Clone, Copy)]
#[repr(C)]
#[shm(name = "BenchConfig")]
struct ConfigWidened {
    a: [u64; 16],
}

/// `ShmReader::read` of a 64-byte region through its own type (the direct path) and through
/// two compatible types (a projection), in one group of one run.
fn projected(c: &mut Criterion, names: &Regions) {
    let v1 = Shm::create(&names.0[4], ConfigV1 { a: [3; 8] }).unwrap();
    let narrow = Shm::create(&names.0[5], ConfigNarrow { a: [3; 16] }).unwrap();
    let direct = Shm::<ConfigV1>::open_reader(&names.0[4]).unwrap();
    let added = Shm::<ConfigAdded>::open_reader(&names.0[4]).unwrap();
    let widened = Shm::<ConfigWidened>::open_reader(&names.0[5]).unwrap();
    assert!(!direct.is_projected() && added.is_projected() && widened.is_projected());
    let mut g = c.benchmark_group("read 64 B through a compatible layout");
    g.measurement_time(Duration::from_secs(3)).sample_size(30);
    g.bench_function("ShmReader::read, direct (same type)", |b| {
        b.iter(|| {
            let v = black_box(&direct).read();
            black_box(&v);
        })
    });
    g.bench_function("ShmReader::read, projected (a field added)", |b| {
        b.iter(|| {
            let v = black_box(&added).read();
            black_box(&v);
        })
    });
    g.bench_function("ShmReader::read, projected (16 u32 -> u64)", |b| {
        b.iter(|| {
            let v = black_box(&widened).read();
            black_box(&v);
        })
    });
    g.finish();
    drop((v1, narrow));
}

/// Timed reads per distribution.
const TIMED_READS: usize = 100_000;
/// At most this long per distribution (reads that time out are slow).
const TIME_BUDGET: Duration = Duration::from_secs(10);
/// A `ShmReader` cannot take the lock to get past a writer: its reads under the writer use
/// `read_timeout` with this bound, so that a starving reader is reported instead of hanging.
const READER_TIMEOUT: Duration = Duration::from_secs(1);

/// The floor of `read()`: a copy with relaxed `u64` loads, returned by value like `read()`.
#[inline]
fn copy_relaxed<const N: usize>(src: &[AtomicU64; N]) -> [u64; N] {
    let mut out = MaybeUninit::<[u64; N]>::uninit();
    let dst = out.as_mut_ptr().cast::<u64>();
    for (i, word) in src.iter().enumerate() {
        // SAFETY: `i < N`: inside `out`.
        let at = unsafe { dst.add(i) };
        // SAFETY: `at` is one of `out`'s N words: writable and aligned.
        unsafe { at.write(word.load(Ordering::Relaxed)) };
    }
    // SAFETY: all N words were written above.
    unsafe { out.assume_init() }
}

/// The same copy into a caller's buffer, the floor of `read_into`.
#[inline]
fn copy_relaxed_into<const N: usize>(src: &[AtomicU64; N], out: &mut [u64; N]) {
    for (d, s) in out.iter_mut().zip(src) {
        *d = s.load(Ordering::Relaxed);
    }
}

/// The baselines' source memory: a shared mapping made without shmstore; the first page is
/// read only atomically, the second only with plain loads.
struct Baseline {
    shm: RawShm,
}

impl Baseline {
    fn new() -> Baseline {
        let shm = RawShm::create(&bench_name("read-baseline"), 8192);
        let b = Baseline { shm };
        for (i, w) in b.atomic::<512>().iter().enumerate() {
            w.store(i as u64, Ordering::Relaxed);
        }
        b
    }

    fn atomic<const N: usize>(&self) -> &[AtomicU64; N] {
        assert!(N * 8 <= 4096);
        // SAFETY: the first page of the live, page-aligned mapping, which only this process
        // maps and which is accessed there only through atomics.
        unsafe { &*self.shm.ptr().cast::<[AtomicU64; N]>() }
    }

    fn plain<const N: usize>(&self) -> &[u64; N] {
        assert!(N * 8 <= 4096);
        // SAFETY: the mapping is at least two pages long: 4096 is within it.
        let second_page = unsafe { self.shm.ptr().add(4096) };
        // SAFETY: the second page of the live mapping, page-aligned, `N * 8 ≤ 4096` bytes
        // (asserted); only this process maps it and nothing writes it while the reference
        // lives (it stays zero).
        unsafe { &*second_page.cast::<[u64; N]>() }
    }
}

/// One size: memcpy, relaxed copy, `Shm::read` and `ShmReader::read` of both modes.
fn bench_size<const N: usize>(
    g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    base: &Baseline,
    default: (&Shm<[u64; N]>, &ShmReader<[u64; N]>),
    in_place: (&Shm<[u64; N]>, &ShmReader<[u64; N]>),
) where
    [u64; N]: shmstore::ShmType,
{
    let plain = base.plain::<N>();
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            let v: [u64; N] = *black_box(plain);
            black_box(&v);
        })
    });
    let atomic = base.atomic::<N>();
    g.bench_function("race-free copy (relaxed AtomicU64 loads)", |b| {
        b.iter(|| {
            let v = copy_relaxed(black_box(atomic));
            black_box(&v);
        })
    });
    g.bench_function("race-free copy into a buffer", |b| {
        let mut out = [0u64; N];
        b.iter(|| {
            copy_relaxed_into(black_box(atomic), &mut out);
            black_box(&mut out);
        })
    });
    g.bench_function("Shm::read, default", |b| {
        b.iter(|| {
            let v = black_box(default.0).read();
            black_box(&v);
        })
    });
    g.bench_function("Shm::read, in_place", |b| {
        b.iter(|| {
            let v = black_box(in_place.0).read();
            black_box(&v);
        })
    });
    g.bench_function("Shm::read_into, default", |b| {
        let mut out = [0u64; N];
        b.iter(|| {
            black_box(default.0).read_into(&mut out);
            black_box(&mut out);
        })
    });
    g.bench_function("Shm::read_into, in_place", |b| {
        let mut out = [0u64; N];
        b.iter(|| {
            black_box(in_place.0).read_into(&mut out);
            black_box(&mut out);
        })
    });
    g.bench_function("ShmReader::read, default", |b| {
        b.iter(|| {
            let v = black_box(default.1).read();
            black_box(&v);
        })
    });
    g.bench_function("ShmReader::read, in_place", |b| {
        b.iter(|| {
            let v = black_box(in_place.1).read();
            black_box(&v);
        })
    });
}

/// The stop flag of the writer helper, in a raw shared mapping (first word).
fn stop_flag(ctl: &RawShm) -> &AtomicU32 {
    // SAFETY: the mapping is live, page-aligned and at least 4 bytes long; it is only accessed
    // through this atomic, and the reference is tied to `ctl`.
    unsafe { &*ctl.ptr().cast::<AtomicU32>() }
}

/// Helper role `writer` (argument `REGION,CONTROL`): rewrites the 4 KiB region back to back,
/// every word set to one increasing number, until the stop flag is set. It stops between
/// writes, never while holding the lock: killing it mid-write would leave an `in_place` region
/// waiting for a repair that only a writable handle can make.
fn writer(arg: &str) {
    pin_to_cpu(1);
    let (name, ctl) = arg.split_once(',').expect("two names");
    let ctl = RawShm::open(ctl, 4096);
    let stop = stop_flag(&ctl);
    let shm = Shm::<Page>::open(name).expect("writer: open");
    let mut i = 0u64;
    while stop.load(Ordering::Relaxed) == 0 {
        i += 1;
        let mut g = shm.lock().unwrap_or_else(PoisonError::into_inner);
        g.fill(i);
    }
}

/// What the timed reads found.
struct Distribution {
    /// Latencies of the reads that returned a value (`None` if none did).
    latencies: Option<Percentiles>,
    /// Reads that gave up (only a `read_timeout` can).
    timeouts: usize,
}

impl std::fmt::Display for Distribution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.latencies {
            Some(p) => write!(f, "{p}")?,
            None => write!(f, "no read completed")?,
        }
        if self.timeouts > 0 {
            write!(f, "; {} reads TIMED OUT", self.timeouts)?;
        }
        Ok(())
    }
}

/// Up to `TIMED_READS` individually timed reads, for at most `TIME_BUDGET`; panics on a torn
/// value. `read` returns `None` when it timed out.
fn distribution(mut read: impl FnMut() -> Option<Page>) -> Distribution {
    for _ in 0..TIMED_READS / 100 {
        black_box(&read());
    }
    let budget = Instant::now() + TIME_BUDGET;
    let mut ns = Vec::with_capacity(TIMED_READS);
    let mut timeouts = 0;
    for _ in 0..TIMED_READS {
        let t = Instant::now();
        let v = read();
        let d = t.elapsed();
        match v {
            Some(v) => {
                assert!(v.iter().all(|&w| w == v[0]), "torn read");
                black_box(&v);
                ns.push(d.as_nanos() as u64);
            }
            None => timeouts += 1,
        }
        if t > budget {
            break;
        }
    }
    Distribution {
        latencies: (!ns.is_empty()).then(|| Percentiles::of(ns)),
        timeouts,
    }
}

/// One contended case: the writer starts; a probe of 1 000 reads checks that reads complete;
/// criterion measures the mean (skipped if the probe saw a read time out: it would take
/// forever); then the distribution is measured and printed; the writer is told to stop
/// between two writes before returning (and killed by its guard if anything panics).
fn contended(
    g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    ctl: &RawShm,
    label: &str,
    region: &str,
    version: impl Fn() -> u64,
    read: impl Fn() -> Option<Page>,
) {
    let quiet = distribution(&read);
    let stop = stop_flag(ctl);
    stop.store(0, Ordering::Relaxed);
    let mut helper = Helper::spawn("writer", &format!("{region},{}", ctl.name()));
    // Wait until the writer is writing.
    let v0 = version();
    let start = Instant::now();
    while version() < v0 + 100 {
        helper.assert_running();
        assert!(start.elapsed() < Duration::from_secs(10), "writer silent");
        std::thread::yield_now();
    }
    let probe_start = Instant::now();
    let mut probe_timeouts = 0;
    let mut probe_reads = 0;
    while probe_reads < 1000 && probe_timeouts < 5 {
        probe_reads += 1;
        if read().is_none() {
            probe_timeouts += 1;
        }
    }
    let probe_time = probe_start.elapsed();
    if probe_timeouts == 0 {
        g.bench_function(label, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(&read());
                }
                start.elapsed()
            })
        });
    }
    helper.assert_running();
    let (v0, t0) = (version(), Instant::now());
    let busy = distribution(&read);
    let writes_per_s = (version() - v0) as f64 / 2.0 / t0.elapsed().as_secs_f64();
    helper.assert_running();
    stop.store(1, Ordering::Relaxed);
    assert!(
        helper.wait_exit(Duration::from_secs(10)),
        "writer did not stop"
    );
    drop(helper);
    println!("read without writer            ({label}, 4 KiB): {quiet}");
    if probe_timeouts > 0 {
        println!(
            "    criterion skipped: {probe_timeouts} of {probe_reads} probe reads under the \
             writer timed out ({probe_time:?} in all)"
        );
    }
    println!("read under back-to-back writer ({label}, 4 KiB): {busy}");
    println!(
        "    writer committed {:.2} M writes/s meanwhile",
        writes_per_s / 1e6
    );
}

fn benches(c: &mut Criterion) {
    pin_to_cpu(0);
    let names = Regions(vec![
        bench_name("read-small"),
        bench_name("read-small-inplace"),
        bench_name("read-page"),
        bench_name("read-page-inplace"),
        bench_name("read-projected-v1"),
        bench_name("read-projected-narrow"),
    ]);
    let base = Baseline::new();
    let ctl = RawShm::create(&bench_name("read-writer-control"), 4096);
    let small = Shm::<Small>::create(&names.0[0], [3; 8]).unwrap();
    let small_ip = Shm::<Small>::options()
        .in_place(true)
        .create(&names.0[1], [3; 8])
        .unwrap();
    let page = Shm::<Page>::create(&names.0[2], [3; 512]).unwrap();
    let page_ip = Shm::<Page>::options()
        .in_place(true)
        .create(&names.0[3], [3; 512])
        .unwrap();
    let small_r = Shm::<Small>::open_reader(&names.0[0]).unwrap();
    let small_ip_r = Shm::<Small>::open_reader(&names.0[1]).unwrap();
    let page_r = Shm::<Page>::open_reader(&names.0[2]).unwrap();
    let page_ip_r = Shm::<Page>::open_reader(&names.0[3]).unwrap();

    let mut g = c.benchmark_group("read 64 B");
    g.measurement_time(Duration::from_secs(3)).sample_size(30);
    bench_size(&mut g, &base, (&small, &small_r), (&small_ip, &small_ip_r));
    g.finish();

    let mut g = c.benchmark_group("read 4 KiB");
    g.measurement_time(Duration::from_secs(3)).sample_size(30);
    bench_size(&mut g, &base, (&page, &page_r), (&page_ip, &page_ip_r));
    g.finish();

    projected(c, &names);

    println!(
        "timer overhead (Instant::now + elapsed, p50): {} ns",
        common::timer_overhead_ns()
    );
    let mut g = c.benchmark_group("read 4 KiB under back-to-back writer");
    g.measurement_time(Duration::from_secs(3)).sample_size(30);
    contended(
        &mut g,
        &ctl,
        "Shm::read, default",
        &names.0[2],
        || page.version(),
        || Some(page.read()),
    );
    contended(
        &mut g,
        &ctl,
        "Shm::read, in_place",
        &names.0[3],
        || page_ip.version(),
        || Some(page_ip.read()),
    );
    contended(
        &mut g,
        &ctl,
        "ShmReader::read_timeout(1 s), default",
        &names.0[2],
        || page.version(),
        || page_r.read_timeout(READER_TIMEOUT).ok(),
    );
    contended(
        &mut g,
        &ctl,
        "ShmReader::read_timeout(1 s), in_place",
        &names.0[3],
        || page_ip.version(),
        || page_ip_r.read_timeout(READER_TIMEOUT).ok(),
    );
    g.finish();
    drop(names);
}

fn main() {
    common::start_second_thread();
    if let Some((role, arg)) = helper_role() {
        match role.as_str() {
            "writer" => writer(&arg),
            other => panic!("unknown helper role {other}"),
        }
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
}
