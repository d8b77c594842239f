//! Issue 16's "Done when", with real processes: two releases of a config type (both compiled
//! into `shm-helper`, so two roles of different types are "two binaries built from two
//! versions") share one region through a rolling deploy. An old writer and an old reader run;
//! a new writer migrates the region and writes the new field; the old reader follows without a
//! restart; a new reader sees the new field; the old writer's commits keep it. A new writer
//! killed with SIGKILL at random points of the migration, hundreds of times, loses no committed
//! write and leaves an openable region and no temporary object. Threads sharing one old handle
//! follow together without losing an increment. Refusals: an incompatible type names the field,
//! an unlink wakes a waiter that followed with `Removed`, a queue's element type cannot change.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use shmstore::value::FixedStr;
use shmstore::{Error, Shm, ShmQueue};
use shmstore_tests::config_versions::{ConfigFloatWorkers, ConfigV1, ConfigV2, LevelV1};
use shmstore_tests::config_versions_plus::ConfigV1Plus;
use shmstore_tests::{assert_killed, helper, Backend, Helper, Place};

/// A System V segment cannot be migrated (its key cannot be handed to another segment in one
/// step); the rolling deploy there checks the refusal instead.
const SYSV_CANNOT_MIGRATE: &str = "a System V segment is never migrated (Error::NotMigratable, \
                                   checked by rolling_deploy_to_v1_plus::sysv)";

/// One `value …` line of the `config-*` helper roles.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    workers: u32,
    /// `None` for a release-1 reader, which has no such field.
    retries: Option<u32>,
    timeout: u64,
    service: String,
    level: String,
    projected: bool,
}

impl Seen {
    fn parse(line: &str) -> Seen {
        let rest = line
            .strip_prefix("value ")
            .unwrap_or_else(|| panic!("expected a `value …` line, read {line:?}"));
        let field = |key: &str| -> &str {
            rest.split(' ')
                .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
                .unwrap_or_else(|| panic!("no {key} in {line:?}"))
        };
        Seen {
            workers: field("workers").parse().expect("workers"),
            retries: match field("retries") {
                "-" => None,
                n => Some(n.parse().expect("retries")),
            },
            timeout: field("timeout").parse().expect("timeout"),
            service: field("service").to_string(),
            level: field("level").to_string(),
            projected: field("projected").parse().expect("projected"),
        }
    }

    /// Whether every release-1 field is the one the `config-v1-*` writers commit for
    /// `workers` = n (`shm-helper`'s `config_v1_at`): nothing of the old value was lost or torn.
    fn is_v1_at(&self, n: u32) -> bool {
        self.workers == n
            && self.timeout == u64::from(u32::MAX - n)
            && self.service == format!("svc-{n}")
            && self.level == ["Error", "Warn", "Info"][n as usize % 3]
    }
}

/// Lets a `config-v1-writer` commit `n` and waits for its acknowledgement.
fn commit_old(writer: &mut Helper, n: u32) {
    writer.send("go");
    writer.expect(&format!("committed {n}"));
}

/// Reads a `config-reader`'s lines until it prints a value with `workers` = n (a value it
/// printed before, seen again because of a commit that changed another field, is skipped);
/// panics on a value of another number than `earlier` or n, or on an ended wait.
fn read_until(reader: &mut Helper, earlier: &[u32], n: u32) -> Seen {
    loop {
        let line = reader.line();
        assert!(
            !line.starts_with("ended"),
            "the reader's wait ended: {line}"
        );
        let seen = Seen::parse(&line);
        if seen.workers == n {
            return seen;
        }
        assert!(
            earlier.contains(&seen.workers),
            "expected workers {n} (or an earlier {earlier:?}), read {line}"
        );
    }
}

fn rolling_deploy_to_v1_plus(backend: Backend) {
    rolling_deploy(backend, "plus");
}

fn rolling_deploy_to_v2(backend: Backend) {
    rolling_deploy(backend, "v2");
}

/// The rolling deploy, release 1 to `new` (`plus`: the region becomes exactly
/// `ConfigV1Plus`; `v2`: it becomes the union of release 1 and release 2, which both project).
fn rolling_deploy(backend: Backend, new: &str) {
    let place = Place::new(backend, "rolling");
    let mut old_writer = helper!("config-v1-writer", place, 100);
    old_writer.expect("created");
    let mut old_reader = helper!("config-reader", place, "v1");
    let first = Seen::parse(&old_reader.line());
    assert!(first.is_v1_at(0) && !first.projected, "{first:?}");
    commit_old(&mut old_writer, 1);
    assert!(read_until(&mut old_reader, &[0], 1).is_v1_at(1));
    // The old reader sleeps in `wait_for_change` when the new writer migrates the region.
    old_reader.wait_until_blocked();

    let mut new_writer = helper!("config-new-writer", place, new, 7);
    new_writer.expect("opening");
    let opened = new_writer.line();
    if backend == Backend::SysV {
        assert!(
            opened.starts_with("error NotMigratable ") && opened.contains("System V segment"),
            "the migration of a segment is refused, saying why: {opened}"
        );
        // Nothing changed: the old writer and reader go on.
        commit_old(&mut old_writer, 2);
        let seen = read_until(&mut old_reader, &[1], 2);
        assert!(seen.is_v1_at(2) && !seen.projected, "{seen:?}");
        // A new reader reads through the compatible layout, the new field zero.
        let mut new_reader = helper!("config-reader", place, new);
        let seen = Seen::parse(&new_reader.line());
        assert!(seen.projected && seen.retries == Some(0), "{seen:?}");
        assert_eq!((seen.workers, seen.service.as_str()), (2, "svc-2"));
        return;
    }
    // `ConfigV1Plus` is release 1 plus a field: the region becomes exactly it. Release 2
    // widens fields: the region keeps release 1's widths, adds `retries`, and release 2 projects.
    let exact = new == "plus";
    assert_eq!(opened, format!("opened projected={}", !exact));
    new_writer.expect("wrote 7");

    // The old reader, asleep on the old object, woke, followed and sees the write of the new
    // field as a new version of the value it knows: no `Removed`, no restart.
    let seen = read_until(&mut old_reader, &[], 1);
    assert!(
        seen.is_v1_at(1) && seen.projected,
        "the old reader reads the migrated region through a projection: {seen:?}"
    );

    // The old writer's commits reach the old reader.
    commit_old(&mut old_writer, 2);
    let seen = read_until(&mut old_reader, &[1], 2);
    assert!(seen.is_v1_at(2) && seen.projected, "{seen:?}");

    // A new reader sees the new field, and the old writer's commit kept it.
    let mut new_reader = helper!("config-reader", place, new);
    let seen = Seen::parse(&new_reader.line());
    assert_eq!(seen.retries, Some(7), "{seen:?}");
    assert!(seen.is_v1_at(2) && seen.projected != exact, "{seen:?}");

    // Later commits of the old writer keep the new field too, seen by both readers.
    commit_old(&mut old_writer, 3);
    let seen = read_until(&mut new_reader, &[2], 3);
    assert!(seen.is_v1_at(3) && seen.retries == Some(7), "{seen:?}");
    assert!(read_until(&mut old_reader, &[2], 3).is_v1_at(3));
    new_writer.send("value");
    let seen = Seen::parse(&new_writer.line());
    assert!(seen.is_v1_at(3) && seen.retries == Some(7), "{seen:?}");

    // The new writer's commits of a shared field reach the old reader, and the old writer
    // (which followed) reads them.
    new_writer.send("workers 1000");
    new_writer.expect("committed 1000");
    assert_eq!(read_until(&mut old_reader, &[3], 1000).workers, 1000);
    commit_old(&mut old_writer, 4);
    assert!(read_until(&mut old_reader, &[1000], 4).is_v1_at(4));
    assert_eq!(read_until(&mut new_reader, &[3, 1000], 4).retries, Some(7));

    // Fresh handles of both releases open the region and agree.
    let v1 = Shm::<ConfigV1>::open(place.location().clone()).expect("release 1 opens it");
    assert!(v1.is_projected());
    assert_eq!(v1.read().workers, 4);
    match new {
        "plus" => {
            let plus = Shm::<ConfigV1Plus>::open(place.location().clone()).expect("open");
            assert!(!plus.is_projected());
            assert_eq!((plus.read().workers, plus.read().retries), (4, 7));
        }
        _ => {
            let v2 = Shm::<ConfigV2>::open(place.location().clone()).expect("open");
            assert!(v2.is_projected());
            assert_eq!((v2.read().workers, v2.read().retries), (4, 7));
        }
    }
    // Neither reader ever saw its wait end.
    for reader in [old_reader, new_reader] {
        let (_, lines) = reader.kill_and_finish();
        assert!(
            lines.iter().all(|line| line.starts_with("value ")),
            "{lines:?}"
        );
    }
}

/// A small seeded generator (SplitMix64), so a failing kill schedule can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

/// Where a new writer was when it was killed, as far as the test can tell afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Phase {
    /// The region was not migrated: killed before the rename (or before it began).
    BeforeRename,
    /// The region was migrated, but the writer's `open` had not returned.
    AfterRename,
    /// Its `open` returned, its write of the new field not acknowledged.
    Opened,
    /// Its write of the new field was acknowledged.
    Wrote,
}

/// The hidden objects beside `place` that carry its file name: a migration's temporary name
/// (`.NAME.shmstore-migrating-INO`) or creation name, left by a migrator that died.
fn leftovers(place: &Place) -> Vec<String> {
    let path = place.path().expect("a place behind a file");
    let file_name = path.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.') && name.contains(&file_name))
        .collect()
}

/// The `committed N` lines' largest N, or `floor` if none is larger.
fn last_committed(lines: &[String], floor: u32) -> u32 {
    lines
        .iter()
        .filter_map(|line| line.strip_prefix("committed ")?.parse().ok())
        .fold(floor, u32::max)
}

/// Runs `iterations` kills of a migrating writer at `backend` (after a few runs that measure
/// how long a migration takes), with delays drawn from a generator seeded with `seed`, checks
/// after each that no committed write was lost and the region opens for both releases, and
/// prints how many kills landed in each [`Phase`].
fn kill_during_migration(backend: Backend, iterations: u32, seed: u64) {
    let started = Instant::now();
    let mut rng = Rng(seed);
    let mut phases = std::collections::BTreeMap::<Phase, u32>::new();
    // How long, seen from here, a new writer takes from `opening` to `opened`: measured on the
    // first iterations (not killed), the first estimate of `rename_at` below.
    const CALIBRATION: u32 = 5;
    let mut opening_to_opened = Vec::new();
    // The delay after `opening` around which kills go from landing before the rename to
    // landing after it: first the median time to `opened`, then adapted to each kill's
    // outcome, so that the kills, drawn uniformly in 0..2× it, straddle the rename.
    let mut rename_at = Duration::ZERO;
    for i in 0..iterations {
        let context = format!("{backend:?} iteration {i} (seed {seed:#x})");
        let place = Place::new(backend, "kill-migrate");
        // Both shapes: the region becomes exactly `ConfigV1Plus`, or the union with `ConfigV2`.
        let new = if i % 2 == 0 { "plus" } else { "v2" };
        let retries = 1000 + i;
        let mut old_writer = helper!("config-v1-committer", place);
        old_writer.expect("created");
        // An old reader process, asleep in `wait_for_change` whenever no commit is new: it
        // must follow whatever the kill left, never see its wait end.
        let mut old_reader = helper!("config-reader", place, "v1");
        assert!(Seen::parse(&old_reader.line()).is_v1_at(0), "{context}");
        old_writer.send("go");
        let mut acknowledged = last_committed(&[old_writer.line()], 0);

        let mut new_writer = helper!("config-new-writer", place, new, retries);
        new_writer.expect("opening");
        let opening = Instant::now();
        let mut delay = Duration::MAX;
        let new_lines = if i < CALIBRATION {
            let opened = new_writer.line();
            opening_to_opened.push(opening.elapsed());
            assert!(opened.starts_with("opened"), "{context}: {opened}");
            new_writer.expect(&format!("wrote {retries}"));
            new_writer.finish_ok();
            vec![opened, format!("wrote {retries}")]
        } else {
            if i == CALIBRATION {
                let mut sorted = opening_to_opened.clone();
                sorted.sort();
                rename_at = sorted[sorted.len() / 2];
            }
            delay = Duration::from_nanos(rng.below(2 * rename_at.as_nanos() as u64));
            // A spin, not a sleep: sleeps overshoot by tens of microseconds.
            while opening.elapsed() < delay {
                std::hint::spin_loop();
            }
            let (status, lines) = new_writer.kill_and_finish();
            assert_killed(status, &lines);
            lines
        };
        let wrote = new_lines.contains(&format!("wrote {retries}"));
        let opened = new_lines.iter().any(|line| line.starts_with("opened"));

        // The old writer goes on: three commits that began after the kill.
        let after_kill = Shm::<ConfigV1>::open_reader(place.location().clone())
            .unwrap_or_else(|e| panic!("{context}: release 1 cannot open the region: {e}"))
            .read()
            .workers;
        while acknowledged < after_kill + 3 {
            acknowledged = last_committed(&[old_writer.line()], acknowledged);
        }
        let (_, lines) = old_writer.kill_and_finish();
        acknowledged = last_committed(&lines, acknowledged);

        // No committed write is lost: the old writer's last acknowledged one (or the one after
        // it, committed but not yet acknowledged when it was killed), every release-1 field
        // intact, and the new field zero or the new writer's.
        let v1_reader = Shm::<ConfigV1>::open_reader(place.location().clone())
            .unwrap_or_else(|e| panic!("{context}: release 1 cannot open the region: {e}"));
        let migrated = v1_reader.is_projected();
        let value = v1_reader.read();
        let n = value.workers;
        assert!(
            n == acknowledged || n == acknowledged + 1,
            "{context}: workers {n}, the last acknowledged commit {acknowledged}"
        );
        let check_v1 = |seen: &ConfigV1, how: &str| {
            assert_eq!(
                (
                    seen.timeout_ms,
                    seen.service.as_str().unwrap(),
                    seen.level.get()
                ),
                (
                    u32::MAX - n,
                    format!("svc-{n}").as_str(),
                    Ok([LevelV1::Error, LevelV1::Warn, LevelV1::Info][n as usize % 3])
                ),
                "{context}: {how}"
            );
        };
        check_v1(&value, "release 1's reader");
        let v1_writer = Shm::<ConfigV1>::open(place.location().clone())
            .unwrap_or_else(|e| panic!("{context}: release 1 cannot open it for writing: {e}"));
        assert_eq!(v1_writer.read(), value, "{context}");
        let new_retries = match new {
            "plus" => {
                let seen = Shm::<ConfigV1Plus>::open_reader(place.location().clone())
                    .unwrap_or_else(|e| panic!("{context}: V1Plus cannot read it: {e}"))
                    .read();
                assert_eq!(seen.workers, n, "{context}");
                seen.retries
            }
            _ => {
                let seen = Shm::<ConfigV2>::open_reader(place.location().clone())
                    .unwrap_or_else(|e| panic!("{context}: V2 cannot read it: {e}"))
                    .read();
                assert_eq!(
                    (
                        seen.workers,
                        seen.timeout_ms,
                        seen.service.as_str().unwrap()
                    ),
                    (n, u64::from(u32::MAX - n), format!("svc-{n}").as_str()),
                    "{context}"
                );
                seen.retries
            }
        };
        if wrote {
            assert_eq!(
                new_retries, retries,
                "{context}: an acknowledged write lost"
            );
        } else {
            assert!(
                new_retries == 0 || new_retries == retries,
                "{context}: retries {new_retries}"
            );
        }
        if !migrated {
            assert_eq!(new_retries, 0, "{context}: a new field in an old region");
        }
        let phase = match (migrated, opened, wrote) {
            (false, false, false) => Phase::BeforeRename,
            (true, false, false) => Phase::AfterRename,
            (true, true, false) => Phase::Opened,
            (true, true, true) => Phase::Wrote,
            other => panic!("{context}: migrated, opened, wrote = {other:?}"),
        };
        *phases.entry(phase).or_default() += 1;
        if i >= CALIBRATION {
            if phase == Phase::BeforeRename && delay >= rename_at {
                rename_at += rename_at / 8;
            } else if phase != Phase::BeforeRename && delay <= rename_at {
                rename_at -= rename_at / 8;
            }
            rename_at = rename_at.max(Duration::from_micros(10));
        }
        let left = leftovers(&place);
        assert!(left.is_empty(), "{context}: left behind {left:?}");

        // The new release opens it for writing too (migrating it now if the kill came first),
        // and both releases still write it.
        let result = match new {
            "plus" => Shm::<ConfigV1Plus>::open(place.location().clone()).map(|shm| {
                shm.lock().unwrap().retries = 5;
                shm.read().workers
            }),
            _ => Shm::<ConfigV2>::open(place.location().clone()).map(|shm| {
                shm.lock().unwrap().retries = 5;
                shm.read().workers
            }),
        };
        assert_eq!(result.expect("the new release opens it for writing"), n);
        v1_writer.lock().unwrap().workers = n + 1;
        let seen = Shm::<ConfigV1Plus>::open_reader(place.location().clone())
            .expect("open_reader")
            .read();
        assert_eq!((seen.workers, seen.retries), (n + 1, 5), "{context}");
        assert!(leftovers(&place).is_empty(), "{context}");
        // The old reader followed (or stayed on the region that was not migrated) and sees the
        // last commit, without a restart.
        loop {
            let line = old_reader.line();
            assert!(
                !line.starts_with("ended"),
                "{context}: the old reader: {line}"
            );
            let seen = Seen::parse(&line);
            if seen.workers == n + 1 {
                assert!(seen.projected, "{context}: the old reader followed: {line}");
                break;
            }
        }
    }
    eprintln!(
        "{backend:?}: {iterations} iterations in {:?} (seed {seed:#x}); the first \
         {CALIBRATION} not killed (opening to opened: {opening_to_opened:?}), the rename \
         at last about {rename_at:?} after `opening`; outcomes by phase: {phases:?}",
        started.elapsed()
    );
}

/// The seed of the kill schedule: `SHMSTORE_TEST_SEED` (to replay a failure), or the clock.
fn seed() -> u64 {
    match std::env::var("SHMSTORE_TEST_SEED") {
        Ok(text) => {
            let text = text.trim_start_matches("0x");
            u64::from_str_radix(text, 16).expect("SHMSTORE_TEST_SEED in hex")
        }
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    }
}

#[test]
fn a_new_writer_killed_at_random_points_of_the_migration_loses_nothing_posix() {
    let seed = seed();
    eprintln!("seed {seed:#x} (replay with SHMSTORE_TEST_SEED={seed:x})");
    kill_during_migration(Backend::Posix, 250, seed);
}

#[test]
fn a_new_writer_killed_at_random_points_of_the_migration_loses_nothing_file() {
    let seed = seed();
    eprintln!("seed {seed:#x} (replay with SHMSTORE_TEST_SEED={seed:x})");
    kill_during_migration(Backend::File, 100, seed);
}

fn v1(workers: u32) -> ConfigV1 {
    ConfigV1 {
        workers,
        timeout_ms: 500,
        service: FixedStr::new("gateway").expect("fits"),
        level: LevelV1::Warn.into(),
        _pad: [0; 3],
    }
}

fn threads_follow_together_to_v1_plus(backend: Backend) {
    threads_follow_together(backend, "plus");
}

fn threads_follow_together_to_v2(backend: Backend) {
    threads_follow_together(backend, "v2");
}

/// One release-1 handle shared by 4 threads, each making `PER_THREAD` increments of
/// `workers` through `lock()`, while another process migrates the region: not one increment
/// goes to the old object after the migration copied it.
fn threads_follow_together(backend: Backend, new: &str) {
    const THREADS: u32 = 4;
    const PER_THREAD: u32 = 2_000;
    let place = Place::new(backend, "threads-follow");
    let shm = Arc::new(Shm::<ConfigV1>::create(place.location().clone(), v1(0)).expect("create"));
    let migrated = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(THREADS as usize + 1));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (shm, migrated, start) = (shm.clone(), migrated.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for i in 0..PER_THREAD {
                    // Half before the migration or during it, the other half after it: every
                    // thread then finds the handle's region moved on its next lock.
                    if i == PER_THREAD / 2 {
                        while !migrated.load(Ordering::Acquire) {
                            std::thread::yield_now();
                        }
                    }
                    shm.lock().expect("lock").workers += 1;
                }
            })
        })
        .collect();
    start.wait();
    while shm.read().workers < 100 {
        std::thread::yield_now();
    }
    let mut new_writer = helper!("config-new-writer", place, new, 9);
    new_writer.expect("opening");
    let opened = new_writer.line();
    assert!(opened.starts_with("opened"), "{opened}");
    new_writer.expect("wrote 9");
    let at_migration = Shm::<ConfigV1>::open_reader(place.location().clone())
        .unwrap()
        .read()
        .workers;
    migrated.store(true, Ordering::Release);
    for thread in threads {
        thread.join().expect("an incrementing thread panicked");
    }
    let total = THREADS * PER_THREAD;
    eprintln!("{backend:?} {new}: {at_migration} of {total} increments when the migration ended");
    assert!(shm.is_projected(), "the shared handle followed");
    assert_eq!(shm.read().workers, total);
    assert_eq!(
        Shm::<ConfigV1>::open_reader(place.location().clone())
            .unwrap()
            .read()
            .workers,
        total
    );
    let seen = Shm::<ConfigV1Plus>::open_reader(place.location().clone())
        .unwrap()
        .read();
    assert_eq!((seen.workers, seen.retries), (total, 9));
    let seen = Shm::<ConfigV2>::open_reader(place.location().clone())
        .unwrap()
        .read();
    assert_eq!((seen.workers, seen.retries), (total, 9));
}

shmstore_tests::for_each_backend!(
    rolling_deploy_to_v1_plus,
    rolling_deploy_to_v2,
    threads_follow_together_to_v1_plus[sysv: SYSV_CANNOT_MIGRATE],
    threads_follow_together_to_v2[sysv: SYSV_CANNOT_MIGRATE],
    an_unlink_wakes_a_waiter_that_followed_with_removed[sysv: SYSV_CANNOT_MIGRATE],
    a_migration_waits_for_a_dead_old_writers_rollback[sysv: SYSV_CANNOT_MIGRATE],
    old_handles_follow_two_migrations[sysv: SYSV_CANNOT_MIGRATE],
);

/// A field that changed type (`workers`: `u32` to `f32`) is refused for writing and reading,
/// naming the field: before the migration and after it.
#[test]
fn an_incompatible_type_is_refused_naming_the_field() {
    let place = Place::new(Backend::Posix, "refused");
    let mut old_writer = helper!("config-v1-writer", place, 1);
    old_writer.expect("created");
    let refused = |stage: &str| {
        for (how, result) in [
            (
                "open",
                Shm::<ConfigFloatWorkers>::open(place.location().clone()).map(drop),
            ),
            (
                "open_or_create",
                Shm::<ConfigFloatWorkers>::open_or_create(place.location().clone(), || {
                    unreachable!("the region exists")
                })
                .map(drop),
            ),
            (
                "open_reader",
                Shm::<ConfigFloatWorkers>::open_reader(place.location().clone()).map(drop),
            ),
        ] {
            match result {
                Err(e @ Error::LayoutMismatch { .. }) => {
                    assert!(e.to_string().contains("workers"), "{stage} {how}: {e}")
                }
                other => panic!("{stage} {how}: expected LayoutMismatch, got {other:?}"),
            }
        }
    };
    refused("release 1's region");
    let mut new_writer = helper!("config-new-writer", place, "plus", 3);
    new_writer.expect("opening");
    new_writer.expect("opened projected=false");
    new_writer.expect("wrote 3");
    refused("the migrated region");
    // Nothing changed: the old writer still commits, and the new field is kept.
    commit_old(&mut old_writer, 1);
    let seen = Shm::<ConfigV1Plus>::open_reader(place.location().clone())
        .unwrap()
        .read();
    assert_eq!((seen.workers, seen.retries), (1, 3));
}

/// A release-1 waiter that followed a migration learns with `Removed` that the region it
/// followed to was unlinked, instead of sleeping on an orphan.
fn an_unlink_wakes_a_waiter_that_followed_with_removed(backend: Backend) {
    let place = Place::new(backend, "unlink-followed");
    let old = Shm::<ConfigV1>::create(place.location().clone(), v1(1)).expect("create");
    let mut old_reader = helper!("config-reader", place, "v1");
    assert!(!Seen::parse(&old_reader.line()).projected);
    old_reader.wait_until_blocked();
    let mut new_writer = helper!("config-new-writer", place, "plus", 4);
    new_writer.expect("opening");
    new_writer.expect("opened projected=false");
    new_writer.expect("wrote 4");
    // The new field's write woke the waiter on the region it followed to.
    let seen = Seen::parse(&old_reader.line());
    assert!(seen.projected && seen.workers == 1, "{seen:?}");
    old_reader.wait_until_blocked();
    assert!(
        !old.is_removed().unwrap(),
        "a migrated region is not removed"
    );

    shmstore::unlink(place.location().clone()).expect("unlink");
    old_reader.expect("ended Removed");
    assert!(old.is_removed().unwrap());
    let old_waits = old.wait_for_change(old.version(), Some(Duration::from_secs(30)));
    assert!(
        matches!(old_waits, Err(Error::Removed { .. })),
        "{old_waits:?}"
    );
}

/// A queue never migrates: opened with another element type — even a compatible one, release 1
/// plus a field — it is refused, and its element type is unchanged.
#[test]
fn a_queue_with_another_element_type_is_still_refused() {
    for backend in Backend::ALL {
        let place = Place::new(backend, "queue-refused");
        let queue = ShmQueue::<ConfigV1, 8>::create(place.location().clone()).expect("create");
        queue.try_push(v1(1)).expect("push");
        match ShmQueue::<ConfigV1Plus, 8>::open(place.location().clone()) {
            Err(Error::LayoutMismatch { .. }) => {}
            other => panic!("{backend:?}: expected LayoutMismatch, got {other:?}"),
        }
        match ShmQueue::<ConfigFloatWorkers, 8>::open(place.location().clone()) {
            Err(Error::LayoutMismatch { .. }) => {}
            other => panic!("{backend:?}: expected LayoutMismatch, got {other:?}"),
        }
        match Shm::<ConfigV1Plus>::open(place.location().clone()) {
            Err(Error::WrongKind { .. }) => {}
            other => panic!("{backend:?}: expected WrongKind, got {other:?}"),
        }
        let again = ShmQueue::<ConfigV1, 8>::open(place.location().clone()).expect("reopen");
        assert_eq!(again.try_pop().expect("pop"), Some(v1(1)), "{backend:?}");
    }
}

/// Two new releases start at once on a release-1 region that an old writer keeps committing
/// to: one migrates, the other finds it migrated when it gets the lock and looks again
/// (writing through the result, or migrating once more). Both open, both writes land, nothing
/// committed is lost. Repeated, since which one wins varies.
#[test]
fn two_new_releases_starting_at_once_both_open() {
    for i in 0..30 {
        let backend = if i % 2 == 0 {
            Backend::Posix
        } else {
            Backend::File
        };
        let place = Place::new(backend, "two-new");
        let mut old_writer = helper!("config-v1-committer", place);
        old_writer.expect("created");
        old_writer.send("go");
        let mut plus = helper!("config-new-writer", place, "plus", 11);
        let mut v2 = helper!("config-new-writer", place, "v2", 22);
        for new in [&mut plus, &mut v2] {
            new.expect("opening");
            let opened = new.line();
            assert!(opened.starts_with("opened"), "{backend:?} {i}: {opened}");
        }
        plus.expect("wrote 11");
        v2.expect("wrote 22");
        let (_, lines) = old_writer.kill_and_finish();
        let acknowledged = last_committed(&lines, 0);
        let plus_value = Shm::<ConfigV1Plus>::open_reader(place.location().clone())
            .unwrap()
            .read();
        let v2_value = Shm::<ConfigV2>::open_reader(place.location().clone())
            .unwrap()
            .read();
        let v1_value = Shm::<ConfigV1>::open_reader(place.location().clone())
            .unwrap()
            .read();
        let n = v1_value.workers;
        assert!(
            n == acknowledged || n == acknowledged + 1,
            "{backend:?} {i}: workers {n}, last acknowledged {acknowledged}"
        );
        assert_eq!(v1_value.service.as_str().unwrap(), format!("svc-{n}"));
        assert_eq!((plus_value.workers, v2_value.workers), (n, n));
        assert!(
            plus_value.retries == v2_value.retries && [11, 22].contains(&plus_value.retries),
            "{backend:?} {i}: {plus_value:?} {v2_value:?}"
        );
        // Each new writer writes again, and the other release reads it.
        plus.send("workers 500");
        plus.expect("committed 500");
        v2.send("value");
        assert_eq!(Seen::parse(&v2.line()).workers, 500);
        v2.send("workers 600");
        v2.expect("committed 600");
        plus.send("value");
        assert_eq!(Seen::parse(&plus.line()).workers, 600);
        assert!(leftovers(&place).is_empty());
    }
}

fn a_migration_waits_for_a_dead_old_writers_rollback(backend: Backend) {
    let place = Place::new(backend, "migrate-after-death");
    let old = Shm::<ConfigV1>::create(place.location().clone(), v1(7)).expect("create");
    let mut holder = helper!("config-v1-hold-and-die", place);
    holder.expect("holding");
    let mut new_writer = helper!("config-new-writer", place, "plus", 3);
    new_writer.expect("opening");
    // The migrator waits for the old region's lock, which the old writer holds mid-commit.
    new_writer.wait_until_blocked();
    holder.kill();
    new_writer.expect("opened projected=false");
    new_writer.expect("wrote 3");
    // The dead writer's half-done commit was rolled back before the value was carried over.
    assert_eq!(old.read(), v1(7));
    assert!(old.is_projected(), "the old handle followed");
    let seen = Shm::<ConfigV1Plus>::open_reader(place.location().clone())
        .unwrap()
        .read();
    assert_eq!(
        (seen.workers, seen.retries, seen.service.as_str().unwrap()),
        (7, 3, "gateway")
    );
}

/// Two rolling deploys in a row (release 1, then `ConfigV1Plus`, then `ConfigV3`): old
/// processes follow two migrations, their waits included, and every version's commits reach
/// every other version.
fn old_handles_follow_two_migrations(backend: Backend) {
    use shmstore_tests::config_versions_three::ConfigV3;
    let place = Place::new(backend, "two-migrations");
    let mut old_writer = helper!("config-v1-writer", place, 100);
    old_writer.expect("created");
    let mut old_reader = helper!("config-reader", place, "v1");
    assert!(Seen::parse(&old_reader.line()).is_v1_at(0));
    old_reader.wait_until_blocked();
    let mut plus = helper!("config-new-writer", place, "plus", 7);
    plus.expect("opening");
    plus.expect("opened projected=false");
    plus.expect("wrote 7");
    assert!(read_until(&mut old_reader, &[], 0).projected);
    old_reader.wait_until_blocked();
    let mut plus_reader = helper!("config-reader", place, "plus");
    assert_eq!(Seen::parse(&plus_reader.line()).retries, Some(7));
    plus_reader.wait_until_blocked();

    let mut three = helper!("config-new-writer", place, "v3", 40);
    three.expect("opening");
    three.expect("opened projected=false");
    three.expect("wrote 40");
    // Both readers woke on the second migration's write and followed again.
    let seen = read_until(&mut old_reader, &[], 0);
    assert!(seen.projected, "{seen:?}");
    let seen = read_until(&mut plus_reader, &[], 0);
    assert!(seen.projected && seen.retries == Some(7), "{seen:?}");

    // The old writer and the first new writer follow too; everything they commit is kept.
    commit_old(&mut old_writer, 1);
    assert!(read_until(&mut old_reader, &[0], 1).is_v1_at(1));
    assert_eq!(read_until(&mut plus_reader, &[0], 1).retries, Some(7));
    plus.send("workers 77");
    plus.expect("committed 77");
    assert_eq!(read_until(&mut old_reader, &[1], 77).workers, 77);
    let value = Shm::<ConfigV3>::open_reader(place.location().clone())
        .unwrap()
        .read();
    assert_eq!((value.workers, value.retries, value.max_conns), (77, 7, 40));
    assert_eq!(value.service.as_str().unwrap(), "svc-1");
    for reader in [old_reader, plus_reader] {
        let (_, lines) = reader.kill_and_finish();
        assert!(
            lines.iter().all(|line| line.starts_with("value ")),
            "{lines:?}"
        );
    }
}

/// Commits through a compatible layout are crash-atomic: a release-1 writer (through the
/// writeback of the migrated region) and a release-2 writer (through its projection) commit
/// against each other and are killed with SIGKILL at random points; every value left is one
/// whole commit of one of them, with the new field as that commit left it.
#[test]
fn writers_through_a_compatible_layout_killed_mid_commit_are_rolled_back() {
    const FROM: u32 = 1_000_000;
    let seed = seed();
    eprintln!("seed {seed:#x} (replay with SHMSTORE_TEST_SEED={seed:x})");
    let mut rng = Rng(seed);
    for i in 0..100 {
        let context = format!("iteration {i} (seed {seed:#x})");
        let backend = if i % 2 == 0 {
            Backend::Posix
        } else {
            Backend::File
        };
        let place = Place::new(backend, "kill-projected");
        let mut old_writer = helper!("config-v1-committer", place);
        old_writer.expect("created");
        // Migrated before the old writer's first commit: all of them go through the writeback.
        drop(Shm::<ConfigV2>::open(place.location().clone()).expect("migrate"));
        old_writer.send("go");
        old_writer.expect("committed 1");
        let mut new_writer = helper!("config-v2-loop", place, FROM);
        new_writer.expect("looping");
        let started = Instant::now();
        let (first, second) = (rng.below(2_000), rng.below(2_000));
        let (early, late) = if rng.below(2) == 0 {
            (&old_writer, &new_writer)
        } else {
            (&new_writer, &old_writer)
        };
        while started.elapsed() < Duration::from_micros(first.min(second)) {
            std::hint::spin_loop();
        }
        early.send_kill();
        while started.elapsed() < Duration::from_micros(first.max(second)) {
            std::hint::spin_loop();
        }
        late.send_kill();
        let (status, lines) = old_writer.kill_and_finish();
        assert_killed(status, &lines);
        let (status, lines) = new_writer.kill_and_finish();
        assert_killed(status, &lines);

        let v2 = Shm::<ConfigV2>::open(place.location().clone()).expect("open");
        let value = v2.read();
        let n = value.workers;
        let v1_seen = Shm::<ConfigV1>::open_reader(place.location().clone())
            .unwrap()
            .read();
        assert_eq!(v1_seen.workers, n, "{context}");
        assert_eq!(
            (
                value.timeout_ms,
                value.service.as_str().unwrap(),
                v1_seen.level.get()
            ),
            (
                u64::from(u32::MAX - n),
                format!("svc-{n}").as_str(),
                Ok([LevelV1::Error, LevelV1::Warn, LevelV1::Info][n as usize % 3])
            ),
            "{context}: a torn value {value:?}"
        );
        if n >= FROM {
            assert_eq!(value.retries, n, "{context}: {value:?}");
        } else {
            assert!(
                value.retries == 0 || value.retries >= FROM,
                "{context}: {value:?}"
            );
        }
        // Both releases commit again after the rollback.
        v2.lock().unwrap().retries = 1;
        Shm::<ConfigV1>::open(place.location().clone())
            .unwrap()
            .lock()
            .unwrap()
            .workers = 2;
        let after = v2.read();
        assert_eq!((after.workers, after.retries), (2, 1), "{context}");
    }
}

/// A new release killed during its migration and restarted, with no other writer around to
/// repair the region in between: the restarted writer takes over the dead one's lock, finishes
/// or redoes the migration, and nothing is left behind.
#[test]
fn a_new_writer_killed_during_its_migration_and_restarted_completes_it() {
    let seed = seed();
    eprintln!("seed {seed:#x} (replay with SHMSTORE_TEST_SEED={seed:x})");
    let mut rng = Rng(seed);
    for i in 0..100 {
        let context = format!("iteration {i} (seed {seed:#x})");
        let backend = if i % 2 == 0 {
            Backend::Posix
        } else {
            Backend::File
        };
        let new = if i % 4 < 2 { "plus" } else { "v2" };
        let place = Place::new(backend, "restart-migrate");
        let old = Shm::<ConfigV1>::create(place.location().clone(), v1(5)).expect("create");
        let mut killed = helper!("config-new-writer", place, new, 8);
        killed.expect("opening");
        let started = Instant::now();
        let delay = Duration::from_micros(rng.below(4_000));
        while started.elapsed() < delay {
            std::hint::spin_loop();
        }
        let (status, lines) = killed.kill_and_finish();
        assert_killed(status, &lines);
        let mut restarted = helper!("config-new-writer", place, new, 9);
        restarted.expect("opening");
        let opened = restarted.line();
        assert!(opened.starts_with("opened"), "{context}: {opened}");
        restarted.expect("wrote 9");
        assert!(
            leftovers(&place).is_empty(),
            "{context}: {:?}",
            leftovers(&place)
        );
        let value = old.read();
        assert!(old.is_projected(), "{context}: the old handle followed");
        assert_eq!(
            (value.workers, value.service.as_str().unwrap()),
            (5, "gateway"),
            "{context}"
        );
        let seen = Shm::<ConfigV1Plus>::open_reader(place.location().clone())
            .unwrap()
            .read();
        assert_eq!((seen.workers, seen.retries), (5, 9), "{context}");
        old.lock().unwrap().workers = 6;
        restarted.send("value");
        assert_eq!(Seen::parse(&restarted.line()).workers, 6, "{context}");
    }
}

/// Only the region's owner (or root) may migrate it, since the region is replaced by an object
/// with the same owner: a new release running as another user is refused with
/// `PermissionDenied` saying so, and the region stays as it was for the old release (which
/// that user may still open).
#[test]
fn a_new_release_of_another_user_cannot_migrate() {
    if !shmstore_tests::is_root() {
        eprintln!("skipped: needs root to run a helper as uid 65534");
        return;
    }
    let place = Place::new(Backend::Posix, "migrate-other-user");
    let old = Shm::<ConfigV1>::options()
        .mode(0o666)
        .create(place.location().clone(), v1(3))
        .expect("create");
    let opened = helper!("setuid-config-open", place, "plus").finish_ok();
    assert!(
        opened.len() == 1
            && opened[0].starts_with("error PermissionDenied ")
            && opened[0].contains("owner"),
        "{opened:?}"
    );
    assert!(!old.is_projected() && !old.is_removed().unwrap());
    old.lock().unwrap().workers = 4;
    let opened = helper!("setuid-config-open", place, "v1").finish_ok();
    assert_eq!(opened, ["opened projected=false"]);
    let reader = Shm::<ConfigV1>::open_reader(place.location().clone()).unwrap();
    assert!(!reader.is_projected(), "not migrated");
    assert_eq!(reader.read().workers, 4);
}
