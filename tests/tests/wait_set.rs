//! `WaitSet` between real processes, on every backend: a waiter registered on three value
//! regions, an MPMC queue and an SPSC byte channel wakes for exactly the source that changed,
//! each in turn, with `futex_waitv` and on the path of kernels without it; a hammer publishes
//! at seeded random moments thousands of times while the waiter loops wait and re-arm, and
//! every publish is seen (the helper's waits have no one-second safety slice, so a lost
//! wake-up hangs: `PATIENCE` reports it); a waiter SIGKILLed while counted in costs the next
//! publish one wake call, and none after (seen in the sleeper count words); a region migrated
//! by another process counts as ready.
//!
//! The waiter is known to be asleep when `/proc/PID/syscall` shows it inside `futex_waitv`
//! (or `futex`, on the fallback path): a synchronisation, never a timing assertion.

use std::time::{Duration, Instant};

use shmstore::inspect::Inspector;
use shmstore::{QueueMode, Shm, ShmChannel};
use shmstore_tests::{helper, Backend, Counter, Helper, Msg, MsgQueue, Place, PATIENCE};

/// The sleeper count's bits of a count word (FORMAT.md): the rest is its generation.
const COUNT_BITS: u32 = 0xffff;

/// A small seeded generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

fn seed() -> u64 {
    let seed = std::env::var("SHMSTORE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.map_or(1, |d| d.as_nanos() as u64) ^ u64::from(std::process::id())
        })
        | 1;
    eprintln!("wait_set: seed {seed} (replay with SHMSTORE_TEST_SEED={seed})");
    seed
}

/// Returns once the helper's main thread sleeps in `futex_waitv` or `futex` (read from
/// `/proc/PID/syscall`); panics after `PATIENCE`. Returns at once where that file cannot be
/// read (a Yama ptrace scope that forbids it): the tests do not depend on it for their
/// verdicts, only for making the waiter sleep before each publish.
fn until_asleep(waiter: &Helper) {
    let path = format!("/proc/{}/syscall", waiter.pid());
    let sleeping = [nix::libc::SYS_futex_waitv, nix::libc::SYS_futex].map(|n| n.to_string());
    let by = Instant::now() + PATIENCE;
    loop {
        let Ok(now) = std::fs::read_to_string(&path) else {
            return;
        };
        if let Some(call) = now.split_whitespace().next() {
            if sleeping.iter().any(|s| s == call) {
                return;
            }
        }
        assert!(Instant::now() < by, "the waiter never went to sleep: {now}");
        std::thread::yield_now();
    }
}

fn create_counter(place: &Place) -> Shm<Counter> {
    Shm::<Counter>::create(place, Counter::at(0)).unwrap()
}

fn bump(value: &Shm<Counter>) {
    let mut guard = value.lock().unwrap();
    let next = guard.count + 1;
    *guard = Counter::at(next);
}

/// Three values, an MPMC queue and an SPSC channel; each in turn changes while the waiter
/// sleeps, and the waiter reports exactly that one. `how`: `waitv` or `fallback`.
fn wakes_for_exactly_the_one_that_changed(backend: Backend, how: &str) {
    let values: Vec<Place> = (0..3)
        .map(|i| Place::new(backend, &format!("ws-v{i}")))
        .collect();
    let queue_place = Place::new(backend, "ws-q");
    let channel_place = Place::new(backend, "ws-c");
    let handles: Vec<Shm<Counter>> = values.iter().map(create_counter).collect();
    let queue = MsgQueue::create(&queue_place).unwrap();
    let channel = ShmChannel::options()
        .queue_mode(QueueMode::Spsc)
        .capacity(4096)
        .max_message(64)
        .create(&channel_place)
        .unwrap();
    const ROUNDS: u64 = 3;
    let mut waiter = helper!(
        "wait-set-five",
        how,
        values[0],
        values[1],
        values[2],
        queue_place,
        channel_place,
        5 * ROUNDS
    );
    waiter.expect("armed");
    for round in 0..ROUNDS {
        for source in 0..5 {
            until_asleep(&waiter);
            match handles.get(source) {
                Some(value) => bump(value),
                None if source == 3 => queue.push(Msg::new(0, round)).unwrap(),
                None => channel.send(b"job").unwrap(),
            }
            waiter.expect(&format!("ready {source}"));
        }
    }
    waiter.finish_ok();
}

fn wakes_for_exactly_the_one_that_changed_with_futex_waitv(backend: Backend) {
    wakes_for_exactly_the_one_that_changed(backend, "waitv");
}

fn wakes_for_exactly_the_one_that_changed_without_futex_waitv(backend: Backend) {
    wakes_for_exactly_the_one_that_changed(backend, "fallback");
}

/// Thousands of rounds: once the waiter acknowledged round k - 1, the test spins a seeded
/// random while (so that the publish lands anywhere in the waiter's loop: writing its
/// acknowledgement, arming, checking, or asleep), then publishes round k on the value or the
/// queue. The waiter must acknowledge every round; with no safety slice in the helper, a lost
/// wake-up is a hang, which `PATIENCE` turns into a failure.
fn misses_no_publish_between_registration_and_sleep(backend: Backend, how: &str) {
    const ROUNDS: u64 = 3000;
    let mut rng = Rng(seed());
    let value_place = Place::new(backend, "ws-hv");
    let queue_place = Place::new(backend, "ws-hq");
    let ack_place = Place::new(backend, "ws-ha");
    let value = create_counter(&value_place);
    let queue = MsgQueue::create(&queue_place).unwrap();
    let ack = create_counter(&ack_place);
    let mut waiter = helper!(
        "wait-set-hammer",
        how,
        value_place,
        queue_place,
        ack_place,
        ROUNDS
    );
    waiter.expect("armed");
    let mut since = ack.version();
    for round in 1..=ROUNDS {
        for _ in 0..rng.below(20_000) {
            std::hint::spin_loop();
        }
        if rng.below(2) == 0 {
            *value.lock().unwrap() = Counter::at(round);
        } else {
            queue.push(Msg::new(0, round)).unwrap();
        }
        while ack.read().count < round {
            since = ack
                .wait_for_change(since, Some(PATIENCE))
                .unwrap_or_else(|e| panic!("round {round} was never seen: {e}"));
        }
    }
    waiter.expect("done");
    waiter.finish_ok();
}

fn misses_no_publish_between_registration_and_sleep_with_futex_waitv(backend: Backend) {
    misses_no_publish_between_registration_and_sleep(backend, "waitv");
}

/// The waiter as on a kernel without `futex_waitv` (1 ms slices on its first source), the
/// publisher (this process) with it: the publisher clears counts the waiter is in, and the
/// waiter, which cannot sleep on count words, must still see every round.
fn misses_no_publish_between_registration_and_sleep_without_futex_waitv(backend: Backend) {
    misses_no_publish_between_registration_and_sleep(backend, "fallback");
}

/// A waiter SIGKILLed while asleep in a wait set stays counted in the value's `waiters` and
/// the queue's "not empty" sleepers; the next publish on each wakes nobody and clears the
/// count, so the publishes after it make no wake call (a publisher calls only for a count
/// that is not 0). Before, the count stayed at 1 for good.
fn a_waiter_killed_while_registered_stops_costing_publishes(backend: Backend) {
    let value_place = Place::new(backend, "ws-kv");
    let queue_place = Place::new(backend, "ws-kq");
    let value = create_counter(&value_place);
    let queue = MsgQueue::create(&queue_place).unwrap();
    let waiters = || {
        Inspector::open(&value_place)
            .unwrap()
            .header_fields()
            .waiters
    };
    let not_empty_sleepers = || queue.__sleeper_words()[0];
    let waiter = helper!("wait-set-sleep", value_place, queue_place);
    let mut waiter = waiter;
    waiter.expect("armed");
    until_asleep(&waiter);
    let by = Instant::now() + PATIENCE;
    while waiters() & COUNT_BITS == 0 || not_empty_sleepers() & COUNT_BITS == 0 {
        assert!(Instant::now() < by, "the waiter never counted itself in");
        std::thread::yield_now();
    }
    assert_eq!(waiters() & COUNT_BITS, 1, "the waiter is counted in");
    assert_eq!(not_empty_sleepers() & COUNT_BITS, 1);
    waiter.kill();
    assert_eq!(waiters() & COUNT_BITS, 1, "a dead waiter stays counted");
    bump(&value);
    queue.push(Msg::new(0, 1)).unwrap();
    assert_eq!(
        waiters() & COUNT_BITS,
        0,
        "the publish that woke nobody left the dead waiter counted"
    );
    assert_eq!(not_empty_sleepers() & COUNT_BITS, 0);
    for round in 2..100 {
        bump(&value);
        queue.push(Msg::new(0, round)).unwrap();
        assert_eq!(waiters() & COUNT_BITS, 0);
        assert_eq!(not_empty_sleepers() & COUNT_BITS, 0);
    }
}

/// A value region migrated to a wider type (by a writer of that type, in another process)
/// while a set waits on it through a writable handle and a reader counts as ready for both:
/// the wait ends, and the handles' next reads follow the migration.
fn a_migrated_region_is_ready(backend: Backend) {
    use shmstore::value::FixedStr;
    use shmstore_tests::config_versions::{ConfigV1, LevelV1};
    let place = Place::new(backend, "ws-migrate");
    let old = Shm::<ConfigV1>::create(
        &place,
        ConfigV1 {
            workers: 4,
            timeout_ms: 500,
            service: FixedStr::new("gateway").expect("fits"),
            level: LevelV1::Warn.into(),
            _pad: [0; 3],
        },
    )
    .unwrap();
    let reader = Shm::<ConfigV1>::open_reader(&place).unwrap();
    let mut set = shmstore::WaitSet::new();
    let keys = [
        set.add_value(&old, old.version()).unwrap(),
        set.add_value(&reader, reader.version()).unwrap(),
    ];
    set.set_timeout(PATIENCE);
    std::thread::scope(|s| {
        s.spawn(|| {
            // `config-new-writer NAME plus RETRIES` migrates the region to `ConfigV1Plus`.
            helper!("config-new-writer", place, "plus", 3).finish_ok();
        });
        let ready = set.wait().unwrap();
        assert!(!ready.timed_out(), "the migration did not end the wait");
        // Whichever came first, both are ready once the helper is done.
    });
    assert_eq!(set.wait().unwrap().keys(), keys);
    assert_eq!(old.read().workers, 4);
    assert_eq!(reader.read().workers, 4);
    // Both handles followed; once told so, the set waits on the new region.
    set.set_since(keys[0], old.version());
    set.set_since(keys[1], reader.version());
    set.set_timeout(Duration::from_millis(20));
    assert!(set.wait().unwrap().timed_out());
}

shmstore_tests::for_each_backend!(
    a_migrated_region_is_ready [sysv: "a System V segment cannot be migrated (NotMigratable)"],
    wakes_for_exactly_the_one_that_changed_with_futex_waitv,
    wakes_for_exactly_the_one_that_changed_without_futex_waitv,
    misses_no_publish_between_registration_and_sleep_with_futex_waitv,
    misses_no_publish_between_registration_and_sleep_without_futex_waitv,
    a_waiter_killed_while_registered_stops_costing_publishes,
);
