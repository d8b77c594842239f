//! Torture: worker processes SIGKILLed at random moments, for a bounded time.
//!
//! Ignored by default; run with
//! `SHMSTORE_TORTURE_SECS=8 cargo test -p shmstore-tests --test torture -- --ignored`.
//! `SHMSTORE_TORTURE_SECS` (default 20) bounds the whole file: the default-mode test and the
//! `in_place` test each get 40% of it, the creator test 20%, so even run one after the other
//! (`--test-threads=1`) they end within the budget plus start-up and shutdown.
//! `SHMSTORE_TORTURE_SEED` replays a run (every test prints its seed).
//!
//! The payload is a [`Tally`]: each update adds 1 to `total`, pauses, then adds 1 to the
//! worker's own slot, so `total == sum(per_worker)` in every committed value and a kill between
//! the two writes leaves `total` one ahead in the working copy.
//!
//! - Default mode: six `tally-worker`s update the region while the test kills a random one
//!   every 1–4 ms and starts a replacement; two `tally-reader`s check every lock-free
//!   snapshot. Every lock must find a consistent value (the dead holder rolled back) and never
//!   a poison.
//! - `in_place`: the same, but a kill mid-update poisons the region. The next locker checks
//!   that the value is off by 0 or 1 (`total - sum`), repairs it with `total = sum(per_worker)`
//!   — the slot is written last, so it is the commit record of an update and the half-done
//!   update is dropped — and clears the poison while still holding the lock. Readers check only
//!   snapshots taken while the region was not poisoned, before and after the read; a
//!   snapshot that is inconsistent anyway is excused only if a version was published during
//!   the read (a poisoned value, published by the recovery, repaired and un-poisoned between
//!   the read and the second poison check), and the excuses are counted and printed.
//! - Creators: rounds of four `tally-create` processes racing `open_or_create` on a fresh
//!   name with a slow init (~1 ms) that stores a per-process token, some killed at random
//!   moments; then the test's own `open_or_create` must succeed, every process that opened the
//!   object must have seen the same token, and at most one of them ran its init.
//!
//! Deadlocks fail instead of hanging: workers lock with a 10 s timeout (exit status 4), the
//! creators open with a 10 s open timeout, and the test's own locks are bounded the same way.

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use shmstore::Shm;
use shmstore_tests::{helper, region, Helper, Tally, TALLY_WORKERS};

const READERS: usize = 2;
const BOUND: Duration = Duration::from_secs(10);

/// The whole file's budget, from `SHMSTORE_TORTURE_SECS` (default 20).
fn budget() -> Duration {
    let secs: f64 = std::env::var("SHMSTORE_TORTURE_SECS")
        .ok()
        .map(|s| {
            s.parse()
                .expect("SHMSTORE_TORTURE_SECS: a number of seconds")
        })
        .unwrap_or(20.0);
    Duration::from_secs_f64(secs)
}

/// xorshift64*: enough randomness for kill timings, and replayable from its seed.
struct Rng(u64);

impl Rng {
    fn new(test: &str) -> Rng {
        let seed = std::env::var("SHMSTORE_TORTURE_SEED")
            .ok()
            .map(|s| s.parse().expect("SHMSTORE_TORTURE_SEED: a u64"))
            .unwrap_or_else(|| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap();
                now.as_nanos() as u64 ^ u64::from(std::process::id()) << 40
            })
            | 1;
        eprintln!("torture {test}: seed {seed} (SHMSTORE_TORTURE_SEED={seed} replays it)");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

fn killed_by_sigkill(status: ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(nix::libc::SIGKILL)
}

/// What the workers of one region reported.
#[derive(Default, Debug)]
struct Seen {
    kills: u64,
    poisons: u64,
    repaired_off_by_one: u64,
    finished_updates: u64,
}

impl Seen {
    /// Takes in the lines of a worker (killed or finished), failing on any violation.
    fn absorb(&mut self, what: &str, status: ExitStatus, lines: &[String], killed: bool) {
        for line in lines {
            if let Some(diff) = line.strip_prefix("repaired ") {
                self.poisons += 1;
                if diff == "1" {
                    self.repaired_off_by_one += 1;
                }
            } else if let Some(n) = line.strip_prefix("done ") {
                self.finished_updates += n.parse::<u64>().expect("done COUNT");
            } else {
                panic!("{what}: unexpected line {line:?} (status {status}; all: {lines:?})");
            }
        }
        if killed {
            assert!(
                killed_by_sigkill(status) || status.success(),
                "{what} died on its own before the kill: {status}; output {lines:?}"
            );
        } else {
            assert!(
                status.success(),
                "{what} failed: {status}; output {lines:?}"
            );
        }
    }
}

/// Six workers and two readers on a fresh `Tally` region, a random worker killed and replaced
/// every 1–4 ms for `duration`; returns what was seen and the final value.
fn kill_workers(tag: &str, in_place: bool, duration: Duration) -> (Seen, Tally) {
    let (name, _cleanup) = region(tag);
    let shm = Shm::<Tally>::options()
        .in_place(in_place)
        .create(
            &name,
            Tally {
                total: 0,
                per_worker: [0; TALLY_WORKERS],
            },
        )
        .unwrap();
    let mut rng = Rng::new(tag);
    let spawn = |i: usize| helper!("tally-worker", name, i);
    let mut workers: Vec<Helper> = (0..TALLY_WORKERS).map(spawn).collect();
    let readers: Vec<Helper> = (0..READERS)
        .map(|_| helper!("tally-reader", name))
        .collect();
    let mut seen = Seen::default();

    let start = Instant::now();
    while start.elapsed() < duration {
        std::thread::sleep(Duration::from_millis(rng.range(1, 4)));
        let i = rng.range(0, TALLY_WORKERS as u64 - 1) as usize;
        let victim = std::mem::replace(&mut workers[i], spawn(i));
        let (status, lines) = victim.kill_and_finish();
        seen.kills += 1;
        seen.absorb(&format!("worker {i}"), status, &lines, true);
    }
    let killing = start.elapsed();

    // Stop everyone gracefully (end of input): a worker stuck on the lock exits with status 4
    // after at most 10 s, so this cannot hang.
    for (i, worker) in workers.into_iter().enumerate() {
        let (status, lines) = worker.finish();
        seen.absorb(&format!("worker {i}"), status, &lines, false);
    }
    let mut reader_counts = Vec::new();
    for reader in readers {
        let lines = reader.finish_ok();
        assert_eq!(lines.len(), 1, "reader output {lines:?}");
        let counts: Vec<u64> = lines[0]
            .strip_prefix("done ")
            .unwrap_or_else(|| panic!("reader output {lines:?}"))
            .split(' ')
            .map(|n| n.parse().unwrap())
            .collect();
        reader_counts.push(counts);
    }

    // The last worker may have been killed mid-update: take the lock once more (bounded), as
    // any process would, repairing an in-place poison the same way the workers do.
    let last = {
        let g = match shm.lock_timeout(BOUND) {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(p)) => {
                assert!(in_place, "poisoned in the default mode");
                let mut g = p.into_inner();
                let diff = g.total.wrapping_sub(g.sum());
                assert!(diff <= 1, "final poisoned value off by {diff}: {:?}", *g);
                seen.poisons += 1;
                g.total = g.sum();
                shm.clear_poison();
                g
            }
            Err(std::sync::TryLockError::WouldBlock) => {
                panic!("no lock after {BOUND:?}: deadlock")
            }
        };
        *g
    };
    let fin = shm.read();
    assert_eq!(last, fin);
    assert!(!shm.is_poisoned());
    assert!(fin.is_consistent(), "final value {fin:?}");
    assert!(
        fin.total >= seen.finished_updates,
        "final total {} below the {} updates the last workers completed",
        fin.total,
        seen.finished_updates
    );
    eprintln!(
        "torture {tag}: {} kills in {killing:.2?}, {} poisons repaired ({} off by one), final \
         total {}, readers [snapshots checked excused] {reader_counts:?}",
        seen.kills, seen.poisons, seen.repaired_off_by_one, fin.total
    );
    for counts in &reader_counts {
        assert!(
            counts[1] > 0,
            "a reader checked no snapshot: {reader_counts:?}"
        );
    }
    (seen, fin)
}

/// At least one kill per 20 ms of killing (nominally one per 2.5 ms).
fn min_kills(duration: Duration) -> u64 {
    (duration.as_millis() / 20).max(1) as u64
}

#[test]
#[ignore = "torture: run with --ignored (SHMSTORE_TORTURE_SECS bounds it)"]
fn default_mode_survives_random_kills() {
    let duration = budget().mul_f64(0.4);
    let (seen, _) = kill_workers("torture-default", false, duration);
    assert_eq!(seen.poisons, 0);
    assert!(
        seen.kills >= min_kills(duration),
        "only {} kills in {duration:?}",
        seen.kills
    );
}

#[test]
#[ignore = "torture: run with --ignored (SHMSTORE_TORTURE_SECS bounds it)"]
fn in_place_mode_poisons_and_recovers_under_random_kills() {
    let duration = budget().mul_f64(0.4);
    let (seen, _) = kill_workers("torture-in-place", true, duration);
    assert!(
        seen.kills >= min_kills(duration),
        "only {} kills in {duration:?}",
        seen.kills
    );
    // Kills can land outside an update, but hardly ever all of a hundred of them.
    if seen.kills >= 100 {
        assert!(seen.poisons > 0, "{} kills and no poison", seen.kills);
    }
}

#[test]
#[ignore = "torture: run with --ignored (SHMSTORE_TORTURE_SECS bounds it)"]
fn creators_killed_at_random_points_never_break_open_or_create() {
    const CREATORS: usize = 4;
    let duration = budget().mul_f64(0.2);
    let mut rng = Rng::new("torture-create");
    let (mut rounds, mut killed, mut killed_in_init, mut inits_by_test) = (0u64, 0, 0, 0);
    let mut opened_by_helpers = 0u64;
    let start = Instant::now();
    while start.elapsed() < duration {
        rounds += 1;
        let (name, _cleanup) = region("torture-create");
        let mut creators: Vec<Helper> = (0..CREATORS)
            .map(|_| helper!("tally-create", name))
            .collect();
        for c in &mut creators {
            c.expect("ready");
        }
        // Kill times in µs after "go", or never.
        let kill_at: Vec<Option<u64>> = (0..CREATORS)
            .map(|_| (rng.next() % 2 == 0).then(|| rng.range(0, 3000)))
            .collect();
        for c in &mut creators {
            c.send("go");
        }
        let go = Instant::now();
        let mut order: Vec<usize> = (0..CREATORS).filter(|&i| kill_at[i].is_some()).collect();
        order.sort_by_key(|&i| kill_at[i]);
        for &i in &order {
            let at = go + Duration::from_micros(kill_at[i].unwrap());
            if let Some(wait) = at.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            creators[i].send_kill();
        }

        let mut tokens = Vec::new();
        let mut ran = 0;
        for (i, c) in creators.into_iter().enumerate() {
            let (status, lines) = c.finish();
            let killed_here = kill_at[i].is_some() && killed_by_sigkill(status);
            if killed_here {
                killed += 1;
            } else {
                assert!(
                    status.success(),
                    "creator failed: {status}; output {lines:?}"
                );
            }
            let mut ok = false;
            for line in &lines {
                if line == "init" {
                    continue;
                }
                let rest = line
                    .strip_prefix("ok ")
                    .unwrap_or_else(|| panic!("creator output {lines:?}"));
                let (token, r) = rest.split_once(' ').unwrap();
                tokens.push(token.parse::<u64>().unwrap());
                if r == "ran=yes" {
                    ran += 1;
                }
                ok = true;
            }
            opened_by_helpers += u64::from(ok);
            if killed_here && !ok && lines.iter().any(|l| l == "init") {
                killed_in_init += 1;
            }
        }

        // The object is always recoverable.
        let mut test_ran = false;
        let shm = Shm::<Tally>::options()
            .open_timeout(BOUND)
            .open_or_create(&name, || {
                test_ran = true;
                let mut per_worker = [0; TALLY_WORKERS];
                per_worker[0] = 7;
                Tally {
                    total: 7,
                    per_worker,
                }
            })
            .unwrap_or_else(|e| panic!("round {rounds}: open_or_create failed: {e}"));
        let t = shm.read();
        assert!(t.is_consistent(), "round {rounds}: {t:?}");
        if test_ran {
            inits_by_test += 1;
            ran += 1;
            tokens.push(7);
        }
        // One object, one init: everyone who opened it saw the same value, and at most one
        // of them ran its init (none, when the creator that initialised it was killed after
        // publishing it but before reporting).
        assert!(
            tokens.iter().all(|&tok| tok == t.total),
            "round {rounds}: openers saw tokens {tokens:?}, the object holds {}",
            t.total
        );
        assert!(
            ran <= 1,
            "round {rounds}: {ran} successful inits, tokens {tokens:?}"
        );
        // A second look, after everything settled: the same object.
        drop(shm);
        let again = Shm::<Tally>::open(&name).unwrap();
        assert_eq!(again.read(), t);
    }
    eprintln!(
        "torture creators: {rounds} rounds in {:.2?}, {killed} creators killed ({killed_in_init} \
         inside init), {opened_by_helpers} helper opens, {inits_by_test} objects initialised by \
         the test after every creator died",
        start.elapsed()
    );
    assert!(rounds > 0);
}
