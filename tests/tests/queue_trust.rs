//! `ShmQueue` against peers that die or stop at the worst moment (issue 13, points 8 and 16),
//! with real processes and no timing assertions:
//!
//! - a peer SIGKILLed inside a wake-up (after it cleared the sleeper flag, before its futex
//!   wake) must not leave its partner asleep for good: not once a replacement attaches and
//!   makes progress, not with no replacement at all, and not when the peer was closing the
//!   queue;
//! - `try_push` and `try_pop` of an MPMC queue must return while another process holds the
//!   queue's lock, stopped.
//!
//! The deaths and stops are placed exactly by `LD_PRELOAD` shims (`tests/shims/*.c`), which
//! each test compiles with `cc` into a temporary directory. A survivor that sleeps through its
//! wake-up fails the test after [`PATIENCE`] instead of hanging it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use shmstore::{Error, QueueMode};
use shmstore_tests::{assert_killed, helper, region, Helper, Msg, MsgQueue, TempDir, PATIENCE};

/// The capacity as the helper's arguments use it.
const CAP: u64 = shmstore_tests::QUEUE_CAPACITY as u64;

/// Builds `tests/shims/<source>` into a shared object in `dir` with `cc -shared -fPIC`.
fn build_shim(dir: &TempDir, source: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("shims")
        .join(source);
    let out = dir.join(&source.replace(".c", ".so"));
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run cc to build {} (install a C compiler): {e}",
                src.display()
            )
        });
    assert!(
        status.success(),
        "cc failed to build {}: {status}",
        src.display()
    );
    out
}

/// The next line `helper` prints, which must come within [`PATIENCE`]: otherwise the helper is
/// killed and the test fails, saying what it was waiting for.
fn line_within(helper: Helper, waiting_for: &str) -> (Helper, String) {
    let pid = helper.pid();
    let (sender, receiver) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut helper = helper;
        let line = helper.line();
        let _ = sender.send(());
        (helper, line)
    });
    if receiver.recv_timeout(PATIENCE).is_err() {
        // Not reaped yet (the reader still owns the helper), so the pid is still the child's.
        let _ = kill(pid, Signal::SIGKILL);
        let _ = reader.join();
        panic!("{waiting_for}: nothing within {PATIENCE:?} (asleep for good?)");
    }
    reader.join().expect("the reader thread")
}

/// Checks that the helper's next line is `got 1 SEQ`, within [`PATIENCE`].
fn expect_got(helper: Helper, seq: u64) -> Helper {
    let (helper, line) = line_within(helper, &format!("element {seq}"));
    assert_eq!(line, format!("got 1 {seq}"));
    helper
}

/// Starts `queue-die-at-wake` for `role` and waits until it is armed.
fn doomed(shim: &Path, name: &str, role: &str) -> Helper {
    let mut doomed = helper!("queue-die-at-wake", shim.display(), name, role);
    doomed.expect("armed");
    doomed
}

/// Lets a doomed helper act and checks that the shim killed it inside its wake-up.
fn die_at_wake(mut doomed: Helper) {
    doomed.send("go");
    let (status, lines) = doomed.finish();
    assert_killed(status, &lines);
    assert!(lines.is_empty(), "it should have died before {lines:?}");
}

/// A producer asleep in `push` on a full SPSC queue while its consumer dies inside the pop's
/// wake-up: the queue has room (the dead consumer freed a slot), and nobody will wake the
/// producer through the flag. Returns the producer, still to print `pushed CAP+1`.
fn producer_asleep_beside_a_consumer_killed_at_wake(shim: &Path, name: &str) -> Helper {
    let q = MsgQueue::options()
        .queue_mode(QueueMode::Spsc)
        .create(name)
        .unwrap();
    let doomed = doomed(shim, name, "consumer");
    let mut producer = helper!("queue-push", name, 1, 0, CAP + 1);
    producer.expect("pushing");
    producer.wait_until_blocked();
    assert_eq!(q.len(), CAP as usize, "the producer sleeps on a full queue");
    die_at_wake(doomed);
    assert_eq!(q.len(), CAP as usize - 1, "the consumer died after its pop");
    producer
}

/// A consumer asleep in `pop` on an empty SPSC queue while its producer dies inside the push's
/// wake-up: element 1 is queued, and nobody will wake the consumer through the flag. Returns
/// the consumer (`queue-pop NAME 12`), still to print `got 1 1`.
fn consumer_asleep_beside_a_producer_killed_at_wake(shim: &Path, name: &str) -> Helper {
    let q = MsgQueue::options()
        .queue_mode(QueueMode::Spsc)
        .create(name)
        .unwrap();
    let doomed = doomed(shim, name, "producer");
    let mut consumer = helper!("queue-pop", name, 12);
    consumer.expect("popping");
    consumer.expect("got 1 0");
    consumer.wait_until_blocked();
    die_at_wake(doomed);
    assert_eq!(q.len(), 1, "the producer died after publishing element 1");
    consumer
}

#[test]
fn spsc_producer_asleep_in_push_wakes_when_a_replacement_of_a_consumer_killed_at_its_wake_attaches()
{
    let dir = TempDir::new("queue-trust");
    let shim = build_shim(&dir, "kill_at_wake.c");
    let (name, _cleanup) = region("trust-wake-consumer");
    let producer = producer_asleep_beside_a_consumer_killed_at_wake(&shim, &name);

    // The replacement frees 60 more slots (element 0 went with the dead consumer).
    let mut replacement = helper!("queue-pop", &name, 60);
    replacement.expect("popping");
    for seq in 1..=60 {
        replacement.expect(&format!("got 1 {seq}"));
    }
    replacement.expect("done");

    let (producer, line) = line_within(producer, "the producer's last push");
    assert_eq!(line, format!("pushed {}", CAP + 1));
    drop(producer);
    replacement.finish_ok();
}

#[test]
fn spsc_consumer_asleep_in_pop_wakes_when_a_replacement_of_a_producer_killed_at_its_wake_attaches()
{
    let dir = TempDir::new("queue-trust");
    let shim = build_shim(&dir, "kill_at_wake.c");
    let (name, _cleanup) = region("trust-wake-producer");
    let consumer = consumer_asleep_beside_a_producer_killed_at_wake(&shim, &name);

    // The replacement queues 10 more behind element 1: 11 in all.
    assert_eq!(
        helper!("queue-push", &name, 1, 2, 10).finish_ok(),
        ["pushing", "pushed 10"]
    );

    let mut consumer = consumer;
    for seq in 1..=11 {
        consumer = expect_got(consumer, seq);
    }
    consumer.expect("done");
    consumer.finish_ok();
}

#[test]
fn spsc_a_producer_asleep_in_push_finds_the_room_a_consumer_killed_at_its_wake_freed() {
    let dir = TempDir::new("queue-trust");
    let shim = build_shim(&dir, "kill_at_wake.c");
    let (name, _cleanup) = region("trust-wake-alone");
    let producer = producer_asleep_beside_a_consumer_killed_at_wake(&shim, &name);

    // No replacement: the slot the dead consumer freed is enough.
    let (producer, line) = line_within(producer, "the producer's last push");
    assert_eq!(line, format!("pushed {}", CAP + 1));
    drop(producer);
}

#[test]
fn spsc_a_consumer_asleep_in_pop_finds_the_element_a_producer_killed_at_its_wake_published() {
    let dir = TempDir::new("queue-trust");
    let shim = build_shim(&dir, "kill_at_wake.c");
    let (name, _cleanup) = region("trust-wake-alone");
    let consumer = consumer_asleep_beside_a_producer_killed_at_wake(&shim, &name);

    // No replacement: element 1 is there.
    drop(expect_got(consumer, 1));
}

/// A consumer asleep in `pop` while a third process closes the queue and dies inside the
/// close's wake-up: `pop` must return `None`.
fn a_consumer_asleep_in_pop_sees_a_close_whose_caller_died_at_its_wake(mode: QueueMode) {
    let dir = TempDir::new("queue-trust");
    let shim = build_shim(&dir, "kill_at_wake.c");
    let (name, _cleanup) = region("trust-wake-close");
    let q = MsgQueue::options().queue_mode(mode).create(&name).unwrap();
    let closer = doomed(&shim, &name, "closer");
    let mut consumer = helper!("queue-pop", &name, 1);
    consumer.expect("popping");
    consumer.wait_until_blocked();
    die_at_wake(closer);
    assert!(q.is_closed());

    let (mut consumer, line) = line_within(consumer, "the end of the closed queue");
    assert_eq!(line, "none");
    consumer.expect("done");
    consumer.finish_ok();
}

#[test]
fn spsc_a_consumer_asleep_in_pop_sees_a_close_whose_caller_died_at_its_wake() {
    a_consumer_asleep_in_pop_sees_a_close_whose_caller_died_at_its_wake(QueueMode::Spsc);
}

#[test]
fn mpmc_a_consumer_asleep_in_pop_sees_a_close_whose_caller_died_at_its_wake() {
    a_consumer_asleep_in_pop_sees_a_close_whose_caller_died_at_its_wake(QueueMode::Mpmc);
}

/// Waits until every thread of `pid` is stopped (state `T` in `/proc/PID/stat`).
fn wait_until_stopped(pid: Pid) {
    let stat = PathBuf::from(format!("/proc/{pid}/stat"));
    let deadline = Instant::now() + PATIENCE;
    loop {
        let text = std::fs::read_to_string(&stat).unwrap_or_default();
        // The state follows the command name, which is in parentheses.
        let state = text
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        if state == Some('T') {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "pid {pid} never stopped (stat {text:?})"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn mpmc_try_push_and_try_pop_return_while_another_process_holds_the_lock_stopped() {
    let dir = TempDir::new("queue-trust");
    let shim = build_shim(&dir, "stop_at_unlock.c");
    let (name, _cleanup) = region("trust-try");
    let q = MsgQueue::options()
        .queue_mode(QueueMode::Mpmc)
        .create(&name)
        .unwrap();
    let mut holder = helper!("queue-stop-at-unlock", shim.display(), &name);
    wait_until_stopped(holder.pid());
    // Stopped in its push, after publishing its element, before releasing the lock.
    assert_eq!(q.len(), 1);

    let (sender, receiver) = mpsc::channel();
    let trier = std::thread::spawn(move || {
        let pushed = q.try_push(Msg::new(2, 0));
        let popped = q.try_pop();
        let _ = sender.send(());
        (q, pushed, popped)
    });
    if receiver.recv_timeout(PATIENCE).is_err() {
        // The trier waits for the lock: the holder's death releases it (robust mutex).
        holder.send_kill();
        let _ = trier.join();
        panic!("try_push or try_pop waited for the stopped lock holder");
    }
    let (q, pushed, popped) = trier.join().expect("the trier thread");
    assert!(
        matches!(pushed, Err(Error::QueueFull { .. })),
        "try_push with the lock held elsewhere: {pushed:?}"
    );
    assert_eq!(
        popped.unwrap(),
        None,
        "try_pop with the lock held elsewhere"
    );
    assert_eq!(q.len(), 1, "neither changed the queue");

    // Once the holder goes on, the element it held the lock over is there to take.
    kill(holder.pid(), Signal::SIGCONT).unwrap();
    holder.expect("pushed");
    assert_eq!(q.try_pop().unwrap(), Some(Msg::new(7, 0)));
    q.try_push(Msg::new(2, 0)).unwrap();
    assert_eq!(q.try_pop().unwrap(), Some(Msg::new(2, 0)));
    holder.finish_ok();
}
