//! Lock-free snapshots, published versions and waiting for a change (DESIGN §7), against
//! writers, waiters and readers in other processes: no torn 4 KiB snapshot, a lock holder never
//! delays a default-mode read, one publish wakes every waiter (and thousands of turn-taking
//! waits lose no wake-up), waiting sleeps instead of polling, readers killed mid-read poison
//! nothing, a read-only user reads but cannot write, a read-only reader of an `in_place` region
//! cannot repair a dead writer while a writable handle can, and versions count commits.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::mpsc;
use std::sync::TryLockError;
use std::time::Duration;

use shmstore::{Error, Shm};
use shmstore_tests::{
    helper, is_root, region, shm_path, wait_until_blocked, Backend, Counter, Helper, Page, Pair,
    Place, OLD,
};

/// A fresh `Counter` region of 0 (in place or not), a read-write handle and a read-only one on
/// it: its name, its guard and the two handles.
fn counter_and_reader(
    tag: &str,
    in_place: bool,
) -> (String, Place, Shm<Counter>, shmstore::ShmReader<Counter>) {
    let (name, place) = region(tag);
    let shm = Shm::<Counter>::options()
        .in_place(in_place)
        .create(&name, Counter::at(0))
        .unwrap();
    let reader = Shm::<Counter>::open_reader(&name).unwrap();
    (name, place, shm, reader)
}

/// `tag`, marked `-inplace` for an in-place region.
fn mode_tag(tag: &str, in_place: bool) -> String {
    if in_place {
        format!("{tag}-inplace")
    } else {
        tag.to_string()
    }
}

fn is_timeout<T: std::fmt::Debug>(r: &shmstore::Result<T>, after: Duration) -> bool {
    matches!(r, Err(Error::Timeout { after: a, .. }) if *a == after)
}

/// The calling thread's `voluntary_ctxt_switches`: how many times it went to sleep.
fn voluntary_switches() -> u64 {
    let status = std::fs::read_to_string("/proc/thread-self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .expect("voluntary_ctxt_switches in /proc/thread-self/status")
        .trim()
        .parse()
        .expect("a number")
}

/// Runs `f` on this thread and returns its result with the voluntary context switches it made.
fn counting_switches<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let before = voluntary_switches();
    let r = f();
    (r, voluntary_switches() - before)
}

// ---- a writer child that writes back to back until told to stop ----

/// What a `page-writer` or `pair-writer` child reports when told to stop.
#[derive(Debug)]
struct WriterReport {
    /// Writes it committed.
    count: u64,
    /// Locks that found the region poisoned.
    poisoned: u64,
    /// How often its writing thread slept (for the lock: it has no other reason to).
    sleeps: u64,
}

/// Tells a `page-writer` or `pair-writer` child to stop and reads its report.
fn stop_writer(mut writer: Helper) -> WriterReport {
    writer.send("stop");
    let lines = writer.finish_ok();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let fields: Vec<&str> = lines[0].split(' ').collect();
    match fields.as_slice() {
        ["done", count, poisoned, sleeps] => WriterReport {
            count: count.parse().unwrap(),
            poisoned: poisoned.strip_prefix("poisoned=").unwrap().parse().unwrap(),
            sleeps: sleeps.strip_prefix("sleeps=").unwrap().parse().unwrap(),
        },
        _ => panic!("unexpected report {lines:?}"),
    }
}

// ---- 1. no torn snapshot of a 4 KiB value ----

/// Writes the reader must have seen before it stops.
const MIN_WRITES: u64 = 200_000;
/// Distinct values the reader must have seen before it stops: proof that it read while the
/// writer wrote (low enough for a loaded 2-core machine, where the two processes share the
/// processors with everything else).
const MIN_DISTINCT: u64 = 100;
/// A reader that has not seen MIN_DISTINCT values after this many writes fails instead of
/// running on (it is starved, or the writer always runs while it does not).
const GIVE_UP: u64 = 5_000_000;

/// A child rewrites a 4 KiB `Page` back to back (every word = the iteration number) while this
/// process reads it continuously, through a `Shm` or a `ShmReader`, until it has seen at least
/// MIN_WRITES writes and more than MIN_DISTINCT distinct values: every snapshot has all its
/// words equal and values never go backwards. Stopping on what was seen rather than after a
/// fixed number of writes makes the overlap certain whatever the scheduling.
fn no_torn_pages(backend: Backend, in_place: bool, via_reader: bool) {
    let tag = if via_reader { "page-reader" } else { "page" };
    let place = Place::new(backend, &mode_tag(tag, in_place));
    let shm = Shm::<Page>::options()
        .in_place(in_place)
        .create(place.location(), Page::filled(0))
        .unwrap();
    let reader = Shm::<Page>::open_reader(&place).unwrap();
    let v0 = shm.version();
    let read = || {
        if via_reader {
            reader.read()
        } else {
            shm.read()
        }
    };

    let mut writer = helper!("page-writer", place);
    writer.expect("started");
    let (mut last, mut distinct, mut reads) = (0u64, 0u64, 0u64);
    loop {
        let page = read();
        reads += 1;
        let Some(n) = page.uniform() else {
            let first = page.words[0];
            let at = page.words.iter().position(|&w| w != first).unwrap();
            panic!(
                "torn snapshot on read {reads}: word 0 is {first}, word {at} is {}",
                page.words[at]
            );
        };
        assert!(n >= last, "went backwards: {n} after {last}");
        if n != last {
            distinct += 1;
        }
        last = n;
        if (n >= MIN_WRITES && distinct > MIN_DISTINCT) || n >= GIVE_UP {
            break;
        }
    }
    let report = stop_writer(writer);
    eprintln!(
        "{backend:?} in_place={in_place} via_reader={via_reader}: {distinct} distinct values \
         in {reads} reads of {} writes; the writer slept {} times",
        report.count, report.sleeps
    );
    assert!(
        distinct > MIN_DISTINCT,
        "only {distinct} distinct values seen in {reads} reads of {last} writes"
    );
    assert_eq!(report.poisoned, 0);
    assert!(report.count >= last);
    assert_eq!(shm.version(), v0 + report.count);
    assert_eq!(reader.version(), shm.version());
    assert_eq!(shm.read(), Page::filled(report.count));
    assert_eq!(reader.read(), Page::filled(report.count));
    assert!(!shm.is_poisoned());
}

/// Through a `Shm` and through a `ShmReader`, in both modes.
fn no_torn_4k_snapshot_while_another_process_rewrites_it(backend: Backend) {
    for in_place in [false, true] {
        for via_reader in [false, true] {
            no_torn_pages(backend, in_place, via_reader);
        }
    }
}

// ---- 2. a holder never delays a default-mode read ----

#[test]
fn a_writer_holding_the_lock_after_writing_never_delays_a_default_mode_read() {
    const READS: u32 = 10_000;
    let (name, _cleanup) = region("held-read");
    let shm = Shm::<Counter>::create(&name, Counter::at(1)).unwrap();
    let reader = Shm::<Counter>::open_reader(&name).unwrap();
    let v0 = shm.version();

    // The child locks, writes 2 (the version is odd now) and keeps the lock until told.
    let mut holder = helper!("write-and-hold", name, 2);
    holder.expect("holding");
    for _ in 0..READS {
        assert_eq!(shm.read(), Counter::at(1));
        assert_eq!(shm.version(), v0);
    }
    for _ in 0..READS {
        assert_eq!(reader.read(), Counter::at(1));
        assert_eq!(reader.version(), v0);
    }
    // Even with no time at all to wait, the read-only handle gets the committed value.
    assert_eq!(reader.read_timeout(Duration::ZERO).unwrap(), Counter::at(1));
    // All those reads completed while the child still held the lock.
    assert!(
        matches!(shm.try_lock(), Err(TryLockError::WouldBlock)),
        "the holder let go of the lock during the reads"
    );

    holder.send("go");
    holder.expect("released");
    assert_eq!(shm.read(), Counter::at(2));
    assert_eq!(reader.read(), Counter::at(2));
    assert_eq!(shm.version(), v0 + 1);
    assert_eq!(holder.finish_ok(), Vec::<String>::new());
}

#[test]
fn in_place_a_read_only_reader_waits_for_a_live_writer_up_to_its_timeout() {
    let (name, _cleanup) = region("held-read-inplace");
    let shm = Shm::<Counter>::options()
        .in_place(true)
        .create(&name, Counter::at(1))
        .unwrap();
    let reader = Shm::<Counter>::open_reader(&name).unwrap();
    let v0 = shm.version();

    let mut holder = helper!("write-and-hold", name, 2);
    holder.expect("holding");
    // There is only one copy, being written: the reader cannot return anything meanwhile.
    let short = Duration::from_millis(20);
    let r = reader.read_timeout(short);
    assert!(is_timeout(&r, short), "{r:?}");
    assert_eq!(reader.version(), v0, "version() showed a write in progress");
    assert_eq!(shm.version(), v0);
    assert!(!reader.is_poisoned());

    holder.send("go");
    holder.expect("released");
    assert_eq!(reader.read_timeout(short).unwrap(), Counter::at(2));
    assert_eq!(shm.read(), Counter::at(2));
    assert_eq!(reader.version(), v0 + 1);
}

// ---- 3. one publish wakes every waiter of every process ----

/// Children each print `waiting` and sleep in `wait_for_change` without timeout (`hows`: one
/// child a `how`, through a `Shm` or a `ShmReader`); one write here wakes them all, and each
/// reports the version this process sees.
fn one_write_wakes_every_waiter(place: &Place, in_place: bool, hows: &[&str], notify: bool) {
    let shm = Shm::<Counter>::options()
        .in_place(in_place)
        .notify_readers(notify)
        .create(place.location(), Counter::at(0))
        .unwrap();
    let v0 = shm.version();
    let mut waiters: Vec<Helper> = hows
        .iter()
        .map(|how| helper!("wait-change", place, how))
        .collect();
    for w in &mut waiters {
        w.expect(&format!("waiting {v0}"));
    }
    // All asleep in a futex before the write.
    for w in &waiters {
        w.wait_until_blocked();
    }
    *shm.lock().unwrap() = Counter::at(7);
    let v1 = shm.version();
    assert!(v1 > v0);
    for w in waiters {
        assert_eq!(w.finish_ok(), [format!("changed {v1} 7")]);
    }
}

/// Three writable handles in other processes, in both modes; three read-only ones when the
/// region notifies readers; and a mix of the two.
fn one_write_wakes_every_waiting_process(backend: Backend) {
    for in_place in [false, true] {
        for (hows, notify) in [
            (&["shm", "shm", "shm"][..], false),
            (&["reader", "reader", "reader"][..], true),
            (&["shm", "reader"][..], true),
        ] {
            let place = Place::new(backend, &mode_tag("wake", in_place));
            one_write_wakes_every_waiter(&place, in_place, hows, notify);
        }
    }
}

#[test]
fn wait_for_change_times_out_without_a_change_and_returns_at_once_for_an_old_version() {
    for in_place in [false, true] {
        let (name, _cleanup, shm, reader) =
            counter_and_reader(&mode_tag("wait-timeout", in_place), in_place);
        let v0 = shm.version();

        // Nothing changes: both time out, with the timeout in the error.
        let t = Duration::from_millis(30);
        let r = shm.wait_for_change(v0, Some(t));
        assert!(is_timeout(&r, t), "{r:?}");
        let r = reader.wait_for_change(v0, Some(t));
        assert!(is_timeout(&r, t), "{r:?}");
        let e = shm.wait_for_change(v0, Some(t)).unwrap_err().to_string();
        assert!(e.contains(&name), "{e}");

        // Two writes; `since` is now two versions old.
        for n in 1..=2 {
            *shm.lock().unwrap() = Counter::at(n);
        }
        let v2 = shm.version();
        assert_eq!(v2, v0 + 2);
        // With no time at all to wait, it returns the current version: it did not wait.
        assert_eq!(shm.wait_for_change(v0, Some(Duration::ZERO)).unwrap(), v2);
        assert_eq!(
            reader.wait_for_change(v0, Some(Duration::ZERO)).unwrap(),
            v2
        );
        assert_eq!(shm.wait_for_change(v0 + 1, None).unwrap(), v2);
        assert_eq!(reader.wait_for_change(v0 + 1, None).unwrap(), v2);
        // And at the current version, even a zero timeout reports the timeout.
        let r = shm.wait_for_change(v2, Some(Duration::ZERO));
        assert!(is_timeout(&r, Duration::ZERO), "{r:?}");
        let r = reader.wait_for_change(v2, Some(Duration::ZERO));
        assert!(is_timeout(&r, Duration::ZERO), "{r:?}");
    }
}

/// This process and a child take turns: each waits in `wait_for_change` for the other's write
/// and answers with its own, ROUNDS times — thousands of sleeps and wakes across processes, any
/// lost wake-up of which would leave a waiter asleep until its (60 s) give-up. `how`: the child
/// waits through a `Shm` or, in a region that notifies readers, a `ShmReader`.
fn ping_pong(in_place: bool, how: &str) {
    const ROUNDS: u64 = 5_000;
    let (name, _cleanup) = region(&mode_tag(&format!("ping-pong-{how}"), in_place));
    let shm = Shm::<Counter>::options()
        .in_place(in_place)
        .notify_readers(how == "reader")
        .create(&name, Counter::at(0))
        .unwrap();
    let v0 = shm.version();
    let mut child = helper!("ping-pong", name, ROUNDS, how);
    child.expect("ready");
    let sleeps_before = voluntary_switches();
    for round in 0..ROUNDS {
        *shm.lock().unwrap() = Counter::at(2 * round + 1);
        // Wait for the child's answer.
        loop {
            let since = shm.version();
            let c = shm.read();
            assert_eq!(c.count, c.mirror);
            if c.count == 2 * round + 2 {
                break;
            }
            assert_eq!(c.count, 2 * round + 1, "round {round}");
            let r = shm.wait_for_change(since, Some(Duration::from_secs(60)));
            assert!(
                r.is_ok(),
                "round {round}: the child's write never woke us: {r:?}"
            );
        }
    }
    let sleeps = voluntary_switches() - sleeps_before;
    assert_eq!(child.finish_ok(), ["done"]);
    eprintln!(
        "in_place={in_place} child waits through {how}: {ROUNDS} rounds, {sleeps} sleeps here"
    );
    assert_eq!(shm.read(), Counter::at(2 * ROUNDS));
    assert_eq!(shm.version(), v0 + 2 * ROUNDS);
}

#[test]
fn turn_taking_through_wait_for_change_never_loses_a_wakeup() {
    ping_pong(false, "shm");
}

#[test]
fn turn_taking_through_wait_for_change_never_loses_a_wakeup_in_place() {
    ping_pong(true, "shm");
}

#[test]
fn turn_taking_with_a_notified_reader_never_loses_a_wakeup() {
    ping_pong(false, "reader");
    ping_pong(true, "reader");
}

// ---- 4. a reader killed mid-read poisons nothing ----

/// A child writes a `Page` back to back (so a reader's lock-free copy of 4 KiB keeps failing
/// and a writable reader falls back to `try_lock`, holding the lock while it copies); reader
/// children are SIGKILLed at varying points of their read loop. Nothing is poisoned, the writer
/// never finds the region poisoned, and `lock()` is `Ok`.
fn reader_killed_mid_read(in_place: bool) {
    const ROUNDS: u32 = 12;
    let (name, _cleanup) = region(&mode_tag("kill-reader", in_place));
    let shm = Shm::<Page>::options()
        .in_place(in_place)
        .create(&name, Page::filled(0))
        .unwrap();
    let mut writer = helper!("page-writer", name);
    writer.expect("started");
    for round in 0..ROUNDS {
        let mut reader = helper!("read-loop", name);
        reader.expect("reading");
        // Let it read for a varying while, so the kill lands at varying points of its loop.
        std::thread::sleep(Duration::from_micros(u64::from(round % 4) * 250));
        reader.kill();
        assert!(!shm.is_poisoned(), "round {round}");
    }
    let report = stop_writer(writer);
    assert_eq!(report.poisoned, 0, "the writer found the region poisoned");
    let count = report.count;
    assert!(count > 0);
    eprintln!("in_place={in_place}: {count} writes during {ROUNDS} killed readers");

    assert!(!shm.is_poisoned());
    let g = shm.lock().expect("a killed reader poisons nothing");
    assert_eq!(g.uniform(), Some(count));
    drop(g);
    assert_eq!(shm.read(), Page::filled(count));
    assert!(shm.try_lock().is_ok());
}

#[test]
fn a_reader_killed_mid_read_poisons_nothing() {
    reader_killed_mid_read(false);
}

#[test]
fn a_reader_killed_mid_read_poisons_nothing_in_place() {
    reader_killed_mid_read(true);
}

// ---- 5. a read-only reader running as another user ----

#[test]
fn a_user_with_only_read_permission_reads_through_a_shm_reader_and_cannot_open_read_write() {
    if !is_root() {
        eprintln!("skipped: setuid needs root");
        return;
    }
    for in_place in [false, true] {
        for mode in [0o640, 0o644] {
            let (name, _cleanup) = region(&mode_tag(&format!("ro-user-{mode:o}"), in_place));
            // Notified readers with 0640, 10 ms re-checks with 0644: both see the change.
            let shm = Shm::<Counter>::options()
                .mode(mode)
                .in_place(in_place)
                .notify_readers(mode == 0o640)
                .create(&name, Counter::at(11))
                .unwrap();
            if mode == 0o640 {
                // Group read for uid 65534's group; "other" has nothing.
                nix::unistd::chown(
                    &shm_path(&name),
                    None,
                    Some(nix::unistd::Gid::from_raw(65534)),
                )
                .unwrap();
            }
            let v0 = shm.version();
            let mut child = helper!("setuid-reader", name);
            // Another owner's region needs allow_other_owner(true), read-only or not.
            child.expect("reader-plain err PermissionDenied");
            // The mode grants reading only.
            child.expect("read-write err PermissionDenied");
            child.expect(&format!("reader 11 {v0} {in_place}"));
            *shm.lock().unwrap() = Counter::at(12);
            let v1 = shm.version();
            assert_eq!(
                child.finish_ok(),
                [format!("changed 12 {v1}")],
                "mode {mode:o}, in_place {in_place}"
            );
            assert!(!shm.is_poisoned());
        }
    }
}

// ---- 6. waiting sleeps instead of polling ----

const QUIET_WAIT: Duration = Duration::from_millis(300);

#[test]
fn a_writable_handle_waits_in_one_sleep() {
    for in_place in [false, true] {
        let (name, _cleanup) = region(&mode_tag("sleep-shm", in_place));
        let shm = Shm::<Pair>::options()
            .in_place(in_place)
            .create(&name, OLD)
            .unwrap();
        let v = shm.version();
        let (r, switches) = counting_switches(|| shm.wait_for_change(v, Some(QUIET_WAIT)));
        assert!(is_timeout(&r, QUIET_WAIT), "{r:?}");
        eprintln!("in_place={in_place}: writable wait of {QUIET_WAIT:?}: {switches} switches");
        assert!(switches <= 5, "{switches} sleeps in one wait: polling?");
    }
}

#[test]
fn a_reader_of_a_region_without_notify_readers_rechecks_in_10ms_slices() {
    let (name, _cleanup) = region("sleep-sliced");
    let _shm = Shm::<Pair>::create(&name, OLD).unwrap();
    let reader = Shm::<Pair>::open_reader(&name).unwrap();
    let v = reader.version();
    let (r, switches) = counting_switches(|| reader.wait_for_change(v, Some(QUIET_WAIT)));
    assert!(is_timeout(&r, QUIET_WAIT), "{r:?}");
    eprintln!("unnotified reader wait of {QUIET_WAIT:?}: {switches} switches");
    // Nobody wakes a reader that cannot register: it re-checks every 10 ms (about 30 sleeps
    // in 300 ms) — bounded slices, not a busy poll and not one long sleep.
    assert!(
        switches > 10 && switches < 100,
        "{switches} sleeps in a {QUIET_WAIT:?} wait: not 10 ms slices"
    );
}

#[test]
fn a_reader_of_a_region_with_notify_readers_sleeps_until_woken_by_another_process() {
    let (name, _cleanup) = region("sleep-notified");
    let shm = Shm::<Pair>::options()
        .notify_readers(true)
        .create(&name, Pair { a: 0, b: 0 })
        .unwrap();
    let reader = Shm::<Pair>::open_reader(&name).unwrap();
    let v0 = reader.version();

    // No change: one sleep for the whole timeout.
    let (r, switches) = counting_switches(|| reader.wait_for_change(v0, Some(QUIET_WAIT)));
    assert!(is_timeout(&r, QUIET_WAIT), "{r:?}");
    eprintln!("notified reader wait of {QUIET_WAIT:?}: {switches} switches");
    assert!(switches <= 5, "{switches} sleeps in one wait: polling?");

    // One write by another process wakes it, without slices.
    let (result, switches) = std::thread::scope(|s| {
        let (tid_tx, tid_rx) = mpsc::channel();
        let reader = &reader;
        let waiter = s.spawn(move || {
            tid_tx.send(nix::unistd::gettid()).unwrap();
            counting_switches(|| reader.wait_for_change(v0, Some(Duration::from_secs(60))))
        });
        let tid = tid_rx.recv().unwrap();
        let blocked = catch_unwind(|| {
            wait_until_blocked(&Path::new("/proc/self/task").join(tid.to_string()))
        });
        // Write in any case: the scope cannot end while the thread waits.
        assert_eq!(
            helper!("writer-loop", name, 1).finish_ok(),
            ["started", "done"]
        );
        let joined = waiter.join().unwrap();
        blocked.unwrap();
        joined
    });
    assert_eq!(result.unwrap(), shm.version());
    assert_eq!(shm.version(), v0 + 1);
    assert_eq!(reader.read(), Pair { a: 1, b: 1 });
    eprintln!("notified reader woken by a write: {switches} switches");
    assert!(switches <= 5, "{switches} sleeps before the wake: slices?");
}

// ---- 7. a dead in-place writer: a reader cannot repair, a writable read does ----

#[test]
fn in_place_a_reader_cannot_repair_a_dead_writer_and_a_writable_read_does() {
    let (name, _cleanup) = region("dead-writer-reader");
    let shm = Shm::<Pair>::options()
        .in_place(true)
        .create(&name, OLD)
        .unwrap();
    let reader = Shm::<Pair>::open_reader(&name).unwrap();
    assert!(reader.is_in_place());
    let v0 = reader.version();

    let mut holder = helper!("hold-and-die", name, 100);
    holder.expect("written");
    holder.kill();

    // The version stays odd: the reader has nothing to return and cannot lock to repair.
    let short = Duration::from_millis(50);
    let r = reader.read_timeout(short);
    assert!(is_timeout(&r, short), "{r:?}");
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains(&name), "{msg}");
    assert_eq!(reader.version(), v0);
    assert!(!reader.is_poisoned(), "nobody repaired it yet");

    // A thread blocked in the reader's read() returns once this process's Shm::read() repairs
    // the region.
    let (repaired, seen_by_reader) = std::thread::scope(|s| {
        let (tid_tx, tid_rx) = mpsc::channel();
        let reader = &reader;
        let thread = s.spawn(move || {
            tid_tx.send(nix::unistd::gettid()).unwrap();
            reader.read()
        });
        let tid = tid_rx.recv().unwrap();
        let blocked = catch_unwind(|| {
            wait_until_blocked(&Path::new("/proc/self/task").join(tid.to_string()))
        });
        // Repair in any case: the scope cannot end while the thread waits.
        let repaired = shm.read();
        let seen = thread.join().unwrap();
        blocked.unwrap();
        (repaired, seen)
    });
    assert_eq!(repaired, Pair { a: 100, b: 2 }, "the partial write stays");
    assert_eq!(seen_by_reader, repaired);
    assert!(shm.is_poisoned());
    assert!(reader.is_poisoned());
    let v1 = reader.version();
    assert_eq!(v1, v0 + 1, "the poisoning publishes one version");
    assert_eq!(reader.read_timeout(Duration::ZERO).unwrap(), repaired);
    assert_eq!(reader.read(), repaired);
    assert_eq!(reader.creator_pid(), std::process::id());
    assert_eq!(reader.name(), name);
}

#[test]
fn a_reader_of_a_default_mode_region_reads_the_committed_value_of_a_dead_writer() {
    let (name, _cleanup) = region("dead-writer-reader-default");
    let shm = Shm::<Pair>::create(&name, OLD).unwrap();
    let reader = Shm::<Pair>::open_reader(&name).unwrap();
    assert!(!reader.is_in_place());
    let v0 = reader.version();
    let mut holder = helper!("hold-and-die", name, 100);
    holder.expect("written");
    holder.kill();
    // Nothing to repair for a reader: the untouched second copy is the committed value.
    assert_eq!(reader.read_timeout(Duration::ZERO).unwrap(), OLD);
    assert_eq!(reader.read(), OLD);
    assert_eq!(reader.version(), v0);
    // The next locker rolls back and publishes a new version.
    assert_eq!(*shm.lock().expect("never poisoned"), OLD);
    assert!(reader.version() > v0);
    assert!(!reader.is_poisoned());
    assert_eq!(reader.read(), OLD);
}

// ---- 8. versions count commits and never go back ----

/// A child writes a `Pair` back to back (write k sets both fields to k and publishes version
/// v0 + k); here `version()` is sampled around every read, through a `Shm` and a `ShmReader`
/// in turn: never decreasing, and the value read is the one of a version between the two
/// samples. Sampling goes on until MIN_DISTINCT version changes were seen.
fn versions_count_commits_and_never_go_back(in_place: bool) {
    let (name, _cleanup) = region(&mode_tag("versions", in_place));
    let shm = Shm::<Pair>::options()
        .in_place(in_place)
        .create(&name, Pair { a: 0, b: 0 })
        .unwrap();
    let reader = Shm::<Pair>::open_reader(&name).unwrap();
    let v0 = shm.version();
    assert_eq!(v0, 0, "a region never written is at version 0");

    let mut writer = helper!("pair-writer", name);
    writer.expect("started");
    let (mut last, mut samples, mut distinct) = (v0, 0u64, 0u64);
    while distinct <= MIN_DISTINCT && last < v0 + GIVE_UP {
        let through_reader = samples % 2 == 1;
        let (before, p, after) = if through_reader {
            (reader.version(), reader.read(), reader.version())
        } else {
            (shm.version(), shm.read(), shm.version())
        };
        samples += 1;
        assert!(
            last <= before && before <= after,
            "versions went back: {last}, {before}, {after}"
        );
        if after != last {
            distinct += 1;
        }
        last = after;
        assert_eq!(p.a, p.b, "half a write: {p:?}");
        let version_of_value = v0 + p.a;
        assert!(
            before <= version_of_value && version_of_value <= after,
            "read {p:?} (version {version_of_value}) between versions {before} and {after}"
        );
    }
    let report = stop_writer(writer);
    eprintln!(
        "in_place={in_place}: {distinct} distinct versions in {samples} samples of {} writes",
        report.count
    );
    assert!(
        distinct > MIN_DISTINCT,
        "only {distinct} version changes seen"
    );
    assert_eq!(report.poisoned, 0);
    assert_eq!(shm.version(), v0 + report.count);
    assert_eq!(reader.version(), v0 + report.count);
    assert_eq!(
        reader.read(),
        Pair {
            a: report.count,
            b: report.count
        }
    );
}

#[test]
fn versions_count_commits_and_never_go_back_while_another_process_writes() {
    versions_count_commits_and_never_go_back(false);
}

#[test]
fn versions_count_commits_and_never_go_back_while_another_process_writes_in_place() {
    versions_count_commits_and_never_go_back(true);
}

// ---- huge timeouts ----

/// `Some(Duration::MAX)` is a common way to say "no deadline" (`lock_timeout` saturates it, as
/// std's timed waits do): waiting and reading with it must behave like waiting forever, not
/// panic computing the deadline.
#[test]
fn a_huge_timeout_waits_like_no_timeout() {
    let mut panicked = Vec::new();
    for in_place in [false, true] {
        let (name, _cleanup, shm, reader) =
            counter_and_reader(&mode_tag("huge-timeout", in_place), in_place);
        let v0 = shm.version();
        *shm.lock().unwrap() = Counter::at(1);
        let v1 = shm.version();
        let huge = Duration::MAX;
        assert!(shm.lock_timeout(huge).is_ok());
        let mut check = |what: &str, f: &dyn Fn() -> bool| match catch_unwind(AssertUnwindSafe(f)) {
            Ok(ok) => assert!(ok, "{what} (in_place {in_place}) returned the wrong result"),
            Err(_) => panicked.push(format!("{what} (in_place {in_place})")),
        };
        check("Shm::wait_for_change(old, Some(Duration::MAX))", &|| {
            shm.wait_for_change(v0, Some(huge)).ok() == Some(v1)
        });
        check(
            "ShmReader::wait_for_change(old, Some(Duration::MAX))",
            &|| reader.wait_for_change(v0, Some(huge)).ok() == Some(v1),
        );
        check("ShmReader::read_timeout(Duration::MAX)", &|| {
            reader.read_timeout(huge).ok() == Some(Counter::at(1))
        });
        check("open_or_create with open_timeout(Duration::MAX)", &|| {
            Shm::<Counter>::options()
                .open_timeout(huge)
                .open_or_create(&name, || Counter::at(9))
                .is_ok_and(|again| again.read() == Counter::at(1))
        });
    }
    assert!(panicked.is_empty(), "these panicked: {panicked:#?}");
}

// ---- every backend (the matrix) ----

shmstore_tests::for_each_backend!(
    no_torn_4k_snapshot_while_another_process_rewrites_it,
    one_write_wakes_every_waiting_process,
);
