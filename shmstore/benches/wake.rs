//! `wait_for_change` wake latency against a raw futex (DESIGN §11), between two processes,
//! measured in one run: `cargo bench -p shmstore --bench wake`; with `--features tokio`, the
//! same run also measures `changed().await`.
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
//! The ways of waiting for many things (issue 18), each a helper waiting on the ping region
//! in its own way, and answering as the `wait_for_change` helper does (the same pinger, the
//! same publishes): a `WaitSet` over the ping region plus two idle sources (another value
//! region and a queue's "not empty"); an `ShmEvents` descriptor watching the same three,
//! slept on with `poll(2)` (the process's notifier thread wakes, then signals the
//! descriptor); `changed().await` on a current-thread tokio runtime (the notifier thread
//! wakes the task's waker). Their sleeping distributions are interleaved with the raw futex's
//! and `wait_for_change`'s.
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
use shmstore::{QueueEvent, Shm, ShmQueue, ShmType, WaitSet};

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

/// How a shmstore helper sleeps until the ping region moves past a version.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Waiting {
    /// `wait_for_change` (role `pong-shm`).
    WaitForChange,
    /// A `WaitSet` with the ping region and two idle sources (role `pong-wait-set`).
    WaitSet,
    /// An `ShmEvents` watching the same three, under `poll(2)` (role `pong-events`).
    Events,
    /// `changed().await` on a current-thread tokio runtime (role `pong-await`).
    #[cfg(feature = "tokio")]
    Await,
}

impl Waiting {
    const ALL: &[(Waiting, &str, &str)] = &[
        (Waiting::WaitForChange, "pong-shm", "wait_for_change"),
        (
            Waiting::WaitSet,
            "pong-wait-set",
            "WaitSet (region + 2 idle sources)",
        ),
        (
            Waiting::Events,
            "pong-events",
            "ShmEvents under poll(2) (same 3 sources)",
        ),
        #[cfg(feature = "tokio")]
        (
            Waiting::Await,
            "pong-await",
            "changed().await, current-thread tokio",
        ),
    ];

    fn role(self) -> &'static str {
        Self::ALL.iter().find(|w| w.0 == self).expect("listed").1
    }
}

/// The idle sources of the many-source helpers: never published to while they wait.
type IdleQueue = ShmQueue<u64, 16>;

/// The answer to the ping just seen: its sequence number and the latency the ponger measured.
fn answer(ping: &Shm<Msg>, pong: &Shm<Msg>, t1: u64) {
    let m = ping.read();
    let mut g = pong.lock().unwrap_or_else(PoisonError::into_inner);
    g.seq = m.seq;
    g.latency_ns = t1.saturating_sub(m.t0_ns);
}

/// Helper roles `pong-shm`, `pong-wait-set`, `pong-events`, `pong-await`: answer every ping
/// with a locked write, after waiting for it as `waiting` says. `arg`: the ping, pong, idle
/// value and idle queue names, comma-separated.
fn shm_ponger(arg: &str, waiting: Waiting) {
    pin_to_cpu(1);
    let names: Vec<&str> = arg.split(',').collect();
    let [ping, pong, idle, idle_queue] = names[..] else {
        panic!("four names")
    };
    let ping = Shm::<Msg>::open(ping).expect("ponger: open ping");
    let pong = Shm::<Msg>::open(pong).expect("ponger: open pong");
    let idle = Shm::<Msg>::open(idle).expect("ponger: open idle value");
    let idle_queue = IdleQueue::open(idle_queue).expect("ponger: open idle queue");
    let mut seen = ping.version();
    let ready = || pong.lock().unwrap_or_else(PoisonError::into_inner).seq = 0;
    match waiting {
        Waiting::WaitForChange => {
            ready();
            loop {
                seen = ping.wait_for_change(seen, None).expect("no timeout");
                answer(&ping, &pong, mono_ns());
            }
        }
        Waiting::WaitSet => {
            let mut set = WaitSet::new();
            let key = set.add_value(&ping, seen).expect("add ping");
            set.add_value(&idle, idle.version()).expect("add idle");
            set.add_queue(&idle_queue, QueueEvent::NotEmpty)
                .expect("add idle queue");
            ready();
            loop {
                let woke = set.wait().expect("wait");
                let t1 = mono_ns();
                assert!(woke.contains(key), "only the ping region moves");
                // The version woken for, taken before the answer: once answered, the pinger
                // may publish the next ping at any time, and that one must wake the next wait.
                set.set_since(key, ping.version());
                answer(&ping, &pong, t1);
            }
        }
        Waiting::Events => events_ponger(&ping, &pong, &idle, &idle_queue, ready),
        #[cfg(feature = "tokio")]
        Waiting::Await => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            ready();
            runtime.block_on(async {
                loop {
                    seen = ping.changed(seen).await.expect("changed");
                    answer(&ping, &pong, mono_ns());
                }
            })
        }
    }
}

/// The `pong-events` helper's loop: `poll(2)` on an `ShmEvents`, then its report.
fn events_ponger(
    ping: &Shm<Msg>,
    pong: &Shm<Msg>,
    idle: &Shm<Msg>,
    idle_queue: &IdleQueue,
    ready: impl FnOnce(),
) -> ! {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;

    let mut events = shmstore::ShmEvents::new().expect("events");
    let key = events.add_value(ping, ping.version()).expect("watch ping");
    events.add_value(idle, idle.version()).expect("watch idle");
    events
        .add_queue(idle_queue, shmstore::QueueEvent::NotEmpty)
        .expect("watch idle queue");
    ready();
    loop {
        let mut fds = [PollFd::new(events.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::NONE).expect("poll");
        let t1 = mono_ns();
        let reports = events.ready();
        // A value's watch moves on to each version it reports: nothing to re-arm.
        if reports.iter().any(|(k, _)| *k == key) {
            answer(ping, pong, t1);
        }
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
/// interleaved (raw, shmstore, ..., raw, shmstore, ...) so that all see the same machine at
/// the same time.
fn sleeping_distributions(pingers: &mut [&mut dyn Pinger]) -> Vec<Percentiles> {
    let mut latencies = vec![Vec::with_capacity(TIMED_WAKES); pingers.len()];
    let mut seq = 1 << 32;
    for _ in 0..TIMED_WAKES {
        seq += 1;
        for (pinger, latencies) in pingers.iter_mut().zip(&mut latencies) {
            spin_until(Instant::now() + GAP);
            latencies.push(pinger.round(seq));
        }
    }
    latencies.into_iter().map(Percentiles::of).collect()
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

/// Runs `f` with a shmstore pinger and its helper, which waits as `waiting` says.
fn with_shm<R>(waiting: Waiting, f: impl FnOnce(&mut ShmPinger) -> R) -> R {
    let role = waiting.role();
    let names = Regions(
        ["ping", "pong", "idle", "idle-queue"]
            .map(|what| bench_name(&format!("wake-{role}-{what}")))
            .to_vec(),
    );
    let zero = Msg {
        seq: 0,
        t0_ns: 0,
        latency_ns: 0,
    };
    let ping = Shm::<Msg>::create(&names.0[0], zero).unwrap();
    let pong = Shm::<Msg>::create(&names.0[1], zero).unwrap();
    let _idle = Shm::<Msg>::create(&names.0[2], zero).unwrap();
    let _idle_queue = IdleQueue::create(&names.0[3]).unwrap();
    let seen = pong.version();
    let _helper = Helper::spawn(role, &names.0.join(","));
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
    for &(waiting, _, label) in Waiting::ALL {
        with_shm(waiting, |p| {
            let mut seq = 0;
            g.bench_function(label, |b| {
                b.iter_custom(|iters| sleeping(p, &mut seq, iters))
            });
        });
    }
    g.finish();
    let distributions = with_raw(None, |raw| {
        with_shm(Waiting::WaitForChange, |shm| {
            with_shm(Waiting::WaitSet, |set| {
                with_shm(Waiting::Events, |events| {
                    #[cfg(feature = "tokio")]
                    return with_shm(Waiting::Await, |awaiting| {
                        let pingers: [&mut dyn Pinger; 5] = [raw, shm, set, events, awaiting];
                        sleeping_distributions(&mut { pingers })
                    });
                    #[cfg(not(feature = "tokio"))]
                    {
                        let pingers: [&mut dyn Pinger; 4] = [raw, shm, set, events];
                        sleeping_distributions(&mut { pingers })
                    }
                })
            })
        })
    });

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
    with_shm(Waiting::WaitForChange, |p| {
        let mut seq = 0;
        g.bench_function("wait_for_change + locked write", |b| {
            b.iter_custom(|iters| back_to_back(p, &mut seq, iters))
        });
    });
    g.finish();

    let raw = &distributions[0];
    println!("wake, sleeping waiter in another process, one way, interleaved runs:");
    println!("    {:<42} {raw}", "raw futex:");
    for (shm, &(_, _, label)) in distributions[1..].iter().zip(Waiting::ALL) {
        println!("    {:<42} {shm}", format!("{label}:"));
    }
    for (shm, &(_, _, label)) in distributions[1..].iter().zip(Waiting::ALL) {
        println!(
            "    ratio to the raw futex, {label}: p50 {:.2}, p99 {:.2}, mean {:.2}",
            shm.p50 as f64 / raw.p50 as f64,
            shm.p99 as f64 / raw.p99 as f64,
            shm.mean / raw.mean
        );
    }
    if cfg!(not(feature = "tokio")) {
        println!("    (changed().await: run with --features tokio)");
    }
    println!("    command: cargo bench -p shmstore --features tokio --bench wake -- --quick");
}

fn main() {
    common::start_second_thread();
    if let Some((role, arg)) = helper_role() {
        match role.as_str() {
            "pong-raw" => raw_ponger(&arg, None),
            "pong-raw-spin" => raw_ponger(&arg, Some(RAW_SPIN)),
            other => match Waiting::ALL.iter().find(|w| w.1 == other) {
                Some(&(waiting, _, _)) => shm_ponger(&arg, waiting),
                None => panic!("unknown helper role {other}"),
            },
        }
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
}
