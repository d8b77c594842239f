//! The other process of shmstore's cross-process tests. The first argument picks a role; the
//! tests read what it prints on stdout (one line per event) and write lines to its stdin to
//! make it go on. It never removes a region: the test that started it does.
//!
//! Every NAME below is a location as text, read with `shmstore::Location::parse`: a POSIX
//! region name, a file path (any text containing `/`), or `sysv:KEY` for a System V segment
//! (`sysv:0x5e001001` or decimal). Every role opens and creates through
//! a `Location`, so each runs unchanged over all three backends (the tests'
//! `for_each_backend!`) — except `hold-shm-and-exec` and `list-shm-fds`, which are about
//! descriptors on `/dev/shm` and take POSIX names only.
//!
//! A role that cannot do what it was asked (a region missing, an unexpected error) panics: exit
//! status 101, with the message on stderr, which the tests inherit. Other exit statuses are
//! documented on the roles that use them.
//!
//! Roles, by topic (each documented on its function: what it does, its arguments, what it
//! prints, and how it exits):
//!
//! - Values and locking: `increment`, `open-or-create`, `hold-and-die`, `hold`, `lock-and-print`,
//!   `is-poisoned`, `create-and-die-in-init`, `writer-loop`, `write-and-hold`, `create-retyped`,
//!   `open-retyped`, `values-writer`.
//! - Snapshots and readers: `page-writer`, `pair-writer`, `big-page-writer`, `wait-change`,
//!   `read-loop`, `ping-pong`.
//! - Crash, repair and torture: `tally-worker`, `tally-reader`, `tally-create`, `repair-at-rename`.
//! - Queues: `queue-push`, `queue-push-forever`, `queue-pop`, `queue-pop-forever`, `queue-churn`,
//!   `queue-drain`, `queue-hold-role`, `queue-close`, `queue-open-as`, `queue-die-at-wake`,
//!   `queue-stop-at-unlock`, `queue-open-mode`, `queue-loan-forever`, `queue-produce`,
//!   `queue-consume`, `queue-pop-loan-hold`, `frame-loan-push`.
//! - Namespaces, owners and permissions: `setuid-open`, `setuid-reader`, `setuid-give-sysv`,
//!   `readonly-lock`, `try-and-time-out`, `pid`, `setuid-edit`.
//! - An unrecoverable mutex: `make-unrecoverable`, `lock-every-way`.
//! - Editing: `edit-loop`.
//! - Lifecycle: `wait-removed`, `open-when-created`.
//! - Changing a region's type: `config-v1-writer`, `config-v2-create`, `config-v1-plus-create`,
//!   `config-v1-committer`, `config-reader`, `config-new-writer`, `config-v1-hold-and-die`,
//!   `config-v2-loop`, `setuid-config-open`, `config-count`, `setuid-config-follower`.
//! - Descriptors and modes: `create-with-umask`, `hold-shm-and-exec`, `list-shm-fds`.
//! - Byte channels: `channel-send`.
//! - Wait sets: `wait-set-five`, `wait-set-hammer`, `wait-set-sleep`.

use std::io::{BufRead, Write};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use shmstore::{Location, Shm, ShmQueue, ShmType};
use shmstore_tests::{
    fill_frame, variant, BigPage, Counter, FrameQueue, Msg, MsgQueue, Page, Pair, Tally,
    QUEUE_CAPACITY, SHM_DIR, TALLY_WORKERS,
};

/// The helper's own `Limits`: same name and field names as the test's, `burst` retyped.
mod other_binary {
    use super::ShmType;

    #[derive(ShmType, Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    pub struct Limits {
        pub rate: u32,
        pub burst: f32,
        pub seq: u64,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["increment", name, n] => increment(name, n.parse().expect("N")),
        ["open-or-create", name, value, in_place] => {
            open_or_create(name, value.parse().expect("VALUE"), *in_place == "1")
        }
        ["hold-and-die", name, a] => hold_and_die(name, a.parse().ok()),
        ["hold", name] => hold(name),
        ["lock-and-print", name] => lock_and_print(name),
        ["is-poisoned", name] => is_poisoned(name),
        ["setuid-open", name, rest @ ..] => setuid_open(name, rest == ["allow-other-owner"]),
        ["create-and-die-in-init", name] => create_and_die_in_init(name),
        ["create-with-umask", name, umask, mode, how] => create_with_umask(
            name,
            u32::from_str_radix(umask, 8).expect("octal umask"),
            u32::from_str_radix(mode, 8).expect("octal mode"),
            how,
        ),
        ["hold-shm-and-exec", name1, name2, rest @ ..] => {
            hold_shm_and_exec(name1, name2, rest == ["control"])
        }
        ["list-shm-fds"] => list_shm_fds(),
        ["create-retyped", name] => create_retyped(name),
        ["open-retyped", name] => open_retyped(name),
        ["writer-loop", name, n] => writer_loop(name, n.parse().expect("N")),
        ["page-writer", name] => page_writer(name),
        ["big-page-writer", name] => big_page_writer(name),
        ["pair-writer", name] => pair_writer(name),
        ["write-and-hold", name, value] => write_and_hold(name, value.parse().expect("VALUE")),
        ["wait-change", name, how] => wait_change(name, how),
        ["read-loop", name] => read_loop(name),
        ["setuid-reader", name] => setuid_reader(name),
        ["ping-pong", name, rounds, how] => ping_pong(name, rounds.parse().expect("ROUNDS"), how),
        ["queue-push", name, producer, from, count, rest @ ..] => queue_push(
            name,
            producer.parse().expect("PRODUCER"),
            from.parse().expect("FROM"),
            count.parse().expect("COUNT"),
            rest == ["close"],
        ),
        ["channel-send", name, producer, from, count, how] => channel_send(
            name,
            producer.parse().expect("PRODUCER"),
            from.parse().expect("FROM"),
            count.parse().expect("COUNT"),
            how,
        ),
        ["queue-push-forever", name, producer, from, every] => queue_push_forever(
            name,
            producer.parse().expect("PRODUCER"),
            from.parse().expect("FROM"),
            every.parse().expect("EVERY"),
        ),
        ["queue-pop", name, count] => queue_pop(name, count.parse().expect("COUNT")),
        ["queue-pop-forever", name, every] => {
            queue_pop_forever(name, every.parse().expect("EVERY"))
        }
        ["queue-churn", name, every] => queue_churn(name, every.parse().expect("EVERY")),
        ["queue-drain", name, file] => queue_drain(name, file),
        ["queue-hold-role", name, role] => queue_hold_role(name, role),
        ["queue-close", name] => queue_close(name),
        ["queue-open-as", name, how] => queue_open_as(name, how),
        ["tally-worker", name, index] => tally_worker(name, index.parse().expect("INDEX")),
        ["tally-reader", name] => tally_reader(name),
        ["tally-create", name] => tally_create(name),
        ["queue-die-at-wake", shim, name, role] => queue_die_at_wake(shim, name, role),
        ["queue-stop-at-unlock", shim, name] => queue_stop_at_unlock(shim, name),
        ["queue-loan-forever", name, producer, phase, how] => {
            queue_loan_forever(name, producer.parse().expect("PRODUCER"), phase, how)
        }
        ["queue-produce", name, producer, from, count, how, rest @ ..] => queue_produce(
            name,
            producer.parse().expect("PRODUCER"),
            from.parse().expect("FROM"),
            count.parse().expect("COUNT"),
            how,
            rest == ["close"],
        ),
        ["queue-consume", name, file, how] => queue_consume(name, file, how),
        ["queue-pop-loan-hold", name] => queue_pop_loan_hold(name),
        ["frame-loan-push", name, first, count] => frame_loan_push(
            name,
            first.parse().expect("FIRST"),
            count.parse().expect("COUNT"),
        ),
        ["queue-open-mode", name, how, mode] => queue_open_mode(name, how, mode),
        ["try-and-time-out", name, ms] => try_and_time_out(name, ms.parse().expect("MS")),
        ["pid"] => pid(),
        ["setuid-give-sysv", name] => setuid_give_sysv(name),
        ["readonly-lock", path, kind] => readonly_lock(path, kind),
        ["repair-at-rename", shim, name, how] => repair_at_rename(shim, name, how),
        ["values-writer", name, how] => values_writer(name, how),
        ["setuid-edit", name] => setuid_edit(name),
        ["make-unrecoverable", name] => make_unrecoverable(name),
        ["lock-every-way", name] => lock_every_way(name),
        ["edit-loop", name] => edit_loop(name),
        ["wait-removed", name, how] => wait_removed(name, how),
        ["open-when-created", name, how, ms] => {
            open_when_created(name, how, Duration::from_millis(ms.parse().expect("MS")))
        }

        ["config-v1-writer", name, steps] => config_v1_writer(name, steps.parse().expect("STEPS")),
        ["config-v2-create", name] => config_v2_create(name),
        ["config-v1-plus-create", name] => config_v1_plus_create(name),
        ["config-v1-committer", name] => config_v1_committer(name),
        ["config-reader", name, version] => config_reader(name, version),
        ["config-v1-hold-and-die", name] => config_v1_hold_and_die(name),
        ["config-v2-loop", name, from] => config_v2_loop(name, from.parse().expect("FROM")),
        ["setuid-config-open", name, version] => setuid_config_open(name, version),
        ["config-new-writer", name, version, retries] => {
            config_new_writer(name, version, retries.parse().expect("RETRIES"))
        }
        ["config-count", name, release, n] => config_count(name, release, n.parse().expect("N")),
        ["setuid-config-follower", name] => setuid_config_follower(name),
        ["channel-loan-hold", name, side] => channel_loan_hold(name, side),
        ["setuid-channel", name] => setuid_channel(name),
        ["wait-set-five", how, v1, v2, v3, queue, channel, rounds] => wait_set_five(
            how,
            [v1, v2, v3],
            queue,
            channel,
            rounds.parse().expect("ROUNDS"),
        ),
        ["wait-set-hammer", how, value, queue, ack, rounds] => {
            wait_set_hammer(how, value, queue, ack, rounds.parse().expect("ROUNDS"))
        }
        ["wait-set-sleep", value, queue] => wait_set_sleep(value, queue),
        ["publish-on-command", value, queue] => publish_on_command(value, queue),
        ["red-other-uid-wait", name] => red_other_uid_wait(name),
        ["red-fork-wait", name] => red_fork_wait(name),
        ["red-register-sleep", value, queue, how] => red_register_sleep(value, queue, how),
        ["red-fallback-wait", value, queue] => red_fallback_wait(value, queue),
        _ => {
            eprintln!("shm-helper: unknown arguments {args:?}");
            std::process::exit(2);
        }
    }
}

// ==== Shared by the roles ====

/// Prints one line and flushes it to the test.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").expect("stdout");
    out.flush().expect("stdout");
}

/// Waits for one line (or end of input) on stdin: the test's "go".
fn wait_for_go() {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).expect("stdin");
}

/// The location a role's NAME argument names: a region name, a file path (any text with a
/// `/`) or `sysv:KEY` (see `Location::parse`).
fn at(name: &str) -> Location {
    Location::parse(name)
}

/// Opens the `T` region at NAME read-write, with the default options.
fn open<T: ShmType>(name: &str) -> Shm<T> {
    Shm::<T>::open(at(name)).expect("open")
}

/// Opens the `MsgQueue` at NAME, with the default options.
fn open_queue(name: &str) -> MsgQueue {
    MsgQueue::open(at(name)).expect("open queue")
}

/// Sleeps until killed: a role that must die holding what it holds.
fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Runs this process again with `LD_PRELOAD=SHIM` (same arguments, stdin and stdout) unless it
/// already runs under it.
fn preload(shim: &str) {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("LD_PRELOAD").is_some_and(|preloaded| preloaded == shim) {
        return;
    }
    let error = std::process::Command::new(std::env::current_exe().expect("current_exe"))
        .args(std::env::args_os().skip(1))
        .env("LD_PRELOAD", shim)
        .exec();
    panic!("cannot run myself under LD_PRELOAD={shim}: {error}");
}

/// Arms the preloaded shim: it acts at its next chance from now on. The process has no other
/// thread that could read the environment meanwhile.
fn arm(variable: &str) {
    std::env::set_var(variable, "1");
}

/// Becomes uid/gid 65534 (nobody), when running as root.
fn drop_to_nobody() {
    use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};
    if nix::unistd::geteuid().is_root() {
        setgroups(&[]).expect("setgroups");
        setgid(Gid::from_raw(65534)).expect("setgid");
        setuid(Uid::from_raw(65534)).expect("setuid");
    }
}

// ==== Values and locking ====

/// `increment NAME N`: opens a `Counter`, prints `ready`, waits for a line on stdin, then
/// does N locked read-modify-write increments (yielding inside some of them) and prints
/// `done`.
fn increment(name: &str, n: u64) {
    let shm = open::<Counter>(name);
    say("ready");
    wait_for_go();
    for i in 0..n {
        let mut g = shm.lock().expect("lock");
        let c = g.count;
        if i % 64 == 0 {
            // Now and then, give the others the processor inside the critical section: they
            // must block on the lock, not increment the value read above.
            std::thread::yield_now();
        }
        g.count = c + 1;
        g.mirror = c + 1;
    }
    say("done");
}

/// `open-or-create NAME VALUE IN_PLACE`: prints `ready`, waits for a line, races
/// `open_or_create` (its init sleeps briefly, then returns `Counter::at(VALUE)`), prints
/// `init=yes|no count=C mirror=M creator=PID`.
fn open_or_create(name: &str, value: u64, in_place: bool) {
    say("ready");
    wait_for_go();
    let mut ran = false;
    let shm = Shm::<Counter>::options()
        .in_place(in_place)
        .open_timeout(Duration::from_secs(30))
        .open_or_create(at(name), || {
            ran = true;
            // Long enough for the others to find the region still initialising.
            std::thread::sleep(Duration::from_millis(20));
            Counter::at(value)
        })
        .expect("open_or_create");
    let c = shm.read();
    say(&format!(
        "init={} count={} mirror={} creator={}",
        if ran { "yes" } else { "no" },
        c.count,
        c.mirror,
        shm.creator_pid()
    ));
}

/// `hold-and-die NAME A|none`: locks a `Pair`, sets `a = A` (or writes nothing), prints
/// `written`, sleeps until killed.
fn hold_and_die(name: &str, a: Option<u64>) {
    let shm = open::<Pair>(name);
    let mut g = shm.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(a) = a {
        g.a = a; // half of an update: `b` is never written
    }
    say("written");
    sleep_forever();
}

/// `hold NAME`: locks a `Pair`, prints `locked`, waits for a line, unlocks, prints
/// `released`.
fn hold(name: &str) {
    let shm = open::<Pair>(name);
    let g = shm.lock().expect("lock");
    say("locked");
    wait_for_go();
    drop(g);
    say("released");
}

/// `lock-and-print NAME`: prints `locking`, locks a `Pair`, prints `ok A B` or
/// `poisoned A B`.
fn lock_and_print(name: &str) {
    let shm = open::<Pair>(name);
    say("locking");
    let line = match shm.lock() {
        Ok(g) => format!("ok {} {}", g.a, g.b),
        Err(poisoned) => {
            let g = poisoned.into_inner();
            format!("poisoned {} {}", g.a, g.b)
        }
    };
    say(&line);
}

/// `is-poisoned NAME`: opens a `Pair`, prints `true` or `false`.
fn is_poisoned(name: &str) {
    let shm = open::<Pair>(name);
    say(&shm.is_poisoned().to_string());
}

/// `create-and-die-in-init NAME`: `open_or_create` of a `Counter` whose init prints `in-init`
/// and sleeps until killed.
fn create_and_die_in_init(name: &str) {
    let _shm = Shm::<Counter>::open_or_create(at(name), || {
        say("in-init");
        sleep_forever()
    });
    unreachable!("init never returns");
}

/// `writer-loop NAME N`: prints `started`, then N times (forever if N is 0) locks a `Pair`
/// and sets `a` then `b` to the next number; prints `done`.
fn writer_loop(name: &str, n: u64) {
    let shm = open::<Pair>(name);
    say("started");
    let mut i = 0u64;
    while n == 0 || i < n {
        i += 1;
        let mut g = shm.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let next = g.a.max(g.b) + 1;
        g.a = next;
        g.b = next;
    }
    say("done");
}

/// `write-and-hold NAME VALUE`: locks a `Counter`, sets both fields to VALUE, prints
/// `holding`, waits for a line, unlocks, prints `released`.
fn write_and_hold(name: &str, value: u64) {
    let shm = open::<Counter>(name);
    let mut g = shm.lock().expect("lock");
    *g = Counter::at(value);
    say("holding");
    wait_for_go();
    drop(g);
    say("released");
}

/// `create-retyped NAME`: creates this binary's `Limits` (field `burst` is an `f32`), prints
/// `created`.
fn create_retyped(name: &str) {
    let limits = other_binary::Limits {
        rate: 1,
        burst: 2.5,
        seq: 3,
    };
    let _shm = Shm::create(at(name), limits).expect("create");
    say("created");
}

/// `open-retyped NAME`: opens this binary's `Limits`, prints `ok` or `err VARIANT MESSAGE`.
fn open_retyped(name: &str) {
    match Shm::<other_binary::Limits>::open(at(name)) {
        Ok(_) => say("ok"),
        Err(e) => say(&format!("err {} {e}", variant(&e))),
    }
}

// ==== Snapshots and readers ====

/// The calling thread's voluntary context switches (how often it went to sleep).
fn voluntary_switches() -> u64 {
    std::fs::read_to_string("/proc/thread-self/status")
        .expect("/proc/thread-self/status")
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .expect("voluntary_ctxt_switches")
        .trim()
        .parse()
        .expect("a number")
}

fn write_until_told<T: ShmType>(name: &str, get: fn(&T) -> u64, set: fn(&mut T, u64)) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static STOP: AtomicBool = AtomicBool::new(false);
    let shm = open::<T>(name);
    std::thread::spawn(|| {
        wait_for_go();
        STOP.store(true, Ordering::Relaxed);
    });
    let mut next = get(&shm.read());
    let (mut count, mut poisoned) = (0u64, 0u64);
    say("started");
    let sleeps_before = voluntary_switches();
    while !STOP.load(Ordering::Relaxed) {
        let mut g = shm.lock().unwrap_or_else(|p| {
            poisoned += 1;
            p.into_inner()
        });
        next += 1;
        set(&mut g, next);
        drop(g);
        count += 1;
    }
    let sleeps = voluntary_switches() - sleeps_before;
    say(&format!("done {count} poisoned={poisoned} sleeps={sleeps}"));
}

/// `page-writer NAME` and `pair-writer NAME`: open a `Page` (a `Pair`), print `started`, then
/// until a line (or end of input) on stdin lock it and set every word (both fields) to the
/// next number, back to back; print `done COUNT poisoned=P sleeps=S` (P: how many of its locks
/// found the region poisoned; S: the voluntary context switches of the writing thread during
/// the loop, that is how often it had to sleep for the lock).
fn page_writer(name: &str) {
    write_until_told::<Page>(name, |p| p.words[0], |p, n| p.words = [n; 512]);
}

/// `page-writer NAME` and `pair-writer NAME`: open a `Page` (a `Pair`), print `started`, then
/// until a line (or end of input) on stdin lock it and set every word (both fields) to the
/// next number, back to back; print `done COUNT poisoned=P sleeps=S` (P: how many of its locks
/// found the region poisoned; S: the voluntary context switches of the writing thread during
/// the loop, that is how often it had to sleep for the lock).
fn pair_writer(name: &str) {
    write_until_told::<Pair>(name, |p| p.a, |p, n| *p = Pair { a: n, b: n });
}

/// `big-page-writer NAME`: as `page-writer`, on a 1 MiB `BigPage`, of which it sets only the
/// two ends (so that it commits as fast as it can).
fn big_page_writer(name: &str) {
    write_until_told::<BigPage>(name, |p| p.words[0], BigPage::set_ends);
}

/// `wait-change NAME shm|reader`: opens a `Counter` (read-write, or with `open_reader`), prints
/// `waiting SINCE` (its version), waits for a change without timeout, prints
/// `changed VERSION COUNT`.
fn wait_change(name: &str, how: &str) {
    let (since, changed, count) = match how {
        "shm" => {
            let shm = open::<Counter>(name);
            let since = shm.version();
            say(&format!("waiting {since}"));
            let v = shm.wait_for_change(since, None).expect("wait_for_change");
            (since, v, shm.read().count)
        }
        "reader" => {
            let reader = Shm::<Counter>::open_reader(at(name)).expect("open_reader");
            let since = reader.version();
            say(&format!("waiting {since}"));
            let v = reader
                .wait_for_change(since, None)
                .expect("wait_for_change");
            (since, v, reader.read().count)
        }
        other => panic!("unknown HOW {other}"),
    };
    assert_ne!(since, changed);
    say(&format!("changed {changed} {count}"));
}

/// `read-loop NAME`: opens a `Page` read-write, reads it once, prints `reading`, then reads it
/// until killed (exits with status 3 on a torn read).
fn read_loop(name: &str) -> ! {
    let shm = open::<Page>(name);
    shm.read();
    say("reading");
    loop {
        if shm.read().uniform().is_none() {
            eprintln!("shm-helper read-loop: torn read");
            std::process::exit(3);
        }
    }
}

/// `ping-pong NAME ROUNDS shm|reader`: opens a `Counter` (and, with `reader`, a `ShmReader` to
/// wait with), prints `ready`, then ROUNDS times waits (`wait_for_change`, 60 s at most) for
/// an odd count and writes the next even one; prints `done`, or `timeout COUNT` if a wait ran
/// out.
fn ping_pong(name: &str, rounds: u64, how: &str) {
    let shm = open::<Counter>(name);
    let reader = match how {
        "shm" => None,
        "reader" => Some(Shm::<Counter>::open_reader(at(name)).expect("open_reader")),
        other => panic!("unknown HOW {other}"),
    };
    let version = || {
        reader
            .as_ref()
            .map_or_else(|| shm.version(), |r| r.version())
    };
    let read = || reader.as_ref().map_or_else(|| shm.read(), |r| r.read());
    let wait = |since| match &reader {
        None => shm.wait_for_change(since, Some(Duration::from_secs(60))),
        Some(r) => r.wait_for_change(since, Some(Duration::from_secs(60))),
    };
    say("ready");
    for _ in 0..rounds {
        let count = loop {
            let since = version();
            let c = read().count;
            if c % 2 == 1 {
                break c;
            }
            if wait(since).is_err() {
                say(&format!("timeout {c}"));
                std::process::exit(1);
            }
        };
        *shm.lock().expect("lock") = Counter::at(count + 1);
    }
    say("done");
}

// ==== Crash, repair and torture ====

// The torture roles work on a `Tally` (see `tests/torture.rs`).

/// A flag that a thread sets on the first line (or end of input) on stdin.
fn stop_on_input() -> &'static std::sync::atomic::AtomicBool {
    use std::sync::atomic::{AtomicBool, Ordering};
    static STOP: AtomicBool = AtomicBool::new(false);
    std::thread::spawn(|| {
        wait_for_go();
        STOP.store(true, Ordering::Relaxed);
    });
    &STOP
}

/// Prints `violation WHAT` and exits with status 3.
fn violation(what: &str) -> ! {
    say(&format!("violation {what}"));
    eprintln!("shm-helper: violation {what}");
    std::process::exit(3);
}

/// The longest a torture role waits for a lock: beyond it, the test counts a deadlock.
const TORTURE_LOCK_BOUND: Duration = Duration::from_secs(10);

/// `tally-worker NAME INDEX`: until a line (or end of input) on stdin, locks the region
/// (`lock_timeout`, 10 s at most: prints `stuck` and exits with status 4 otherwise), adds 1 to
/// `total`, pauses, adds 1 to `per_worker[INDEX]`, unlocks. A lock that finds the value
/// inconsistent, or poisoned in the default mode, prints `violation …` and exits with
/// status 3. In an `in_place` region, a poisoned lock checks that the dead holder left
/// `total - sum(per_worker)` at 0 or 1, repairs with `total = sum(per_worker)`, clears the
/// poison while still holding the lock and prints `repaired DIFF`. Prints `done UPDATES` at
/// the end.
fn tally_worker(name: &str, index: usize) {
    use std::sync::atomic::Ordering;
    use std::sync::TryLockError;
    assert!(index < TALLY_WORKERS, "INDEX out of range");
    let stop = stop_on_input();
    let shm = open::<Tally>(name);
    let in_place = shm.is_in_place();
    let mut updates = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut g = match shm.lock_timeout(TORTURE_LOCK_BOUND) {
            Ok(g) => {
                if !g.is_consistent() {
                    violation(&format!("locked an inconsistent value {:?}", *g));
                }
                g
            }
            Err(TryLockError::WouldBlock) => {
                say("stuck");
                eprintln!("shm-helper tally-worker: no lock after {TORTURE_LOCK_BOUND:?}");
                std::process::exit(4);
            }
            Err(TryLockError::Poisoned(poisoned)) => {
                let mut g = poisoned.into_inner();
                if !in_place {
                    violation("poisoned in the default mode");
                }
                // The dead holder wrote `total` first and its slot second: it left the value
                // consistent (died before the first write or after the second) or `total` one
                // ahead (died in between). Its slot is the commit record of its update, so the
                // repair drops the half-done update: `total = sum(per_worker)`.
                let sum = g.sum();
                let diff = g.total.wrapping_sub(sum);
                if diff > 1 {
                    violation(&format!("poisoned value off by {diff}: {:?}", *g));
                }
                g.total = sum;
                // Still holding the lock: no other locker sees this poison a second time.
                shm.clear_poison();
                say(&format!("repaired {diff}"));
                g
            }
        };
        let total = g.total + 1;
        // SAFETY: a valid, aligned `&mut u64` into the locked value. Volatile so that the
        // first write really reaches the shared memory before the pause.
        unsafe { std::ptr::write_volatile(&mut g.total, total) };
        for i in 0..400u32 {
            std::hint::spin_loop();
            if i % 128 == 0 && updates % 8 == 0 {
                std::thread::yield_now();
            }
        }
        g.per_worker[index] += 1;
        drop(g);
        updates += 1;
    }
    say(&format!("done {updates}"));
}

/// `tally-reader NAME`: until a line (or end of input) on stdin, snapshots with `read()` and
/// checks `total == sum(per_worker)` (in an `in_place` region, only snapshots that no poison
/// or repair can explain: see the torture test); prints `violation …` and exits with status 3
/// on a failed check, else `done SNAPSHOTS CHECKED EXCUSED`.
fn tally_reader(name: &str) {
    use std::sync::atomic::Ordering;
    let stop = stop_on_input();
    let shm = open::<Tally>(name);
    let in_place = shm.is_in_place();
    let (mut snapshots, mut checked, mut excused) = (0u64, 0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        let (v1, p1) = (shm.version(), shm.is_poisoned());
        let t = shm.read();
        let (p2, v2) = (shm.is_poisoned(), shm.version());
        snapshots += 1;
        if in_place && (p1 || p2) {
            continue; // a poisoned value may be a dead writer's half-done update
        }
        if t.is_consistent() {
            checked += 1;
        } else if in_place && v1 != v2 {
            // The snapshot may be a poisoned value published by its recovery, repaired and
            // un-poisoned before `p2` was read: only a publish in between explains it.
            excused += 1;
        } else {
            violation(&format!(
                "inconsistent snapshot {t:?} (versions {v1}..{v2})"
            ));
        }
    }
    say(&format!("done {snapshots} {checked} {excused}"));
}

/// `tally-create NAME`: prints `ready`, waits for a line, then `open_or_create`s a `Tally`
/// (open timeout 10 s) whose init prints `init`, spins about 1 ms and returns a value made of
/// a token unique to this process (`total` and `per_worker[0]`); prints
/// `ok TOKEN ran=yes|no` with the token of the value it opened.
fn tally_create(name: &str) {
    say("ready");
    wait_for_go();
    let pid = u64::from(std::process::id());
    let mut token = 0u64;
    let shm = Shm::<Tally>::options()
        .open_timeout(TORTURE_LOCK_BOUND)
        .open_or_create(at(name), || {
            say("init");
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            token = (pid << 32) | u64::from(nanos) | 1;
            let start = std::time::Instant::now();
            while start.elapsed() < Duration::from_millis(1) {
                std::hint::spin_loop();
            }
            let mut per_worker = [0; TALLY_WORKERS];
            per_worker[0] = token;
            Tally {
                total: token,
                per_worker,
            }
        })
        .expect("open_or_create");
    let t = shm.read();
    if !t.is_consistent() {
        violation(&format!("opened an inconsistent value {t:?}"));
    }
    let ran = if token != 0 { "yes" } else { "no" };
    if token != 0 && t.total != token {
        violation(&format!("init ran with token {token}, opened {}", t.total));
    }
    say(&format!("ok {} ran={ran}", t.total));
}

/// `repair-at-rename SHIM NAME kill|stop-kill` (SHIM: `at_rename.c` built, see
/// `tests/repair_race.rs`): arms the shim with the mode given, then `open_or_create`s a
/// `Counter` of 1 with mode 0644 at NAME, dying at its first `renameat2` (after it with
/// `stop-kill`, stopped just before it). Prints `survived` and waits for a line if it made
/// none.
fn repair_at_rename(shim: &str, name: &str, how: &str) {
    preload(shim);
    std::env::set_var("SHMSTORE_TEST_AT_RENAME", how);
    let _shm = Shm::<Counter>::options()
        .mode(0o644)
        .open_timeout(Duration::from_secs(10))
        .open_or_create(at(name), || Counter::at(1))
        .expect("open_or_create");
    say("survived");
    wait_for_go();
}

// ==== Queues ====

// All on a `MsgQueue` (`ShmQueue<Msg, QUEUE_CAPACITY>`) that the test created. The roles under a
// preloaded shim (`tests/shims/`, see `tests/queue_trust.rs`) first run themselves again with
// `LD_PRELOAD=SHIM`, then arm the shim by setting its variable.

/// Exits with status 3 if `msg` is not an element some producer pushed.
fn check_intact(msg: &Msg) {
    if !msg.is_intact() {
        eprintln!("shm-helper: damaged queue element {msg:?}");
        std::process::exit(3);
    }
}

/// `queue-push NAME PRODUCER FROM COUNT [close]`: prints `pushing`, pushes
/// `Msg::new(PRODUCER, FROM + i)` for i in 0..COUNT with `push` (waiting for room), prints
/// `pushed COUNT`, or `err VARIANT K` at the first error (K: how many it pushed before). With
/// `close`, then closes the queue and prints `closed`.
fn queue_push(name: &str, producer: u64, from: u64, count: u64, close: bool) {
    let queue = open_queue(name);
    say("pushing");
    for i in 0..count {
        if let Err(e) = queue.push(Msg::new(producer, from + i)) {
            say(&format!("err {} {i}", variant(&e)));
            return;
        }
    }
    say(&format!("pushed {count}"));
    if close {
        queue.close();
        say("closed");
    }
}

/// `queue-push-forever NAME PRODUCER FROM EVERY`: prints `started`, then pushes elements
/// FROM, FROM + 1, … of PRODUCER until killed; after every EVERY pushes prints `pushed S`:
/// every element numbered below S was published.
fn queue_push_forever(name: &str, producer: u64, from: u64, every: u64) -> ! {
    let queue = open_queue(name);
    say("started");
    let mut next = from;
    loop {
        queue.push(Msg::new(producer, next)).expect("push");
        next += 1;
        if (next - from) % every == 0 {
            say(&format!("pushed {next}"));
        }
    }
}

/// `queue-pop NAME COUNT`: prints `popping`, then pops with `pop` COUNT times (until killed
/// if COUNT is 0), printing `got PRODUCER SEQ` as soon as each `pop` returns, or `none` when
/// the queue is closed and empty (and stops popping); exits with status 3 on a damaged
/// element. Then prints `done` and waits for a line, keeping its handle (and role).
fn queue_pop(name: &str, count: u64) {
    let queue = open_queue(name);
    say("popping");
    let mut popped = 0u64;
    while count == 0 || popped < count {
        match queue.pop() {
            Ok(Some(msg)) => {
                check_intact(&msg);
                say(&format!("got {} {}", msg.producer, msg.seq));
            }
            Ok(None) => {
                say("none");
                break;
            }
            Err(e) => {
                say(&format!("err {}", variant(&e)));
                break;
            }
        }
        popped += 1;
    }
    say("done");
    wait_for_go();
    drop(queue);
}

/// `queue-pop-forever NAME EVERY`: prints `started`, then pops until killed, checking that
/// every element is intact and that each producer's elements come in increasing order (exit
/// status 3 otherwise); after every EVERY pops prints `popped K`.
fn queue_pop_forever(name: &str, every: u64) -> ! {
    let queue = open_queue(name);
    let mut last = std::collections::HashMap::<u64, u64>::new();
    say("started");
    let mut popped = 0u64;
    loop {
        let msg = queue
            .pop()
            .expect("pop")
            .expect("the queue is never closed here");
        check_intact(&msg);
        if let Some(previous) = last.insert(msg.producer, msg.seq) {
            if msg.seq <= previous {
                eprintln!("shm-helper: {msg:?} came after element {previous} of its producer");
                std::process::exit(3);
            }
        }
        popped += 1;
        if popped % every == 0 {
            say(&format!("popped {popped}"));
        }
    }
}

/// `queue-churn NAME EVERY`: prints `started`, then until killed pops an element and pushes
/// it straight back (so the queue's elements circulate, and it holds at most one at a time);
/// after every EVERY round trips prints `churned K`.
fn queue_churn(name: &str, every: u64) -> ! {
    let queue = open_queue(name);
    say("started");
    let mut churned = 0u64;
    loop {
        // No check here: as little work as possible outside the queue's lock. The test checks
        // every element once the churners are dead.
        let msg = queue
            .pop()
            .expect("pop")
            .expect("the queue is never closed here");
        queue.push(msg).expect("push");
        churned += 1;
        if churned % every == 0 {
            say(&format!("churned {churned}"));
        }
    }
}

/// `queue-drain NAME FILE`: pops with `pop` until the queue is closed and empty, writing
/// `PRODUCER SEQ` for each element to FILE (exit status 3 on a damaged one); prints
/// `got COUNT`.
fn queue_drain(name: &str, file: &str) {
    let queue = open_queue(name);
    let mut out = std::io::BufWriter::new(std::fs::File::create(file).expect("create FILE"));
    let mut count = 0u64;
    while let Some(msg) = queue.pop().expect("pop") {
        check_intact(&msg);
        writeln!(out, "{} {}", msg.producer, msg.seq).expect("write FILE");
        count += 1;
    }
    out.flush().expect("write FILE");
    say(&format!("got {count}"));
}

/// `queue-hold-role NAME producer|consumer`: takes the role (pushes `Msg::new(1, 0)`, or
/// `try_pop`s), prints `holding`, waits for a line, exits.
fn queue_hold_role(name: &str, role: &str) {
    let queue = open_queue(name);
    match role {
        "producer" => queue.push(Msg::new(1, 0)).expect("push"),
        "consumer" => assert_eq!(queue.try_pop().expect("try_pop"), None),
        other => panic!("unknown role {other}"),
    }
    say("holding");
    wait_for_go();
    drop(queue);
}

/// `queue-close NAME`: closes the queue, prints `closed`.
fn queue_close(name: &str) {
    open_queue(name).close();
    say("closed");
}

/// `queue-open-as NAME queue|value|capacity|element`: opens NAME as a `MsgQueue`, as a
/// `Shm<Msg>`, as a `Msg` queue of twice the capacity, or as a queue of `[u64; 8]`; prints
/// `ok` or `err VARIANT`.
fn queue_open_as(name: &str, how: &str) {
    let result = match how {
        "queue" => MsgQueue::open(at(name)).map(drop),
        "value" => Shm::<Msg>::open(at(name)).map(drop),
        "capacity" => ShmQueue::<Msg, { 2 * QUEUE_CAPACITY }>::open(at(name)).map(drop),
        "element" => ShmQueue::<[u64; 8], QUEUE_CAPACITY>::open(at(name)).map(drop),
        other => panic!("unknown HOW {other}"),
    };
    match result {
        Ok(()) => say("ok"),
        Err(e) => say(&format!("err {}", variant(&e))),
    }
}

/// `queue-die-at-wake SHIM NAME producer|consumer|closer` (SHIM: `kill_at_wake.c` built):
/// takes its role first (producer: pushes `Msg::new(1, 0)`; consumer: `try_pop`s, which must
/// find the queue empty; closer: nothing), arms, prints `armed`, waits for a line, then
/// pushes `Msg::new(1, 1)` (pops one element, closes the queue), dying at its first shared
/// futex wake. Prints `survived` and waits for a line if it made none.
fn queue_die_at_wake(shim: &str, name: &str, role: &str) {
    preload(shim);
    let queue = open_queue(name);
    // Take the role before arming: taking it makes a wake-up of its own.
    match role {
        "producer" => queue.push(Msg::new(1, 0)).expect("push"),
        "consumer" => assert_eq!(queue.try_pop().expect("try_pop"), None),
        "closer" => {}
        other => panic!("unknown role {other}"),
    }
    arm("SHMSTORE_TEST_KILL_AT_WAKE");
    say("armed");
    wait_for_go();
    match role {
        "producer" => queue.push(Msg::new(1, 1)).expect("push"),
        "consumer" => check_intact(&queue.pop().expect("pop").expect("an element")),
        _ => queue.close(),
    }
    say("survived");
    wait_for_go();
}

/// `queue-stop-at-unlock SHIM NAME` (SHIM: `stop_at_unlock.c` built): arms, pushes
/// `Msg::new(7, 0)`, stopping itself (SIGSTOP) while it holds the queue's lock, just before
/// releasing it; once continued, prints `pushed` and waits for a line.
fn queue_stop_at_unlock(shim: &str, name: &str) {
    preload(shim);
    let queue = open_queue(name);
    arm("SHMSTORE_TEST_STOP_AT_UNLOCK");
    queue.push(Msg::new(7, 0)).expect("push");
    say("pushed");
    wait_for_go();
}

// ---- Loans, batches and iteration (issue 17, `tests/queue_loans.rs`) ----

/// How many spin-loop hints `queue-loan-forever` waits after each word it writes into a loan,
/// so that most of its time, and so most kills, fall inside a loan with the element half
/// written.
const LOAN_PAUSE: u32 = 300;

/// `queue-loan-forever NAME PRODUCER PHASE HOW`: prints `started`, then until killed pushes
/// elements 0, 1, … of PRODUCER, HOW: `loan` (each written into a loan one word at a time,
/// pausing after each, the checksum last, then committed: a kill most often lands with a
/// loan half written) or `slice:B` (`push_slice` of B at a time). The `Counter` region PHASE
/// says where it is: 1 from just after it got a loan (or just before a `push_slice`) to just
/// after its commit (or the `push_slice` returned), 0 otherwise.
fn queue_loan_forever(name: &str, producer: u64, phase: &str, how: &str) -> ! {
    let mut queue = open_queue(name);
    let phase = open::<Counter>(phase);
    say("started");
    if let Some(batch) = how.strip_prefix("slice:") {
        let batch: u64 = batch.parse().expect("slice:B");
        for first in (0..).step_by(batch as usize) {
            let msgs: Vec<Msg> = (first..first + batch)
                .map(|seq| Msg::new(producer, seq))
                .collect();
            *phase.lock().expect("lock") = Counter::at(1);
            queue.push_slice(&msgs).expect("push_slice");
            *phase.lock().expect("lock") = Counter::at(0);
        }
    }
    assert_eq!(how, "loan", "unknown HOW");
    for seq in 0.. {
        let whole = Msg::new(producer, seq);
        let mut loan = queue.loan().expect("loan");
        *phase.lock().expect("lock") = Counter::at(1);
        let put = |word: &mut u64, value: u64| {
            *word = value;
            for _ in 0..LOAN_PAUSE {
                std::hint::spin_loop();
            }
        };
        put(&mut loan.producer, whole.producer);
        put(&mut loan.seq, whole.seq);
        for (i, &w) in whole.words.iter().enumerate() {
            put(&mut loan.words[i], w);
        }
        put(&mut loan.check, whole.check);
        loan.commit().expect("commit");
        *phase.lock().expect("lock") = Counter::at(0);
    }
    unreachable!("2^64 elements")
}

/// `queue-produce NAME PRODUCER FROM COUNT HOW [close]`: prints `pushing`, then pushes
/// `Msg::new(PRODUCER, FROM + i)` for i in 0..COUNT, HOW: `loan` (one committed loan each) or
/// `slice:B` (`push_slice` of B at a time); prints `pushed COUNT` (or `err VARIANT`). With
/// `close`, then closes the queue and prints `closed`.
fn queue_produce(name: &str, producer: u64, from: u64, count: u64, how: &str, close: bool) {
    let mut queue = open_queue(name);
    say("pushing");
    let pushed = match how.strip_prefix("slice:") {
        Some(batch) => {
            let batch: u64 = batch.parse().expect("slice:B");
            let all: Vec<Msg> = (from..from + count)
                .map(|s| Msg::new(producer, s))
                .collect();
            all.chunks(batch as usize)
                .try_for_each(|chunk| queue.push_slice(chunk))
        }
        None if how == "loan" => (from..from + count).try_for_each(|seq| {
            let mut loan = queue.loan()?;
            *loan = Msg::new(producer, seq);
            loan.commit()
        }),
        None => panic!("unknown HOW {how}"),
    };
    match pushed {
        Ok(()) => say(&format!("pushed {count}")),
        Err(e) => say(&format!("err {}", variant(&e))),
    }
    if close {
        queue.close();
        say("closed");
    }
}

/// `queue-consume NAME FILE HOW`: prints `consuming`, then takes elements until the queue is
/// closed and empty, HOW: `pop-into:B` (`pop_into` with room for B), `pop-loan` (a loan each,
/// read in place) or `iter` (`for msg in &queue`); writes `PRODUCER SEQ` for each to FILE
/// (exit status 3 on a damaged element) and prints `got COUNT`.
fn queue_consume(name: &str, file: &str, how: &str) {
    let mut queue = open_queue(name);
    let mut out = std::io::BufWriter::new(std::fs::File::create(file).expect("create FILE"));
    let mut count = 0u64;
    let mut record = |msg: &Msg| {
        check_intact(msg);
        writeln!(out, "{} {}", msg.producer, msg.seq).expect("write FILE");
        count += 1;
    };
    say("consuming");
    if let Some(batch) = how.strip_prefix("pop-into:") {
        let mut buffer = vec![Msg::new(0, 0); batch.parse().expect("pop-into:B")];
        loop {
            let n = queue.pop_into(&mut buffer).expect("pop_into");
            if n == 0 {
                break;
            }
            buffer[..n].iter().for_each(&mut record);
        }
    } else if how == "pop-loan" {
        while let Some(loan) = queue.pop_loan().expect("pop_loan") {
            record(&loan);
        }
    } else if how == "iter" {
        for msg in &queue {
            record(&msg.expect("pop"));
        }
    } else {
        panic!("unknown HOW {how}");
    }
    out.flush().expect("write FILE");
    say(&format!("got {count}"));
}

/// `queue-pop-loan-hold NAME`: takes a loan of the front element (waiting for one), prints
/// `holding PRODUCER SEQ` and sleeps until killed, the loan held.
fn queue_pop_loan_hold(name: &str) -> ! {
    let mut queue = open_queue(name);
    let loan = queue
        .pop_loan()
        .expect("pop_loan")
        .expect("an element, not a closed queue");
    check_intact(&loan);
    say(&format!("holding {} {}", loan.producer, loan.seq));
    sleep_forever()
}

/// `frame-loan-push NAME FIRST COUNT`: opens the `FrameQueue` NAME and pushes frames FIRST,
/// FIRST + 1, … (COUNT of them), each written in place in a loan (`fill_frame`); prints
/// `pushed COUNT`. By value, a single frame would overflow the main thread's stack.
fn frame_loan_push(name: &str, first: u64, count: u64) {
    let mut queue = FrameQueue::open(at(name)).expect("open frame queue");
    for seq in first..first + count {
        let mut loan = queue.loan().expect("loan");
        fill_frame(&mut loan, seq);
        loan.commit().expect("commit");
    }
    say(&format!("pushed {count}"));
}

// ==== Namespaces, owners and permissions ====

// Other users (uid 65534), PID namespaces (see `tests/pid_namespaces.rs`) and the hostile peers of
// issue 13.

/// `setuid-open NAME [allow-other-owner]`: drops to uid/gid 65534, opens a `Counter`,
/// prints `ok COUNT` or `err VARIANT MESSAGE`.
fn setuid_open(name: &str, allow_other_owner: bool) {
    use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};
    setgroups(&[]).expect("setgroups");
    setgid(Gid::from_raw(65534)).expect("setgid");
    setuid(Uid::from_raw(65534)).expect("setuid");
    match Shm::<Counter>::options()
        .allow_other_owner(allow_other_owner)
        .open(at(name))
    {
        Ok(shm) => say(&format!("ok {}", shm.read().count)),
        Err(e) => say(&format!("err {} {e}", variant(&e))),
    }
}

/// `setuid-reader NAME`: drops to uid/gid 65534 and opens a `Counter`: prints
/// `reader-plain ok|err VARIANT` (`open_reader` without `allow_other_owner`),
/// `read-write ok|err VARIANT` (`open` with it), then with `open_reader` and
/// `allow_other_owner(true)`: `reader COUNT VERSION IN_PLACE`, and after the next change
/// `changed COUNT VERSION`.
fn setuid_reader(name: &str) {
    use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};
    setgroups(&[]).expect("setgroups");
    setgid(Gid::from_raw(65534)).expect("setgid");
    setuid(Uid::from_raw(65534)).expect("setuid");
    let outcome = |r: Result<(), shmstore::Error>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("err {}", variant(&e)),
    };
    say(&format!(
        "reader-plain {}",
        outcome(Shm::<Counter>::open_reader(at(name)).map(drop))
    ));
    say(&format!(
        "read-write {}",
        outcome(
            Shm::<Counter>::options()
                .allow_other_owner(true)
                .open(at(name))
                .map(drop)
        )
    ));
    let reader = Shm::<Counter>::options()
        .allow_other_owner(true)
        .open_reader(at(name))
        .expect("open_reader with allow_other_owner");
    let c = reader.read();
    assert_eq!(c.count, c.mirror);
    let since = reader.version();
    say(&format!(
        "reader {} {since} {}",
        c.count,
        reader.is_in_place()
    ));
    let now = reader
        .wait_for_change(since, None)
        .expect("wait_for_change");
    let c = reader.read();
    assert_eq!(c.count, c.mirror);
    say(&format!("changed {} {now}", c.count));
}

/// `setuid-give-sysv KEY`: drops to uid/gid 65534, creates a `Counter` of 7 with mode 0666
/// at the System V location KEY, gives the segment to uid/gid 0 with `shmctl(IPC_SET)`,
/// prints `given`.
fn setuid_give_sysv(name: &str) {
    use nix::libc;
    drop_to_nobody();
    let Location::SysV(key) = at(name) else {
        panic!("setuid-give-sysv needs a System V location, not {name}");
    };
    let shm = Shm::<Counter>::options()
        .mode(0o666)
        .create(at(name), Counter::at(7))
        .expect("create");
    // SAFETY: plain integer arguments; looks the key up.
    let id = unsafe { libc::shmget(key, 0, 0) };
    assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
    // SAFETY: `shmid_ds` is plain integers; all zeros is valid.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: IPC_STAT writes one `shmid_ds` into `ds`.
    let rc = unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) };
    assert_eq!(rc, 0, "IPC_STAT: {}", std::io::Error::last_os_error());
    ds.shm_perm.uid = 0;
    ds.shm_perm.gid = 0;
    // SAFETY: IPC_SET reads the owner, group and mode from `ds`.
    let rc = unsafe { libc::shmctl(id, libc::IPC_SET, &mut ds) };
    assert_eq!(rc, 0, "IPC_SET: {}", std::io::Error::last_os_error());
    drop(shm);
    say("given");
}

/// `readonly-lock PATH sh|ex`: drops to uid/gid 65534 (when root), opens PATH read-only,
/// takes an open-file-description read lock from byte 0 to the end of any file
/// (`F_OFD_SETLK`, `F_RDLCK`, length 0) and `flock(LOCK_SH)` (or `LOCK_EX`), prints `locked`,
/// waits for a line, exits.
fn readonly_lock(path: &str, kind: &str) {
    use nix::libc;
    use std::os::fd::AsRawFd;
    drop_to_nobody();
    let file = std::fs::File::open(path).expect("open read-only");
    // SAFETY: `flock` is plain integers; all zeros is valid.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_RDLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = 0;
    lock.l_len = 0;
    // SAFETY: F_OFD_SETLK reads the struct we pass; `file` keeps the descriptor open.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &mut lock) };
    assert_eq!(rc, 0, "F_OFD_SETLK: {}", std::io::Error::last_os_error());
    let op = match kind {
        "sh" => libc::LOCK_SH,
        "ex" => libc::LOCK_EX,
        other => panic!("readonly-lock: sh or ex, not {other}"),
    };
    // SAFETY: `flock` takes plain integers; `file` keeps the descriptor open.
    let rc = unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) };
    assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
    say("locked");
    wait_for_go();
}

/// `try-and-time-out NAME MS`: opens a `Pair`, prints `try_lock R` with R the outcome of
/// `try_lock` (`ok A B`, `would-block` or `poisoned`), then `lock_timeout R` with the outcome
/// of `lock_timeout(MS milliseconds)`.
fn try_and_time_out(name: &str, ms: u64) {
    fn outcome(result: std::sync::TryLockResult<shmstore::ShmGuard<'_, Pair>>) -> String {
        match result {
            Ok(g) => format!("ok {} {}", g.a, g.b),
            Err(std::sync::TryLockError::WouldBlock) => "would-block".to_string(),
            Err(std::sync::TryLockError::Poisoned(_)) => "poisoned".to_string(),
        }
    }
    let shm = open::<Pair>(name);
    say(&format!("try_lock {}", outcome(shm.try_lock())));
    let timeout = Duration::from_millis(ms);
    say(&format!(
        "lock_timeout {}",
        outcome(shm.lock_timeout(timeout))
    ));
}

/// `pid`: prints `pid P`, this process's pid as its own PID namespace numbers it.
fn pid() {
    say(&format!("pid {}", std::process::id()));
}

// ==== Descriptors and modes ====

// What the operating system sees (see `tests/os.rs`); `hold-shm-and-exec` and `list-shm-fds` are
// about descriptors on `/dev/shm` and take POSIX names only.

/// `create-with-umask NAME UMASK MODE HOW`: sets the umask, creates a `Counter` with `mode`
/// (HOW: `create`, `open-or-create` or `in-place`), prints `created`.
fn create_with_umask(name: &str, umask: u32, mode: u32, how: &str) {
    use nix::sys::stat::Mode;
    nix::sys::stat::umask(Mode::from_bits_truncate(umask));
    let options = Shm::<Counter>::options().mode(mode);
    let result = match how {
        "create" => options.create(at(name), Counter::at(1)),
        "open-or-create" => options.open_or_create(at(name), || Counter::at(1)),
        "in-place" => options.in_place(true).create(at(name), Counter::at(1)),
        other => panic!("unknown HOW {other}"),
    };
    result.expect("create");
    say("created");
}

/// `hold-shm-and-exec NAME1 NAME2 [control]` (POSIX names only): creates, opens and
/// open-or-creates regions (keeping the handles), lists regions, optionally opens a
/// descriptor on NAME1 without close-on-exec, then runs `list-shm-fds` and exits when it does.
fn hold_shm_and_exec(name1: &str, name2: &str, control: bool) {
    let created = Shm::<Counter>::create(name1, Counter::at(1)).expect("create");
    let opened = Shm::<Counter>::open(name1).expect("open");
    let either = Shm::<Counter>::open_or_create(name2, || Counter::at(2)).expect("open_or_create");
    let in_place = Shm::<Counter>::options()
        .in_place(true)
        .open_or_create(&format!("{name2}.in-place"), || Counter::at(3))
        .expect("open_or_create in place");
    shmstore::list().expect("list");
    // A descriptor without O_CLOEXEC, to show that the checker sees one when there is one.
    let leaked = control.then(|| {
        use nix::fcntl::{open, OFlag};
        use nix::sys::stat::Mode;
        open(
            format!("{SHM_DIR}/{name1}").as_str(),
            OFlag::O_RDONLY,
            Mode::empty(),
        )
        .expect("open without O_CLOEXEC")
    });
    let status = std::process::Command::new(std::env::current_exe().expect("current_exe"))
        .arg("list-shm-fds")
        .status()
        .expect("exec list-shm-fds");
    assert!(status.success());
    drop((created, opened, either, in_place, leaked));
}

/// `list-shm-fds` (POSIX only): prints `fd N -> TARGET` for every descriptor on the
/// shared-memory filesystem, then `end`.
fn list_shm_fds() {
    let shm_dev = std::fs::metadata(SHM_DIR).expect("stat /dev/shm").dev();
    let mut fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort();
    for fd in fds {
        let link = format!("/proc/self/fd/{fd}");
        let Ok(target) = std::fs::read_link(&link) else {
            continue; // the directory iterator's own descriptor, closed meanwhile
        };
        let on_shm = std::fs::metadata(&link).is_ok_and(|m| m.dev() == shm_dev);
        if on_shm || target.starts_with(SHM_DIR) {
            say(&format!("fd {fd} -> {}", target.display()));
        }
    }
    say("end");
}

// ==== Field types ====

/// `values-writer NAME valid|forged`: creates a `ServiceConfig` (issue 15's realistic
/// configuration) holding `ServiceConfig::example()` or `ServiceConfig::forged()`, prints
/// `written`.
fn values_writer(name: &str, how: &str) {
    use shmstore_tests::ServiceConfig;
    let config = match how {
        "valid" => ServiceConfig::example(),
        "forged" => ServiceConfig::forged(),
        other => panic!("values-writer: valid or forged, not {other}"),
    };
    Shm::<ServiceConfig>::create(at(name), config).expect("create");
    say("written");
}

/// `setuid-edit NAME`: drops to uid/gid 65534 and opens the region with an untyped `Editor`
/// (other owners allowed): prints `edit ok` or `edit err VARIANT MESSAGE`, then whether an
/// `Inspector` reads it: `inspect ok TYPE` or `inspect err VARIANT`.
fn setuid_edit(name: &str) {
    use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};
    setgroups(&[]).expect("setgroups");
    setgid(Gid::from_raw(65534)).expect("setgid");
    setuid(Uid::from_raw(65534)).expect("setuid");
    match shmstore::inspect::Editor::options()
        .allow_other_owner(true)
        .open(at(name))
    {
        Ok(_) => say("edit ok"),
        Err(e) => say(&format!("edit err {} {e}", variant(&e))),
    }
    match shmstore::inspect::Inspector::open(at(name)) {
        Ok(view) => say(&format!("inspect ok {}", view.type_name())),
        Err(e) => say(&format!("inspect err {}", variant(&e))),
    }
}

// ==== An unrecoverable mutex ====

/// `make-unrecoverable NAME` (a POSIX name): after the holder of the region's lock died, locks
/// the header's mutex with `pthread_mutex_lock` (at offset 192, FORMAT.md), which answers
/// `EOWNERDEAD`, and unlocks it without `pthread_mutex_consistent`, as a careless C program
/// would: glibc marks the mutex unrecoverable. Prints `unrecoverable`.
fn make_unrecoverable(name: &str) {
    use nix::libc;
    use nix::sys::mman::{mmap, MapFlags, ProtFlags};
    use std::num::NonZeroUsize;
    const MUTEX_OFFSET: usize = 192;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(shmstore_tests::shm_path(name))
        .expect("open the region's file");
    let len = NonZeroUsize::new(4096).expect("non-zero");
    // SAFETY: a new shared mapping of the region's first page (the header, mutex included),
    // chosen by the kernel, so it overlaps nothing of this process; it is never unmapped, and
    // only the mutex in it is used, through the pthread functions.
    let map = unsafe {
        mmap(
            None,
            len,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
            &file,
            0,
        )
    }
    .expect("mmap");
    let mutex = map
        .as_ptr()
        .cast::<u8>()
        .wrapping_add(MUTEX_OFFSET)
        .cast::<libc::pthread_mutex_t>();
    // SAFETY: the region's creator initialised a process-shared mutex at this offset, inside
    // the mapping and 8-aligned (the mapping is page-aligned); the mapping stays.
    let locked = unsafe { libc::pthread_mutex_lock(mutex) };
    assert_eq!(locked, libc::EOWNERDEAD, "the holder was meant to be dead");
    // SAFETY: as above; this thread holds the mutex (EOWNERDEAD gives it to the caller).
    let unlocked = unsafe { libc::pthread_mutex_unlock(mutex) };
    assert_eq!(unlocked, 0, "pthread_mutex_unlock");
    say("unrecoverable");
}

/// `lock-every-way NAME`: opens a `Pair` and tries `lock()`, `try_lock()` and
/// `lock_timeout(50 ms)` in turn, each on a thread of its own, printing one line each: `WAY
/// ok`, `WAY poisoned`, `WAY would-block` or `WAY panic MESSAGE`, and `WAY hung` if the call has
/// not returned after 10 s (the thread is left behind; the process exits at the end).
fn lock_every_way(name: &str) {
    use std::sync::{mpsc, TryLockError};
    // The panics are the answers, printed on stdout: no backtrace noise on stderr.
    std::panic::set_hook(Box::new(|_| {}));
    let shm: &'static Shm<Pair> = Box::leak(Box::new(open::<Pair>(name)));
    /// One way to lock, answering how it went.
    type Way = fn(&Shm<Pair>) -> &'static str;
    let ways: [(&str, Way); 3] = [
        ("lock", |shm| match shm.lock() {
            Ok(_) => "ok",
            Err(_) => "poisoned",
        }),
        ("try_lock", |shm| match shm.try_lock() {
            Ok(_) => "ok",
            Err(TryLockError::Poisoned(_)) => "poisoned",
            Err(TryLockError::WouldBlock) => "would-block",
        }),
        ("lock_timeout", |shm| {
            match shm.lock_timeout(Duration::from_millis(50)) {
                Ok(_) => "ok",
                Err(TryLockError::Poisoned(_)) => "poisoned",
                Err(TryLockError::WouldBlock) => "would-block",
            }
        }),
    ];
    for (way, call) in ways {
        let (tell, answer) = mpsc::channel();
        std::thread::spawn(move || {
            let answered = std::panic::catch_unwind(|| call(shm));
            let _ = tell.send(match answered {
                Ok(answer) => answer.to_string(),
                Err(payload) => {
                    let message = payload
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    format!("panic {message}")
                }
            });
        });
        match answer.recv_timeout(Duration::from_secs(10)) {
            Ok(answer) => say(&format!("{way} {answer}")),
            Err(_) => say(&format!("{way} hung")),
        }
    }
    std::process::exit(0);
}

/// `edit-loop NAME`: opens the `ServiceConfig` region with an untyped `Editor` and commits,
/// for n = the stored `rate` + 1, + 2 …, one update of several fields that agree with each
/// other: `rate` = n,
/// `service_name` and `hostname` = `gen-n` (a longer text every tenfold), `upstream_ports` =
/// n % 17 copies of n % 65536. Prints `committed` after the first commit, then loops until
/// killed: the test kills it at any point of a commit.
fn edit_loop(name: &str) {
    let editor = shmstore::inspect::Editor::open(at(name)).expect("open editor");
    let rate = editor.value("rate").expect("rate").to_string();
    let first = rate.parse::<f64>().expect("a number") as u64 + 1;
    for n in first.. {
        let text = format!("gen-{n}");
        let port = (n % 65_536).to_string();
        let ports = vec![port.as_str(); (n % 17) as usize].join(", ");
        let mut writes = Vec::new();
        for (path, value) in [
            ("rate", n.to_string()),
            ("service_name", text.clone()),
            ("upstream_ports", format!("[{ports}]")),
            ("hostname", text),
        ] {
            writes.extend(editor.parse_assignment(path, &value).expect("parse"));
        }
        editor.commit(&writes).expect("commit");
        if n == first {
            say("committed");
        }
    }
}

/// `wait-removed NAME shm|reader|pop|push`: opens the `Counter` region at NAME read-write
/// (`shm`) or with `open_reader` (`reader`), or the `MsgQueue` there (`pop`: an empty queue;
/// `push`: it fills the queue first), prints `waiting`, then waits at most 30 s for a change
/// (an element, room) that never comes, and prints how the wait ended: `ended VARIANT`
/// (`Removed`, or `Timeout` when nothing woke it), or `ended changed`/`popped`/`closed`/
/// `pushed`.
fn wait_removed(name: &str, how: &str) {
    let bound = Some(Duration::from_secs(30));
    let ended = match how {
        "shm" => {
            let shm = open::<Counter>(name);
            say("waiting");
            shm.wait_for_change(shm.version(), bound).map(|_| "changed")
        }
        "reader" => {
            let reader = Shm::<Counter>::open_reader(at(name)).expect("open_reader");
            say("waiting");
            reader
                .wait_for_change(reader.version(), bound)
                .map(|_| "changed")
        }
        "pop" => {
            let queue = MsgQueue::open(at(name)).expect("open queue");
            say("waiting");
            queue.pop_timeout(Duration::from_secs(30)).map(|popped| {
                if popped.is_some() {
                    "popped"
                } else {
                    "closed"
                }
            })
        }
        "push" => {
            let queue = MsgQueue::open(at(name)).expect("open queue");
            let mut seq = 0;
            while queue.try_push(Msg::new(0, seq)).is_ok() {
                seq += 1;
            }
            say("waiting");
            queue
                .push_timeout(Msg::new(0, seq), Duration::from_secs(30))
                .map(|()| "pushed")
        }
        other => panic!("unknown HOW {other}"),
    };
    match ended {
        Ok(what) => say(&format!("ended {what}")),
        Err(e) => say(&format!("ended {}", variant(&e))),
    }
}

/// `open-when-created NAME shm|reader|pop MS`: prints `opening`, then opens the `Counter` at NAME
/// read-write (`shm`) or with `open_reader` (`reader`), or the `MsgQueue` there (`pop`), with
/// `wait_for_creation(MS ms)`, and prints `opened COUNT` (the counter's count; for a queue,
/// the `seq` of the element it pops, waiting at most 30 s) or `error VARIANT`.
fn open_when_created(name: &str, how: &str, patience: Duration) {
    say("opening");
    let opened = match how {
        "shm" => Shm::<Counter>::options()
            .wait_for_creation(patience)
            .open(at(name))
            .map(|shm| shm.read().count),
        "reader" => Shm::<Counter>::options()
            .wait_for_creation(patience)
            .open_reader(at(name))
            .map(|reader| reader.read().count),
        "pop" => MsgQueue::options()
            .wait_for_creation(patience)
            .open(at(name))
            .map(|queue| {
                let popped = queue.pop_timeout(Duration::from_secs(30)).expect("pop");
                popped.expect("an element").seq
            }),
        other => panic!("unknown HOW {other}"),
    };
    match opened {
        Ok(n) => say(&format!("opened {n}")),
        Err(e) => say(&format!("error {}", variant(&e))),
    }
}

/// The release-1 config whose every field follows from `n`, so a reader of any version can
/// tell a torn value: `workers` = n, `timeout_ms` = `u32::MAX - n`, `service` = `svc-n`,
/// `level` = the (n % 3)th level.
fn config_v1_at(n: u32) -> shmstore_tests::config_versions::ConfigV1 {
    use shmstore_tests::config_versions::{ConfigV1, LevelV1};
    ConfigV1 {
        workers: n,
        timeout_ms: u32::MAX - n,
        service: shmstore::value::FixedStr::new(&format!("svc-{n}")).expect("fits"),
        level: shmstore::value::EnumField::new(
            [LevelV1::Error, LevelV1::Warn, LevelV1::Info][n as usize % 3],
        ),
        _pad: [0; 3],
    }
}

/// `config-v1-writer NAME STEPS`: a release-1 binary. Creates NAME holding `ConfigV1` at 0
/// (see `config_v1_at`), prints `created`; then STEPS times waits for a line, commits the next
/// n and prints `committed N`; then, after one more line, prints `running` and commits n + 1, n + 2
/// … as fast as it
/// can until killed.
fn config_v1_writer(name: &str, steps: u32) {
    let shm = Shm::create(at(name), config_v1_at(0)).expect("create");
    say("created");
    for n in 1..=steps {
        wait_for_go();
        *shm.lock().expect("lock") = config_v1_at(n);
        say(&format!("committed {n}"));
    }
    wait_for_go();
    say("running");
    for n in steps + 1.. {
        *shm.lock().expect("lock") = config_v1_at(n);
    }
}

/// `config-v2-create NAME`: a release-2 binary. Creates NAME holding a `ConfigV2` (workers 4,
/// retries 3, `timeout_ms` 5 000 000 000, which no `u32` holds, service `svc-v2`, level
/// `Debug`), prints `created` and sleeps until killed.
fn config_v2_create(name: &str) {
    use shmstore_tests::config_versions::{ConfigV2, LevelV2};
    let value = ConfigV2 {
        workers: 4,
        retries: 3,
        timeout_ms: 5_000_000_000,
        service: shmstore::value::FixedStr::new("svc-v2").expect("fits"),
        level: shmstore::value::EnumField::new(LevelV2::Debug),
        _pad: [0; 3],
    };
    let _shm = Shm::create(at(name), value).expect("create");
    say("created");
    sleep_forever();
}

/// `config-v1-plus-create NAME`: a binary of release 1 plus `retries`. Creates NAME holding a
/// `ConfigV1Plus` (workers 6, retries 2, `timeout_ms` 700, service `svc-plus`, level `Warn`),
/// prints `created` and sleeps until killed.
fn config_v1_plus_create(name: &str) {
    use shmstore_tests::config_versions::LevelV1;
    use shmstore_tests::config_versions_plus::ConfigV1Plus;
    let value = ConfigV1Plus {
        workers: 6,
        retries: 2,
        timeout_ms: 700,
        service: shmstore::value::FixedStr::new("svc-plus").expect("fits"),
        level: shmstore::value::EnumField::new(LevelV1::Warn),
        _pad: [0; 3],
    };
    let _shm = Shm::create(at(name), value).expect("create");
    say("created");
    sleep_forever();
}

/// `config-v1-committer NAME`: a release-1 binary that commits without pause. Creates NAME
/// holding `ConfigV1` at 0 (see `config_v1_at`), prints `created`, waits for a line, then
/// commits n = 1, 2, … (the whole `config_v1_at(n)` each time, through `lock()`), printing
/// `committed N` once each commit is published, a few tens of microseconds apart (so that its
/// output never fills the pipe before the test reads it), until killed.
fn config_v1_committer(name: &str) {
    let shm = Shm::create(at(name), config_v1_at(0)).expect("create");
    say("created");
    wait_for_go();
    for n in 1.. {
        *shm.lock().expect("lock") = config_v1_at(n);
        say(&format!("committed {n}"));
        std::thread::sleep(Duration::from_micros(20));
    }
}

/// One config value as the `config-*` roles print it: `value workers=N retries=R|- timeout=T
/// service=S level=L projected=B`, `retries=-` for a type without the field and `level` the
/// variant's name (`?RAW` for a value the type's enum does not name).
fn config_line(
    workers: u32,
    retries: Option<u32>,
    timeout: u64,
    service: &str,
    level: String,
    projected: bool,
) -> String {
    let retries = retries.map_or_else(|| "-".to_string(), |r| r.to_string());
    format!(
        "value workers={workers} retries={retries} timeout={timeout} service={service} \
         level={level} projected={projected}"
    )
}

/// A variant name, or `?RAW` when the stored value names none.
fn level_name<E: shmstore::ShmEnum>(level: &shmstore::value::EnumField<E>) -> String
where
    E::Repr: std::fmt::Display,
{
    level
        .variant_name()
        .map_or_else(|| format!("?{}", level.raw()), str::to_string)
}

/// Prints how a config role's operation failed: `error VARIANT MESSAGE` (the variants the
/// support crate's `variant` does not list are named here).
fn say_config_error(e: &shmstore::Error) {
    let name = match e {
        shmstore::Error::NotMigratable { .. } => "NotMigratable",
        shmstore::Error::InvalidField { .. } => "InvalidField",
        other => variant(other),
    };
    say(&format!(
        "error {name} {}",
        e.to_string().replace('\n', " ")
    ));
}

/// What the `config-*` roles do with a value of each config version: print it (see
/// `config_line`) and set its `workers`.
trait ConfigLine: ShmType {
    fn line(&self, projected: bool) -> String;
    fn workers_mut(&mut self) -> &mut u32;
}

impl ConfigLine for shmstore_tests::config_versions::ConfigV1 {
    fn line(&self, projected: bool) -> String {
        let service = self.service.as_str().unwrap_or("?");
        let level = level_name(&self.level);
        config_line(
            self.workers,
            None,
            self.timeout_ms.into(),
            service,
            level,
            projected,
        )
    }

    fn workers_mut(&mut self) -> &mut u32 {
        &mut self.workers
    }
}

impl ConfigLine for shmstore_tests::config_versions::ConfigV2 {
    fn line(&self, projected: bool) -> String {
        let service = self.service.as_str().unwrap_or("?");
        let level = level_name(&self.level);
        let retries = Some(self.retries);
        config_line(
            self.workers,
            retries,
            self.timeout_ms,
            service,
            level,
            projected,
        )
    }

    fn workers_mut(&mut self) -> &mut u32 {
        &mut self.workers
    }
}

impl ConfigLine for shmstore_tests::config_versions_three::ConfigV3 {
    fn line(&self, projected: bool) -> String {
        let service = self.service.as_str().unwrap_or("?");
        let level = level_name(&self.level);
        let retries = Some(self.retries);
        config_line(
            self.workers,
            retries,
            self.timeout_ms.into(),
            service,
            level,
            projected,
        )
    }

    fn workers_mut(&mut self) -> &mut u32 {
        &mut self.workers
    }
}

impl ConfigLine for shmstore_tests::config_versions_plus::ConfigV1Plus {
    fn line(&self, projected: bool) -> String {
        let service = self.service.as_str().unwrap_or("?");
        let level = level_name(&self.level);
        let retries = Some(self.retries);
        config_line(
            self.workers,
            retries,
            self.timeout_ms.into(),
            service,
            level,
            projected,
        )
    }

    fn workers_mut(&mut self) -> &mut u32 {
        &mut self.workers
    }
}

/// `config-reader NAME v1|v2|plus|v3`: a reader of release 1 (`ConfigV1`), release 2
/// (`ConfigV2`), release 1 plus `retries` (`ConfigV1Plus`) or that plus `max_conns`
/// (`ConfigV3`, whose `max_conns` is not printed). Opens NAME with `open_reader`
/// (prints `error VARIANT MESSAGE` and exits 0 if that fails), prints the value (see
/// `config_line`), then loops: waits at most 30 s in `wait_for_change` for the next version
/// and prints the value again; a failed wait prints `ended VARIANT` and exits 0. Never restarts
/// or reopens: a migration is followed by the handle itself.
fn config_reader(name: &str, version: &str) {
    use shmstore_tests::config_versions::{ConfigV1, ConfigV2};
    use shmstore_tests::config_versions_plus::ConfigV1Plus;
    match version {
        "v1" => read_config_changes::<ConfigV1>(name),
        "v2" => read_config_changes::<ConfigV2>(name),
        "plus" => read_config_changes::<ConfigV1Plus>(name),
        "v3" => read_config_changes::<shmstore_tests::config_versions_three::ConfigV3>(name),
        other => panic!("unknown VERSION {other}"),
    }
}

fn read_config_changes<T: ConfigLine>(name: &str) {
    let reader = match Shm::<T>::open_reader(at(name)) {
        Ok(reader) => reader,
        Err(e) => return say_config_error(&e),
    };
    loop {
        // The version before the read: a commit in between is printed twice, never missed.
        let seen = reader.version();
        say(&reader.read().line(reader.is_projected()));
        if let Err(e) = reader.wait_for_change(seen, Some(Duration::from_secs(30))) {
            say(&format!("ended {}", variant(&e)));
            return;
        }
    }
}

/// `config-new-writer NAME v2|plus|v3 RETRIES`: a writer of release 2 (`ConfigV2`), of
/// release 1 plus `retries` (`ConfigV1Plus`) or of that plus `max_conns` (`ConfigV3`) joining
/// a region that an older release made. Prints `opening`, opens NAME read-write (migrating it
/// when the region lacks one of its fields); if that fails prints `error VARIANT MESSAGE` and
/// exits 0. Otherwise prints `opened projected=B`, commits its new field = RETRIES (`retries`;
/// `max_conns` for `v3`; the other fields as they are) and prints `wrote RETRIES`;
/// then, for each line on stdin: `value` prints the value (see `config_line`), `workers N`
/// commits `workers = N` and prints `committed N`. Exits at the end of input.
fn config_new_writer(name: &str, version: &str, retries: u32) {
    use shmstore_tests::config_versions::ConfigV2;
    use shmstore_tests::config_versions_plus::ConfigV1Plus;
    use shmstore_tests::config_versions_three::ConfigV3;
    match version {
        "v2" => write_new_config(name, retries, |c: &mut ConfigV2| &mut c.retries),
        "plus" => write_new_config(name, retries, |c: &mut ConfigV1Plus| &mut c.retries),
        "v3" => write_new_config(name, retries, |c: &mut ConfigV3| &mut c.max_conns),
        other => panic!("unknown VERSION {other}"),
    }
}

fn write_new_config<T: ConfigLine>(name: &str, retries: u32, field: fn(&mut T) -> &mut u32) {
    say("opening");
    let shm = match Shm::<T>::open(at(name)) {
        Ok(shm) => shm,
        Err(e) => return say_config_error(&e),
    };
    say(&format!("opened projected={}", shm.is_projected()));
    *field(&mut shm.lock().expect("lock")) = retries;
    say(&format!("wrote {retries}"));
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin");
        match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["value"] => say(&shm.read().line(shm.is_projected())),
            ["workers", n] => {
                let n = n.parse().expect("N");
                *shm.lock().expect("lock").workers_mut() = n;
                say(&format!("committed {n}"));
            }
            other => panic!("unknown command {other:?}"),
        }
    }
}

/// `config-v1-hold-and-die NAME`: a release-1 writer that dies mid-commit. Opens the config at
/// NAME as `ConfigV1`, locks it, writes `workers` = 999 and `service` = `torn` into the guard
/// without committing, prints `holding` and sleeps until killed, holding the lock.
fn config_v1_hold_and_die(name: &str) {
    let shm = open::<shmstore_tests::config_versions::ConfigV1>(name);
    let mut guard = shm.lock().expect("lock");
    guard.workers = 999;
    guard.service.set("torn").expect("fits");
    say("holding");
    sleep_forever();
}

/// `config-v2-loop NAME FROM`: a release-2 writer (`ConfigV2`) committing without pause, to
/// be killed at any point of a commit. Opens NAME (migrating it if needed), prints `looping`,
/// then commits m = FROM, FROM + 1, …: every release-1 field as `config_v1_at(m)` sets it
/// (`timeout_ms` widened) and `retries` = m, so a value mixed from two commits, or half
/// written, shows. Never returns.
fn config_v2_loop(name: &str, from: u32) {
    use shmstore_tests::config_versions::{ConfigV2, LevelV2};
    let shm = open::<ConfigV2>(name);
    say("looping");
    for m in from.. {
        let v1 = config_v1_at(m);
        let mut guard = shm.lock().expect("lock");
        guard.workers = m;
        guard.retries = m;
        guard.timeout_ms = v1.timeout_ms.into();
        guard
            .service
            .set(v1.service.as_str().expect("text"))
            .expect("fits");
        guard
            .level
            .set([LevelV2::Error, LevelV2::Warn, LevelV2::Info][m as usize % 3]);
    }
}

/// `setuid-config-open NAME v1|plus`: drops to uid/gid 65534 (when root) and opens the config
/// at NAME read-write as `ConfigV1` or `ConfigV1Plus`, with `allow_other_owner(true)`; prints
/// `opened projected=B`, or `error VARIANT MESSAGE`.
fn setuid_config_open(name: &str, version: &str) {
    use shmstore_tests::config_versions::ConfigV1;
    use shmstore_tests::config_versions_plus::ConfigV1Plus;
    drop_to_nobody();
    let opened = match version {
        "v1" => Shm::<ConfigV1>::options()
            .allow_other_owner(true)
            .open(at(name))
            .map(|shm| shm.is_projected()),
        "plus" => Shm::<ConfigV1Plus>::options()
            .allow_other_owner(true)
            .open(at(name))
            .map(|shm| shm.is_projected()),
        other => panic!("unknown VERSION {other}"),
    };
    match opened {
        Ok(projected) => say(&format!("opened projected={projected}")),
        Err(e) => say_config_error(&e),
    }
}

/// `config-count NAME RELEASE N`: a binary of RELEASE (`v1`, `v1-plus` or `v2`, see
/// `config_versions`). Prints `ready`, waits for a line, then opens NAME read-write (a release
/// with fields the region lacks migrates it), adds 1 to `workers` under the lock N times, and
/// prints `done`: the counts of several such processes add up only if no commit is lost.
fn config_count(name: &str, release: &str, n: u32) {
    use shmstore_tests::config_versions::{ConfigV1, ConfigV2};
    use shmstore_tests::config_versions_plus::ConfigV1Plus;
    fn count<T: ShmType>(name: &str, n: u32, workers: impl Fn(&mut T) -> &mut u32) {
        let shm = open::<T>(name);
        for _ in 0..n {
            *workers(&mut shm.lock().expect("lock")) += 1;
        }
    }
    say("ready");
    wait_for_go();
    match release {
        "v1" => count::<ConfigV1>(name, n, |c| &mut c.workers),
        "v1-plus" => count::<ConfigV1Plus>(name, n, |c| &mut c.workers),
        "v2" => count::<ConfigV2>(name, n, |c| &mut c.workers),
        other => panic!("unknown release {other}"),
    }
    say("done");
}

/// `setuid-config-follower NAME`: becomes uid and gid 65534, opens NAME as a release-1
/// reader (accepting another owner), prints `ready`; then for each line reads and prints
/// `workers N projected P` (P: whether it reads through a compatible layout, as after
/// following a migration) or `error VARIANT`.
fn setuid_config_follower(name: &str) {
    use nix::unistd::{setgid, setgroups, setuid, Gid, Uid};
    use shmstore_tests::config_versions::ConfigV1;
    setgroups(&[]).expect("setgroups");
    setgid(Gid::from_raw(65534)).expect("setgid");
    setuid(Uid::from_raw(65534)).expect("setuid");
    let reader = match Shm::<ConfigV1>::options()
        .allow_other_owner(true)
        .open_reader(at(name))
    {
        Ok(reader) => reader,
        Err(e) => return say(&format!("error {}", variant(&e))),
    };
    say("ready");
    let mut line = String::new();
    while std::io::stdin().lock().read_line(&mut line).expect("stdin") > 0 {
        line.clear();
        say(&format!(
            "workers {} projected {}",
            reader.read().workers,
            reader.is_projected()
        ));
    }
}

/// `queue-open-mode NAME open|open-or-create spsc|mpmc|any`: opens (or opens or creates) the
/// `MsgQueue` at NAME asking for that mode (`any`: asking for none). On success prints
/// `ok spsc` or `ok mpmc` (the handle's mode), pushes `Msg::new(1, 0)` (in SPSC mode, as the
/// producer) and prints `pushed`; on failure prints `err VARIANT MESSAGE`.
fn queue_open_mode(name: &str, how: &str, mode: &str) {
    use shmstore::QueueMode;
    let mut options = MsgQueue::options();
    match mode {
        "spsc" => options = options.queue_mode(QueueMode::Spsc),
        "mpmc" => options = options.queue_mode(QueueMode::Mpmc),
        "any" => {}
        other => panic!("unknown MODE {other}"),
    }
    let opened = match how {
        "open" => options.open(at(name)),
        "open-or-create" => options.open_or_create(at(name)),
        other => panic!("unknown HOW {other}"),
    };
    match opened {
        Ok(queue) => {
            let found = match queue.mode() {
                QueueMode::Spsc => "spsc",
                _ => "mpmc",
            };
            say(&format!("ok {found}"));
            queue.push(Msg::new(1, 0)).expect("push");
            say("pushed");
        }
        Err(e) => say(&format!("err {} {e}", variant(&e))),
    }
}

// ==== Byte channels ====

/// `channel-send NAME PRODUCER FROM COUNT HOW`: opens the `ShmChannel` at NAME, prints
/// `ready`, then sends messages FROM.. of producer PRODUCER (`channel_message`, up to the
/// channel's largest message) with `send` (HOW `copy`) or through send loans filled in two
/// halves (HOW `loan`), COUNT of them (0: until killed or the channel is closed), then prints
/// `done`.
fn channel_send(name: &str, producer: u64, from: u64, count: u64, how: &str) {
    let mut channel = shmstore::ShmChannel::open(at(name)).expect("open channel");
    say("ready");
    let max = channel.max_message();
    let mut seq = from;
    while count == 0 || seq < from + count {
        let message = shmstore_tests::channel_message(producer, seq, max);
        let sent = match how {
            "copy" => channel.send(&message),
            "loan" => channel.send_loan(message.len()).and_then(|mut loan| {
                let half = message.len() / 2;
                loan[..half].copy_from_slice(&message[..half]);
                loan[half..].copy_from_slice(&message[half..]);
                loan.commit()
            }),
            _ => panic!("HOW is copy or loan, not {how}"),
        };
        match sent {
            Ok(()) => seq += 1,
            Err(shmstore::Error::QueueClosed { .. }) => break,
            Err(e) => panic!("send: {e}"),
        }
    }
    say("done");
}

// ==== Red team (tests/tests/queue_red_team.rs) ====

/// `channel-loan-hold NAME SIDE`: opens the `ShmChannel` at NAME and, for SIDE `send`, takes
/// a send loan of 50 bytes, half writes it and prints `holding`; for SIDE `recv`, takes a
/// receive loan of the front message and prints `holding LEN`. Then waits to be killed.
fn channel_loan_hold(name: &str, side: &str) -> ! {
    let mut channel = shmstore::ShmChannel::open(at(name)).expect("open channel");
    match side {
        "send" => {
            let mut loan = channel.send_loan(50).expect("send_loan");
            loan[..25].fill(0xdd);
            say("holding");
            std::mem::forget(loan);
        }
        "recv" => {
            let loan = channel
                .recv_loan()
                .expect("recv_loan")
                .expect("a message, not a closed channel");
            say(&format!("holding {}", loan.len()));
            std::mem::forget(loan);
        }
        _ => panic!("SIDE is send or recv, not {side}"),
    }
    sleep_forever()
}

/// `setuid-channel NAME`: drops to uid/gid 65534 and opens the `ShmChannel` at NAME (another
/// user's: `allow_other_owner`), printing `open ok` or `open err VARIANT MESSAGE`; once open,
/// sends `from nobody` and prints `send ok` or `send err VARIANT MESSAGE`.
fn setuid_channel(name: &str) {
    drop_to_nobody();
    let opened = shmstore::ShmChannel::options()
        .allow_other_owner(true)
        .open(at(name));
    let channel = match opened {
        Ok(channel) => channel,
        Err(e) => return say(&format!("open err {} {e}", variant(&e))),
    };
    say("open ok");
    match channel.try_send(b"from nobody") {
        Ok(()) => say("send ok"),
        Err(e) => say(&format!("send err {} {e}", variant(&e))),
    }
}

// ==== Wait sets ====

/// HOW `waitv`: as the kernel allows; `fallback`: as on a kernel without `futex_waitv` (each
/// wait sleeps on its first word for at most 1 ms, then looks at every source). Either way,
/// a wait sleeps up to an hour between looks (instead of a second), so that a wake-up the
/// protocol lost shows as a hang.
fn wait_set_mode(how: &str) {
    match how {
        "waitv" => {}
        "fallback" => shmstore::__force_futex_waitv_fallback(),
        _ => panic!("HOW is waitv or fallback, not {how}"),
    }
    shmstore::__no_safety_slice();
}

/// `wait-set-five HOW V1 V2 V3 QUEUE CHANNEL ROUNDS`: one `WaitSet` on three `Counter` regions
/// (a new version), a `MsgQueue` and a `ShmChannel` (not empty; in SPSC mode this takes the
/// consumer role); prints `armed`, then ROUNDS times: waits, prints `ready I,J,…` (the
/// sources ready, 0-based in that order), and handles them (a value: its version becomes the
/// one waited past; a queue or channel: emptied). HOW as in `wait_set_mode`.
fn wait_set_five(how: &str, values: [&str; 3], queue: &str, channel: &str, rounds: u64) {
    wait_set_mode(how);
    let values = values.map(open::<Counter>);
    let queue = MsgQueue::open(at(queue)).expect("open queue");
    let channel = shmstore::ShmChannel::open(at(channel)).expect("open channel");
    let mut set = shmstore::WaitSet::new();
    for value in &values {
        set.add_value(value, value.version()).expect("add value");
    }
    set.add_queue(&queue, shmstore::QueueEvent::NotEmpty)
        .expect("add queue");
    set.add_channel(&channel, shmstore::QueueEvent::NotEmpty)
        .expect("add channel");
    say("armed");
    for _ in 0..rounds {
        let ready = set.wait().expect("wait");
        let keys: Vec<String> = ready.keys().iter().map(|k| k.index().to_string()).collect();
        say(&format!("ready {}", keys.join(",")));
        for &key in ready.keys() {
            match key.index() {
                i @ 0..=2 => set.set_since(key, values[i].version()),
                3 => while queue.try_pop().expect("try_pop").is_some() {},
                _ => while channel.try_recv().expect("try_recv").is_some() {},
            }
        }
    }
}

/// `wait-set-hammer HOW VALUE QUEUE ACK ROUNDS`: a `WaitSet` on the `Counter` region VALUE (a
/// new version) and the `MsgQueue` QUEUE (not empty); prints `armed`, then loops: waits, takes
/// the highest round seen (VALUE's count, or the `seq` of what it pops), and commits it to the
/// `Counter` region ACK, until it has seen round ROUNDS; prints `done`. The test publishes
/// round k on either source once ACK says k - 1: a lost wake-up hangs (see `wait_set_mode`).
fn wait_set_hammer(how: &str, value: &str, queue: &str, ack: &str, rounds: u64) {
    wait_set_mode(how);
    let value = open::<Counter>(value);
    let queue = MsgQueue::open(at(queue)).expect("open queue");
    let ack = open::<Counter>(ack);
    let mut set = shmstore::WaitSet::new();
    let value_key = set.add_value(&value, value.version()).expect("add value");
    set.add_queue(&queue, shmstore::QueueEvent::NotEmpty)
        .expect("add queue");
    say("armed");
    let mut seen = 0;
    while seen < rounds {
        let ready = set.wait().expect("wait");
        assert!(!ready.timed_out(), "no deadline was set");
        if ready.contains(value_key) {
            set.set_since(value_key, value.version());
            seen = seen.max(value.read().count);
        }
        while let Some(msg) = queue.try_pop().expect("try_pop") {
            seen = seen.max(msg.seq);
        }
        *ack.lock().expect("lock ack") = Counter::at(seen);
    }
    say("done");
}

/// `wait-set-sleep VALUE QUEUE`: a `WaitSet` on the `Counter` region VALUE (writable: counted
/// in its `waiters`) and the `MsgQueue` QUEUE (not empty: counted in its sleepers); prints
/// `armed` and waits until killed (the test kills it while it sleeps there).
fn wait_set_sleep(value: &str, queue: &str) {
    let value = open::<Counter>(value);
    let queue = MsgQueue::open(at(queue)).expect("open queue");
    let mut set = shmstore::WaitSet::new();
    set.add_value(&value, value.version()).expect("add value");
    set.add_queue(&queue, shmstore::QueueEvent::NotEmpty)
        .expect("add queue");
    say("armed");
    loop {
        set.wait().expect("wait");
    }
}

// ==== Waiting on many things: async and event loops ====

/// `publish-on-command VALUE QUEUE`: opens the `Counter` region VALUE and the `MsgQueue`
/// QUEUE, prints `ready`, then for each line it reads: `value` commits the counter plus one,
/// `push SEQ` pushes `Msg::new(1, SEQ)`, `close` closes the queue; each followed by `done`.
/// Ends at the end of its input.
fn publish_on_command(value: &str, queue: &str) {
    let shm = open::<Counter>(value);
    let queue = open_queue(queue);
    say("ready");
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin");
        match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["value"] => {
                let mut counter = shm.lock().expect("lock");
                *counter = Counter::at(counter.count + 1);
            }
            ["push", seq] => queue
                .push(Msg::new(1, seq.parse().expect("SEQ")))
                .expect("push"),
            ["close"] => queue.close(),
            other => panic!("unknown command {other:?}"),
        }
        say("done");
    }
}

// ---- Red team of issue 18 (`tests/wait_red_team.rs`) ----

/// `red-other-uid-wait NAME`: drops to uid/gid 65534, opens the `Counter` region NAME with a
/// `ShmReader` (it may only read it), prints `ready VERSION`, then for each line `waitset`,
/// `events` or `async` waits for a version after the last one it saw through a `WaitSet`, an
/// `ShmEvents` under `poll(2)`, or `changed` driven by a parking executor, and prints
/// `changed VERSION`. Each wait gives up (panics) after 60 s.
fn red_other_uid_wait(name: &str) {
    use std::os::fd::AsFd;

    drop_to_nobody();
    let reader = Shm::<Counter>::options()
        .allow_other_owner(true)
        .open_reader(at(name))
        .expect("open_reader");
    let mut since = reader.version();
    say(&format!("ready {since}"));
    let patience = Duration::from_secs(60);
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin");
        let version = match line.as_str() {
            "waitset" => {
                let mut set = shmstore::WaitSet::new();
                set.add_value(&reader, since).expect("add_value");
                set.set_timeout(patience);
                assert!(!set.wait().expect("wait").timed_out(), "no change seen");
                reader.version()
            }
            "events" => {
                use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
                let mut events = shmstore::ShmEvents::new().expect("ShmEvents");
                let key = events.add_value(&reader, since).expect("add_value");
                let deadline = std::time::Instant::now() + patience;
                loop {
                    let mut fds = [PollFd::new(events.as_fd(), PollFlags::POLLIN)];
                    poll(&mut fds, PollTimeout::from(1000u16)).expect("poll");
                    let ready = events.ready();
                    if let Some((_, readiness)) = ready.into_iter().find(|(k, _)| *k == key) {
                        readiness.expect("readiness");
                        break;
                    }
                    assert!(std::time::Instant::now() < deadline, "no change seen");
                }
                reader.version()
            }
            "async" => red_block_on(reader.changed(since)).expect("changed"),
            other => panic!("unknown command {other:?}"),
        };
        since = version;
        say(&format!("changed {version}"));
    }
}

/// Waits with `ShmEvents` under `poll(2)` for a version of `shm` other than `since`, at most
/// 60 s; returns the version seen, `None` if none came.
fn red_events_wait(shm: &Shm<Counter>, since: u64) -> Option<u64> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut events = shmstore::ShmEvents::new().expect("ShmEvents");
    let key = events.add_value(shm, since).expect("add_value");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        let mut fds = [PollFd::new(events.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::from(1000u16)).expect("poll");
        if let Some((_, readiness)) = events.ready().into_iter().find(|(k, _)| *k == key) {
            readiness.expect("readiness");
            return Some(shm.version());
        }
    }
    None
}

/// `red-fork-wait NAME`: opens the `Counter` region NAME, registers an `ShmEvents` on it (which
/// starts the process's notifier thread), then forks; prints `forked VERSION` (the version both
/// wait past). The child waits through an `ShmEvents` of its own and prints `child changed V`
/// (or `child nothing`); the parent then waits the same way, prints `parent changed V`, reaps
/// the child and prints `child exited CODE`.
fn red_fork_wait(name: &str) {
    let shm = open::<Counter>(name);
    let since = shm.version();
    let mut before = shmstore::ShmEvents::new().expect("ShmEvents");
    before.add_value(&shm, since).expect("add_value");
    // SAFETY: the child only runs Rust code of this program (the notifier thread is not
    // copied: the child starts its own), then exits.
    match unsafe { nix::unistd::fork() }.expect("fork") {
        nix::unistd::ForkResult::Child => {
            let seen = red_events_wait(&shm, since);
            say(&seen.map_or("child nothing".to_string(), |v| {
                format!("child changed {v}")
            }));
            std::process::exit(0);
        }
        nix::unistd::ForkResult::Parent { child } => {
            say(&format!("forked {since}"));
            let seen = red_events_wait(&shm, since).expect("the parent saw no change");
            let status = nix::sys::wait::waitpid(child, None).expect("waitpid");
            say(&format!("parent changed {seen}"));
            match status {
                nix::sys::wait::WaitStatus::Exited(_, code) => say(&format!("child exited {code}")),
                other => say(&format!("child ended {other:?}")),
            }
            drop(before);
        }
    }
}

/// `red-register-sleep VALUE QUEUE HOW`: opens the `Counter` region VALUE and the `MsgQueue`
/// QUEUE, registers a wait on VALUE's change and on QUEUE's "not empty" HOW (`events`: one
/// `ShmEvents`; `async`: a polled `changed` and `pop_async` future each), prints `registered`,
/// and sleeps until killed, registered.
fn red_register_sleep(value: &str, queue: &str, how: &str) -> ! {
    use std::future::Future;
    let shm = open::<Counter>(value);
    let mut queue = open_queue(queue);
    let since = shm.version();
    match how {
        "events" => {
            let mut events = shmstore::ShmEvents::new().expect("ShmEvents");
            events.add_value(&shm, since).expect("add_value");
            events
                .add_queue(&queue, shmstore::QueueEvent::NotEmpty)
                .expect("add_queue");
            say("registered");
            sleep_forever()
        }
        "async" => {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            let mut changed = std::pin::pin!(shm.changed(since));
            assert!(changed.as_mut().poll(&mut cx).is_pending());
            let mut popped = std::pin::pin!(queue.pop_async());
            assert!(popped.as_mut().poll(&mut cx).is_pending());
            say("registered");
            sleep_forever()
        }
        other => panic!("unknown HOW {other:?}"),
    }
}

/// Runs `future` to its end on this thread, parking between polls (at most 60 s, then panics).
fn red_block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        assert!(std::time::Instant::now() < deadline, "never ready");
        std::thread::park_timeout(Duration::from_secs(1));
    }
}

/// `red-fallback-wait VALUE QUEUE`: behaves as on a kernel without `futex_waitv`
/// (`__force_futex_waitv_fallback`), opens the `Counter` region VALUE and the `MsgQueue` QUEUE,
/// prints `ready VERSION`, then for each line: `events` waits for VALUE's next version through
/// an `ShmEvents`, `async-value` through `changed`, `async-pop` pops an element through
/// `pop_async`; prints `changed V` or `popped SEQ`.
fn red_fallback_wait(value: &str, queue: &str) {
    shmstore::__force_futex_waitv_fallback();
    let shm = open::<Counter>(value);
    let mut queue = open_queue(queue);
    let mut since = shm.version();
    say(&format!("ready {since}"));
    for line in std::io::stdin().lock().lines() {
        match line.expect("stdin").as_str() {
            "events" => {
                since = red_events_wait(&shm, since).expect("no change seen");
                say(&format!("changed {since}"));
            }
            "async-value" => {
                since = red_block_on(shm.changed(since)).expect("changed");
                say(&format!("changed {since}"));
            }
            "async-pop" => {
                let msg = red_block_on(queue.pop_async()).expect("pop_async");
                say(&format!("popped {}", msg.expect("an element").seq));
            }
            other => panic!("unknown command {other:?}"),
        }
    }
}
