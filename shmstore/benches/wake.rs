//! `wait_for_change` wake latency against a raw futex (DESIGN §11), between two processes,
//! measured in one run: `cargo bench -p shmstore --bench wake`.
//!
//! The bench process (pinned to CPU 0) pings; a helper process (this binary re-executed with a
//! role, pinned to CPU 1) sleeps until the ping, then answers on a second word or region.
//!
//! - Sleeping waiter: the pinger waits 200 µs after each answer (the waiter spins at most
//!   ~20 µs, so it is asleep in the futex), then takes a `CLOCK_MONOTONIC` timestamp, stores it
//!   in shared memory and publishes. The woken side reads the clock as soon as its wait returns
//!   and sends the difference back. Criterion's figure is the mean of those one-way
//!   wake-to-wakeup latencies (`iter_custom` returns their sum). Then 5 000 of each kind,
//!   interleaved (so that both meet the same machine), are printed as distributions.
//! - Back to back: the round trip ping → answer, with no pause (a `wait_for_change` waiter
//!   usually catches the change while spinning).
//!
//! shmstore side: two `Shm<Msg>` regions; a publish is `lock()`, write, drop (commit + wake).
//! Raw side: two 32-bit words in a shared mapping made with `shm_open` + `ftruncate` + `mmap`,
//! a store and a shared `FUTEX_WAKE` to publish, `FUTEX_WAIT` to sleep.

mod common;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use common::{
    bench_name, futex_wait_change, futex_wake, helper_role, mono_ns, pin_to_cpu, spin_until,
    Helper, Percentiles, RawShm, Regions,
};
use criterion::{BenchmarkGroup, Criterion, SamplingMode};
use shmstore::{Shm, ShmType};

/// A ping or an answer: the ping's sequence number and send time; the answer's measured latency.
#[derive(ShmType, Clone, Copy, Debug)]
#[repr(C)]
struct Msg {
    seq: u64,
    t0_ns: u64,
    latency_ns: u64,
}

/// How long the pinger waits after an answer before the next ping, in the sleeping case.
const GAP: Duration = Duration::from_micros(200);
/// How long a raw "spin, then futex" waiter spins: what `wait_for_change` does.
const RAW_SPIN: Duration = Duration::from_micros(20);
/// A helper that does not answer within this has died: fail instead of hanging.
const PATIENCE: Duration = Duration::from_secs(10);
/// One-way latencies of each kind measured for the printed distributions.
const TIMED_WAKES: usize = 5_000;

/// The raw side's shared words, each on its own cache line.
#[repr(C, align(64))]
struct Line<T>(T);

#[repr(C)]
struct RawWords {
    ping: Line<AtomicU32>,
    pong: Line<AtomicU32>,
    t0_ns: Line<AtomicU64>,
    latency_ns: Line<AtomicU64>,
}

fn raw_words(shm: &RawShm) -> &RawWords {
    const { assert!(std::mem::size_of::<RawWords>() <= 4096) };
    // SAFETY: the mapping is at least 4096 bytes, page-aligned and zero-filled at creation;
    // atomics accept any bytes and are shared through `&` only; the reference is tied to `shm`.
    unsafe { &*shm.ptr().cast::<RawWords>() }
}

/// One party of the ping-pong, seen from the pinger.
trait Pinger {
    /// Publishes ping `seq` with its send time, waits for the answer, returns the one-way
    /// latency the other side measured.
    fn round(&mut self, seq: u64) -> u64;
}

/// The raw futex pinger.
struct RawPinger<'a> {
    w: &'a RawWords,
    spin: Option<Duration>,
}

impl RawPinger<'_> {
    fn wait_ready(&self) {
        futex_wait_change(&self.w.pong.0, 0, self.spin, PATIENCE);
    }
}

impl Pinger for RawPinger<'_> {
    #[inline]
    fn round(&mut self, _seq: u64) -> u64 {
        let w = self.w;
        let seen = w.pong.0.load(Ordering::Acquire);
        w.t0_ns.0.store(mono_ns(), Ordering::Relaxed);
        w.ping.0.fetch_add(1, Ordering::Release);
        futex_wake(&w.ping.0);
        futex_wait_change(&w.pong.0, seen, self.spin, PATIENCE);
        w.latency_ns.0.load(Ordering::Relaxed)
    }
}

/// The shmstore pinger.
struct ShmPinger {
    ping: Shm<Msg>,
    pong: Shm<Msg>,
}

impl ShmPinger {
    fn wait_ready(&self, seen: u64) {
        self.pong.wait_for_change(seen, Some(PATIENCE)).unwrap();
    }
}

impl Pinger for ShmPinger {
    #[inline]
    fn round(&mut self, seq: u64) -> u64 {
        let seen = self.pong.version();
        let t0 = mono_ns();
        {
            let mut g = self.ping.lock().unwrap_or_else(PoisonError::into_inner);
            g.seq = seq;
            g.t0_ns = t0;
        }
        self.pong
            .wait_for_change(seen, Some(PATIENCE))
            .expect("no answer");
        let answer = self.pong.read();
        debug_assert_eq!(answer.seq, seq);
        answer.latency_ns
    }
}

/// Helper role `pong-raw` / `pong-raw-spin`: answers every ping on the raw words.
fn raw_ponger(name: &str, spin: Option<Duration>) {
    pin_to_cpu(1);
    let shm = RawShm::open(name, 4096);
    let w = raw_words(&shm);
    let mut seen = w.ping.0.load(Ordering::Acquire);
    w.pong.0.fetch_add(1, Ordering::Release);
    futex_wake(&w.pong.0);
    loop {
        seen = futex_wait_change(&w.ping.0, seen, spin, Duration::from_secs(3600));
        let t1 = mono_ns();
        let latency = t1.saturating_sub(w.t0_ns.0.load(Ordering::Relaxed));
        w.latency_ns.0.store(latency, Ordering::Relaxed);
        w.pong.0.fetch_add(1, Ordering::Release);
        futex_wake(&w.pong.0);
    }
}

/// Helper role `pong-shm`: answers every ping with `wait_for_change` and a locked write.
fn shm_ponger(arg: &str) {
    pin_to_cpu(1);
    let (ping, pong) = arg.split_once(',').expect("two names");
    let ping = Shm::<Msg>::open(ping).expect("ponger: open ping");
    let pong = Shm::<Msg>::open(pong).expect("ponger: open pong");
    let mut seen = ping.version();
    pong.lock().unwrap_or_else(PoisonError::into_inner).seq = 0;
    loop {
        seen = ping.wait_for_change(seen, None).expect("no timeout");
        let t1 = mono_ns();
        let m = ping.read();
        let mut g = pong.lock().unwrap_or_else(PoisonError::into_inner);
        g.seq = m.seq;
        g.latency_ns = t1.saturating_sub(m.t0_ns);
    }
}

/// Sleeping-waiter measurement: the sum of `iters` one-way latencies, each after a pause.
fn sleeping(p: &mut impl Pinger, seq: &mut u64, iters: u64) -> Duration {
    let mut total = 0u64;
    for _ in 0..iters {
        spin_until(Instant::now() + GAP);
        *seq += 1;
        total += p.round(*seq);
    }
    Duration::from_nanos(total)
}

/// Back-to-back measurement: the time of `iters` round trips.
fn back_to_back(p: &mut impl Pinger, seq: &mut u64, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        *seq += 1;
        p.round(*seq);
    }
    start.elapsed()
}

/// The printed distributions of `TIMED_WAKES` sleeping one-way latencies of each kind,
/// interleaved (raw, shmstore, raw, ...) so that both see the same machine at the same time.
fn sleeping_distributions(raw: &mut RawPinger<'_>, shm: &mut ShmPinger) -> [Percentiles; 2] {
    let (mut r, mut s) = (Vec::new(), Vec::new());
    let mut seq = 1 << 32;
    for _ in 0..TIMED_WAKES {
        seq += 1;
        spin_until(Instant::now() + GAP);
        r.push(raw.round(seq));
        spin_until(Instant::now() + GAP);
        s.push(shm.round(seq));
    }
    [Percentiles::of(r), Percentiles::of(s)]
}

type Group<'a> = BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// Runs `f` with a raw pinger whose helper waits with `spin` (none: sleep at once).
fn with_raw<R>(spin: Option<Duration>, f: impl FnOnce(&mut RawPinger<'_>) -> R) -> R {
    let name = bench_name("wake-raw");
    let shm = RawShm::create(&name, 4096);
    let w = raw_words(&shm);
    let _helper = Helper::spawn(
        if spin.is_some() {
            "pong-raw-spin"
        } else {
            "pong-raw"
        },
        &name,
    );
    let mut p = RawPinger { w, spin };
    p.wait_ready();
    f(&mut p)
}

/// Runs `f` with a shmstore pinger and its helper.
fn with_shm<R>(f: impl FnOnce(&mut ShmPinger) -> R) -> R {
    let names = Regions(vec![bench_name("wake-ping"), bench_name("wake-pong")]);
    let zero = Msg {
        seq: 0,
        t0_ns: 0,
        latency_ns: 0,
    };
    let ping = Shm::<Msg>::create(&names.0[0], zero).unwrap();
    let pong = Shm::<Msg>::create(&names.0[1], zero).unwrap();
    let seen = pong.version();
    let _helper = Helper::spawn("pong-shm", &names.0.join(","));
    let mut p = ShmPinger { ping, pong };
    p.wait_ready(seen);
    f(&mut p)
}

fn benches(c: &mut Criterion) {
    pin_to_cpu(0);
    let mut g: Group<'_> = c.benchmark_group("wake, sleeping waiter (one way)");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(3));
    with_raw(None, |p| {
        let mut seq = 0;
        g.bench_function("raw futex", |b| {
            b.iter_custom(|iters| sleeping(p, &mut seq, iters))
        });
    });
    with_shm(|p| {
        let mut seq = 0;
        g.bench_function("wait_for_change", |b| {
            b.iter_custom(|iters| sleeping(p, &mut seq, iters))
        });
    });
    g.finish();
    let [raw, shm] = with_raw(None, |r| with_shm(|s| sleeping_distributions(r, s)));

    let mut g: Group<'_> = c.benchmark_group("ping-pong round trip, back to back");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    with_raw(None, |p| {
        let mut seq = 0;
        g.bench_function("raw futex", |b| {
            b.iter_custom(|iters| back_to_back(p, &mut seq, iters))
        });
    });
    with_raw(Some(RAW_SPIN), |p| {
        let mut seq = 0;
        g.bench_function("raw futex, spin 20 us first", |b| {
            b.iter_custom(|iters| back_to_back(p, &mut seq, iters))
        });
    });
    with_shm(|p| {
        let mut seq = 0;
        g.bench_function("wait_for_change + locked write", |b| {
            b.iter_custom(|iters| back_to_back(p, &mut seq, iters))
        });
    });
    g.finish();

    println!("wake, sleeping waiter, one way, interleaved runs:");
    println!("    raw futex:       {raw}");
    println!("    wait_for_change: {shm}");
    println!(
        "    ratio wait_for_change / raw futex: p50 {:.2}, mean {:.2}",
        shm.p50 as f64 / raw.p50 as f64,
        shm.mean / raw.mean
    );
}

fn main() {
    common::start_second_thread();
    if let Some((role, arg)) = helper_role() {
        match role.as_str() {
            "pong-raw" => raw_ponger(&arg, None),
            "pong-raw-spin" => raw_ponger(&arg, Some(RAW_SPIN)),
            "pong-shm" => shm_ponger(&arg),
            other => panic!("unknown helper role {other}"),
        }
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
}
