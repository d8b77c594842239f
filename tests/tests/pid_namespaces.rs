//! Processes in different PID namespaces sharing regions, as containers that share IPC but not
//! pids do (two pods of one Kubernetes host). Every helper here runs as PID 1 of a namespace of
//! its own (`unshare --pid --fork`), so the lock holders' thread ids collide: the lock, its
//! recovery after a death and the queues must work exactly as in one namespace.
//!
//! Creating PID namespaces needs root (`CAP_SYS_ADMIN`): without it the tests pass vacuously.

use std::path::Path;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use shmstore::{Error, QueueMode, Shm};
use shmstore_tests::{
    is_root, parse_progress, region, wait_until_blocked, Backend, Helper, Msg, MsgQueue, Pair,
    Place, TempDir,
};

/// How long `lock_timeout` waits in the helper: any length shows the outcome.
const SHORT_MS: u64 = 50;

/// Starts `shm-helper ARGS` as PID 1 of a new PID namespace. `unshare --kill-child` kills it
/// when `unshare` dies, so dropping the [`Helper`] (which kills `unshare`) leaves nothing
/// behind.
fn in_own_pid_namespace(args: &[String]) -> Helper {
    let mut full = vec![
        "--pid".to_string(),
        "--kill-child".to_string(),
        env!("CARGO_BIN_EXE_shm-helper").to_string(),
    ];
    full.extend_from_slice(args);
    Helper::spawn("unshare", &full)
}

macro_rules! ns_helper {
    ($($arg:expr),* $(,)?) => {
        in_own_pid_namespace(&[$(::std::string::ToString::to_string(&$arg)),*])
    };
}

/// Starts `shm-helper ARGS` as PID 2 of a new PID namespace, under a shell that is its PID 1:
/// a pid that no process has in another new namespace (where only PID 1 exists).
fn second_in_own_pid_namespace(args: &[String]) -> Helper {
    let mut full = vec![
        "--pid".to_string(),
        "--kill-child".to_string(),
        "sh".to_string(),
        "-c".to_string(),
        // Not the last command, so that the shell forks it instead of exec'ing it.
        r#""$0" "$@"; exit $?"#.to_string(),
        env!("CARGO_BIN_EXE_shm-helper").to_string(),
    ];
    full.extend_from_slice(args);
    Helper::spawn("unshare", &full)
}

/// The only child of process `pid`.
fn only_child(pid: Pid) -> Pid {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    let mut pids = children
        .split_whitespace()
        .map(|p| p.parse::<i32>().unwrap());
    let child = pids.next().expect("a child");
    assert_eq!(pids.next(), None, "one child");
    Pid::from_raw(child)
}

/// Waits until process `pid` sleeps in a futex wait (`true`) or has exited (`false`).
fn futex_wait_or_exit(pid: Pid) -> bool {
    let proc_dir = Path::new("/proc").join(pid.to_string());
    loop {
        let stat = std::fs::read_to_string(proc_dir.join("stat")).unwrap_or_default();
        // The state follows the parenthesised command name; a zombie (or no entry) has exited.
        match stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next()) {
            Some(Some('Z' | 'X')) | None => return false,
            _ => {}
        }
        let syscall = std::fs::read_to_string(proc_dir.join("syscall")).unwrap_or_default();
        if syscall
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<i64>().ok())
            == Some(nix::libc::SYS_futex)
        {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// The pid, in the test's namespace, of the helper that `unshare` forked (its only child).
/// Call it after the helper printed something: it exists by then.
fn namespaced_pid(helper: &Helper) -> Pid {
    only_child(helper.pid())
}

/// Kills the namespaced helper itself (not `unshare`) with SIGKILL, then reaps `unshare`.
fn kill_namespaced(helper: Helper) {
    kill(namespaced_pid(&helper), Signal::SIGKILL).unwrap();
    let _ = helper.finish();
}

/// Checks that the helpers really are PID 1 of their namespaces: the collision under test.
fn assert_pid_1() {
    assert_eq!(ns_helper!("pid").finish_ok(), ["pid 1"]);
}

fn pair_region(tag: &str) -> (String, Place, Shm<Pair>) {
    let (name, cleanup) = region(tag);
    let shm = Shm::create(&name, Pair { a: 1, b: 2 }).unwrap();
    (name, cleanup, shm)
}

#[test]
fn a_lock_held_in_another_namespace_makes_try_lock_and_lock_timeout_give_up() {
    if !is_root() {
        return;
    }
    assert_pid_1();
    let (name, _cleanup, shm) = pair_region("pidns-timeout");
    let mut holder = ns_helper!("hold", name);
    holder.expect("locked");

    let other = ns_helper!("try-and-time-out", name, SHORT_MS);
    assert_eq!(
        other.finish_ok(),
        ["try_lock would-block", "lock_timeout would-block"],
        "a holder with the same thread id in another namespace is another holder"
    );

    holder.send("go");
    holder.expect("released");
    assert_eq!(
        ns_helper!("try-and-time-out", name, SHORT_MS).finish_ok(),
        ["try_lock ok 1 2", "lock_timeout ok 1 2"]
    );
    assert_eq!(*shm.lock().unwrap(), Pair { a: 1, b: 2 });
}

#[test]
fn lock_waits_for_a_holder_in_another_namespace_until_it_unlocks() {
    if !is_root() {
        return;
    }
    let (name, _cleanup, _shm) = pair_region("pidns-wait");
    let mut holder = ns_helper!("hold", name);
    holder.expect("locked");

    let mut waiter = ns_helper!("lock-and-print", name);
    waiter.expect("locking");
    wait_until_blocked(&Path::new("/proc").join(namespaced_pid(&waiter).to_string()));

    holder.send("go");
    holder.expect("released");
    assert_eq!(waiter.finish_ok(), ["ok 1 2"]);
}

#[test]
fn a_holder_killed_in_another_namespace_is_recovered_with_its_write_rolled_back() {
    if !is_root() {
        return;
    }
    let (name, _cleanup, shm) = pair_region("pidns-death");
    let mut holder = ns_helper!("hold-and-die", name, 7);
    holder.expect("written");

    let mut waiter = ns_helper!("lock-and-print", name);
    waiter.expect("locking");
    wait_until_blocked(&Path::new("/proc").join(namespaced_pid(&waiter).to_string()));

    kill_namespaced(holder);
    assert_eq!(
        waiter.finish_ok(),
        ["ok 1 2"],
        "the dead holder's half write (a = 7) is rolled back"
    );
    assert!(!shm.is_poisoned());
    assert_eq!(shm.read(), Pair { a: 1, b: 2 });
}

/// Two producers and a consumer, each PID 1 of its own namespace, through one MPMC queue: every
/// push and pop contends for the region's mutex with a thread of the same id.
#[test]
fn an_mpmc_queue_works_between_three_namespaces() {
    if !is_root() {
        return;
    }
    // Enough that, before the fix, some lock always met the other thread 1 holding it.
    const COUNT: u64 = 100_000;
    let (name, _cleanup) = region("pidns-mpmc");
    let q = MsgQueue::options()
        .queue_mode(QueueMode::Mpmc)
        .create(&name)
        .unwrap();
    let out = TempDir::new("pidns-mpmc");
    let file = out.join("got");
    let mut consumer = ns_helper!("queue-drain", name, file.display());
    let producers: Vec<Helper> = (1..=2)
        .map(|p| ns_helper!("queue-push", name, p, 0, COUNT))
        .collect();
    for producer in producers {
        assert_eq!(
            producer.finish_ok(),
            ["pushing".to_string(), format!("pushed {COUNT}")]
        );
    }
    q.close();
    assert_eq!(parse_progress(&consumer.line(), "got"), 2 * COUNT);
    assert!(consumer.finish_ok().is_empty());
    assert_each_producer_in_order(&std::fs::read_to_string(&file).unwrap(), 2, COUNT);
}

/// An SPSC producer and consumer in two namespaces, for each backend.
#[test]
fn an_spsc_queue_works_between_two_namespaces() {
    if !is_root() {
        return;
    }
    const COUNT: u64 = 20_000;
    for backend in Backend::ALL {
        let place = Place::new(backend, "pidns-spsc");
        let q = MsgQueue::options()
            .queue_mode(QueueMode::Spsc)
            .create(place.location().clone())
            .unwrap();
        let out = TempDir::new("pidns-spsc");
        let file = out.join("got");
        let mut consumer = ns_helper!("queue-drain", place, file.display());
        let producer = ns_helper!("queue-push", place, 1, 0, COUNT, "close");
        assert_eq!(
            producer.finish_ok(),
            [
                "pushing".to_string(),
                format!("pushed {COUNT}"),
                "closed".to_string()
            ],
            "{backend:?}"
        );
        assert_eq!(
            parse_progress(&consumer.line(), "got"),
            COUNT,
            "{backend:?}"
        );
        assert!(consumer.finish_ok().is_empty());
        assert_each_producer_in_order(&std::fs::read_to_string(&file).unwrap(), 1, COUNT);
        drop(q);
    }
}

/// Checks a `queue-drain` file: `producers` producers numbered from 1, each with elements
/// `0..count` in order, nothing else.
fn assert_each_producer_in_order(got: &str, producers: u64, count: u64) {
    let mut next = vec![0u64; producers as usize + 1];
    for line in got.lines() {
        let (producer, seq) = line.split_once(' ').unwrap();
        let (producer, seq): (usize, u64) = (producer.parse().unwrap(), seq.parse().unwrap());
        assert!((1..=producers as usize).contains(&producer), "{line}");
        assert_eq!(seq, next[producer], "producer {producer} out of order");
        next[producer] += 1;
    }
    assert!(next[1..].iter().all(|&n| n == count), "{next:?}");
}

/// A System V segment whose creator, PID 2 of another namespace, is still initialising it: an
/// `open_or_create` from a third namespace, where no process has pid 2, must wait for it (the
/// pid in the header means nothing there), and take over only once it is dead.
#[test]
fn a_live_initialiser_in_another_namespace_keeps_its_system_v_segment() {
    if !is_root() {
        return;
    }
    let place = Place::new(Backend::SysV, "pidns-sysv-init");
    let mut initialiser =
        second_in_own_pid_namespace(&["create-and-die-in-init".to_string(), place.to_string()]);
    initialiser.expect("in-init");

    let mut opener = ns_helper!("open-or-create", place, 5, 0);
    opener.expect("ready");
    opener.send("go");
    assert!(
        futex_wait_or_exit(namespaced_pid(&opener)),
        "open_or_create did not wait for the live initialiser: {:?}",
        opener.finish()
    );

    // The initialiser (the shell's child) dies: now the segment is abandoned.
    kill(only_child(namespaced_pid(&initialiser)), Signal::SIGKILL).unwrap();
    let _ = initialiser.finish();
    assert_eq!(
        opener.finish_ok(),
        ["init=yes count=5 mirror=5 creator=1"],
        "the opener took the abandoned segment over"
    );
    let shm = Shm::<shmstore_tests::Counter>::open(place.location().clone()).unwrap();
    assert_eq!(shm.read(), shmstore_tests::Counter::at(5));
}

/// An SPSC role in a System V segment is a pid claim. Its holder, PID 2 of one namespace, is
/// alive: a producer in another namespace, where no process has pid 2, must get `RoleTaken`,
/// and not take the role over as if the holder were dead.
#[test]
fn an_spsc_role_held_in_another_namespace_is_not_taken_over_in_a_system_v_segment() {
    if !is_root() {
        return;
    }
    let place = Place::new(Backend::SysV, "pidns-sysv-role");
    let q = MsgQueue::options()
        .queue_mode(QueueMode::Spsc)
        .create(place.location().clone())
        .unwrap();
    let mut holder = second_in_own_pid_namespace(&[
        "queue-hold-role".to_string(),
        place.to_string(),
        "producer".to_string(),
    ]);
    holder.expect("holding");

    assert_eq!(
        ns_helper!("queue-push", place, 2, 0, 1).finish_ok(),
        ["pushing", "err RoleTaken 0"]
    );
    assert_eq!(q.has_other_producer().unwrap(), Some(true));
    match q.try_push(Msg::new(0, 0)) {
        // Pid 2 of another namespace names nobody here: not reported.
        Err(Error::RoleTaken { holder_pid, .. }) => assert_eq!(holder_pid, None),
        other => panic!("expected Error::RoleTaken, got {other:?}"),
    }

    // The holder lets go: the role is free for any namespace.
    holder.send("go");
    let _ = holder.finish();
    assert_eq!(q.has_other_producer().unwrap(), Some(false));
    assert_eq!(
        ns_helper!("queue-push", place, 2, 0, 1).finish_ok(),
        ["pushing", "pushed 1"]
    );
    assert_eq!(q.try_pop().unwrap(), Some(Msg::new(1, 0)));
    assert_eq!(q.try_pop().unwrap(), Some(Msg::new(2, 0)));
}
