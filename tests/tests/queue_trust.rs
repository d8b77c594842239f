//! `ShmQueue` against peers that die or stop at the worst moment (issue 13, point 8), with
//! real processes and no timing assertions:
//!
//! - `try_push` and `try_pop` of an MPMC queue must return while another process holds the
//!   queue's lock, stopped.
//!
//! The deaths and stops are placed exactly by `LD_PRELOAD` shims (`tests/shims/*.c`), which
//! each test compiles with `cc` into a temporary directory. A call that waits fails the test
//! after [`PATIENCE`] instead of hanging it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use shmstore::{Error, QueueMode};
use shmstore_tests::{helper, region, Msg, MsgQueue, TempDir};

/// How long anything that must happen may take, even on a loaded 2-core machine: long enough
/// never to run out in a healthy run, so that a call that waits fails the test instead of
/// hanging it.
const PATIENCE: Duration = Duration::from_secs(30);

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
