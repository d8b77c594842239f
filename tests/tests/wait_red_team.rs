//! Red team of issue 18 (waiting on many things, async): what a stuck or hostile peer can do to
//! a `WaitSet`, an `ShmEvents` or an async future, with real processes. Each test names what
//! it found (`regression_…`) or what held.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Command;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use shmstore::QueueMode;
use shmstore_tests::{helper, region, Msg, MsgQueue, TempDir, PATIENCE};

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
        .unwrap_or_else(|e| panic!("cannot run cc to build {}: {e}", src.display()));
    assert!(status.success(), "cc failed to build {}", src.display());
    out
}

/// Waits until `pid` is stopped (state `T` in its `/proc` stat).
fn wait_until_stopped(pid: Pid) {
    let stat = PathBuf::from(format!("/proc/{pid}/stat"));
    let deadline = Instant::now() + PATIENCE;
    loop {
        let text = std::fs::read_to_string(&stat).unwrap_or_default();
        let state = text
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        if state == Some('T') {
            return;
        }
        assert!(Instant::now() < deadline, "pid {pid} never stopped");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A future that counts how often it is polled.
struct Counted<F> {
    inner: Pin<Box<F>>,
    polls: u64,
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls += 1;
        self.inner.as_mut().poll(cx)
    }
}

/// `pop_async` on an MPMC queue whose lock another process holds, stopped (SIGSTOP while inside
/// its push): the future used to return `Pending` and wake itself at once, again and again, so
/// the task spun at full CPU for as long as the lock stayed held (forever, for a stopped or
/// hostile holder). It now backs off to a re-check every few milliseconds: over two seconds it
/// is polled at most a few hundred times (a spinning one, many thousands), and it takes the
/// element once the holder goes on.
#[test]
fn regression_pop_async_spun_while_another_process_held_the_queue_lock() {
    let dir = TempDir::new("wait-red-shim");
    let shim = build_shim(&dir, "stop_at_unlock.c");
    let (name, _place) = region("red-busy-lock");
    let mut q = MsgQueue::options()
        .queue_mode(QueueMode::Mpmc)
        .create(&name)
        .unwrap();
    let mut holder = helper!("queue-stop-at-unlock", shim.display(), &name);
    wait_until_stopped(holder.pid());
    assert_eq!(
        q.len(),
        1,
        "the holder published, then stopped holding the lock"
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut counted = Counted {
        inner: Box::pin(q.pop_async()),
        polls: 0,
    };
    let waited =
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(2), &mut counted).await });
    assert!(
        waited.is_err(),
        "popped while the lock was held: {waited:?}"
    );
    let polls = counted.polls;
    assert!(
        polls < 2_000,
        "pop_async was polled {polls} times in 2 s with the lock held elsewhere: it spins"
    );

    // Once the holder goes on, the same future takes the element.
    kill(holder.pid(), Signal::SIGCONT).unwrap();
    holder.expect("pushed");
    let popped = rt
        .block_on(async { tokio::time::timeout(PATIENCE, &mut counted).await })
        .expect("the element within PATIENCE once the lock was released")
        .unwrap();
    assert_eq!(popped.map(|m| m.seq), Some(0));
    drop(counted);
    holder.finish_ok();
}

/// Another user, who may only read a region (mode 0644, a `ShmReader`), waits for its changes
/// through a `WaitSet`, an `ShmEvents` under `poll(2)` and `changed` (its 10 ms re-check: it
/// cannot count itself in), each seeing the version published by the owner; it never writes
/// (a write through its read-only mapping would kill it with SIGSEGV).
#[test]
fn another_user_with_read_access_only_waits_through_every_form() {
    let (name, _place) = region("red-other-uid");
    let value = shmstore::Shm::<shmstore_tests::Counter>::options()
        .mode(0o644)
        .create(&name, shmstore_tests::Counter::at(0))
        .unwrap();
    let mut waiter = helper!("red-other-uid-wait", &name);
    assert_eq!(waiter.line(), format!("ready {}", value.version()));
    for how in ["waitset", "events", "async"] {
        waiter.send(how);
        // Published after the helper may or may not sleep yet: either way it must see it.
        std::thread::sleep(Duration::from_millis(50));
        {
            let mut counter = value.lock().unwrap();
            *counter = shmstore_tests::Counter::at(counter.count + 1);
        }
        assert_eq!(
            waiter.line(),
            format!("changed {}", value.version()),
            "through {how}"
        );
    }
    let lines = waiter.finish_ok();
    assert!(lines.is_empty(), "{lines:?}");
}

/// A `changed` future leaked with `mem::forget` while registered, its handle dropped and its
/// region removed: the notifier keeps the mapping its registration names (an `Arc`), so it
/// never sleeps on an unmapped word; when its slice ends it tells the leaked waker once and
/// sleeps on it no more, and other futures of the process still wake.
#[test]
fn a_leaked_changed_future_leaves_no_dangling_word_in_the_notifier() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct CountWakes(AtomicUsize);
    impl Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let (name, _place) = region("red-leaked");
    let value =
        shmstore::Shm::<shmstore_tests::Counter>::create(&name, shmstore_tests::Counter::at(0))
            .unwrap();
    let wakes = Arc::new(CountWakes(AtomicUsize::new(0)));
    let waker = Arc::clone(&wakes).into();
    let mut cx = Context::from_waker(&waker);
    let mut leaked = Box::pin(value.changed(value.version()));
    assert!(leaked.as_mut().poll(&mut cx).is_pending(), "registered");
    std::mem::forget(leaked);
    drop(value);
    shmstore::unlink(name.as_str()).unwrap();
    // Its slice (1 s) ends: the notifier tells the leaked waker, from its mapping kept alive.
    let deadline = Instant::now() + PATIENCE;
    while wakes.0.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the leaked registration never fired"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    // The notifier still serves the process.
    let (other, _other_place) = region("red-leaked-other");
    let value =
        shmstore::Shm::<shmstore_tests::Counter>::create(&other, shmstore_tests::Counter::at(0))
            .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let since = value.version();
    let changed = rt.block_on(async {
        let waiting = value.changed(since);
        let publishing = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            *value.lock().unwrap() = shmstore_tests::Counter::at(1);
        };
        tokio::time::timeout(PATIENCE, async { tokio::join!(waiting, publishing).0 }).await
    });
    assert_eq!(changed.expect("woken within PATIENCE").unwrap(), since + 1);
    // Told once: a fired registration is slept on no more.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
}

/// A process whose notifier thread runs forks: the child (which has no copy of that thread)
/// waits through an `ShmEvents` of its own and sees the change, as does the parent.
#[test]
fn a_forked_child_of_a_process_with_a_notifier_waits() {
    let (name, _place) = region("red-fork");
    let value =
        shmstore::Shm::<shmstore_tests::Counter>::create(&name, shmstore_tests::Counter::at(0))
            .unwrap();
    let mut waiter = helper!("red-fork-wait", &name);
    let since = value.version();
    assert_eq!(waiter.line(), format!("forked {since}"));
    *value.lock().unwrap() = shmstore_tests::Counter::at(1);
    let lines = waiter.finish_ok();
    assert_eq!(
        lines,
        [
            format!("child changed {}", since + 1),
            format!("parent changed {}", since + 1),
            "child exited 0".to_string()
        ]
    );
}

/// CPU time (user + system) of the task `tid` of this process, in clock ticks (1/100 s).
fn cpu_ticks_of(tid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map_or(vec![], |(_, rest)| rest.split(' ').collect());
    // After the command: state is field 3, utime 14 and stime 15 (proc(5)).
    let at = |field: usize| fields.get(field - 3).and_then(|f| f.parse::<u64>().ok());
    at(14).unwrap_or(0) + at(15).unwrap_or(0)
}

/// CPU ticks of the calling thread and of the process's notifier threads together.
fn waiting_cpu_ticks() -> u64 {
    let me = nix::unistd::gettid().to_string();
    let mut ticks = cpu_ticks_of(&me);
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let tid = task.file_name().to_string_lossy().into_owned();
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.starts_with("shmstore-notif") {
            ticks += cpu_ticks_of(&tid);
        }
    }
    ticks
}

/// Writes `bytes` at `offset` of the POSIX object `name`, as a hostile peer with write access
/// may (through the file, which shares its pages with every mapping).
fn forge(name: &str, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(shmstore_tests::shm_path(name))
        .unwrap();
    file.write_all_at(bytes, offset).unwrap();
}

/// How many seconds each forged wait runs: long enough that a spinning waiter burns far more
/// CPU than [`SPIN_TICKS`], while a sleeping one (a re-check every 10 ms at most) burns a few
/// ticks.
const FORGED_WAIT: Duration = Duration::from_secs(2);

/// CPU ticks (1/100 s) a forged wait of [`FORGED_WAIT`] may take: a quarter of its length,
/// tens of times what sleeping costs, and less than a spinning waiter gets of even a loaded
/// machine's CPU.
const SPIN_TICKS: u64 = 50;

/// A hostile peer with write access forges the words waits read, while a `WaitSet`, an
/// `ShmEvents` and a `select!` over `changed` and `pop_async` wait on a value and an MPMC queue:
/// the sleeper counts full (0xffff) or with a generation that moved, the version odd forever
/// (a write that never ends) or gone backwards, the epochs moved, the queue's counters
/// impossible, its lock owned by a live process that never unlocks (before the fix of
/// `regression_pop_async_spun_while_another_process_held_the_queue_lock`, `pop_async` spun). Each wait ends (ready, timed out, or a typed error) or keeps waiting without
/// spinning: over two seconds its thread and the notifier's burn at most a quarter of them.
#[test]
fn forged_wait_words_make_no_waiter_panic_hang_or_spin() {
    type Forge = (&'static str, fn(&str, &str, u64, u64));
    let forgeries: [Forge; 10] = [
        ("counts full", |v, q, p, _| {
            forge(v, 136, &0xffffu32.to_ne_bytes());
            forge(q, p + 132, &0xffffu32.to_ne_bytes());
        }),
        ("count of another generation", |v, q, p, _| {
            forge(v, 136, &0x0005_0001u32.to_ne_bytes());
            forge(q, p + 132, &0x0005_0001u32.to_ne_bytes());
        }),
        ("version odd forever", |v, _, _, since| {
            forge(v, 128, &(since * 2 + 1).to_ne_bytes());
        }),
        ("version backwards", |v, _, _, _| {
            forge(v, 128, &0u64.to_ne_bytes());
        }),
        ("version at the top, published", |v, _, _, _| {
            forge(v, 128, &(u64::MAX - 1).to_ne_bytes());
        }),
        ("version at the top, mid-write", |v, _, _, _| {
            forge(v, 128, &u64::MAX.to_ne_bytes());
        }),
        ("epochs moved", |_, q, p, _| {
            forge(q, p + 128, &0x1234_5678u32.to_ne_bytes());
            forge(q, p + 192, &0x1234_5678u32.to_ne_bytes());
        }),
        ("head past tail", |_, q, p, _| {
            forge(q, p + 64, &1000u64.to_ne_bytes());
        }),
        ("tail far past head", |_, q, p, _| {
            forge(q, p, &1000u64.to_ne_bytes());
        }),
        // The mutex's owner word (glibc: the first int) names pid 1, alive and never
        // unlocking: every try-lock finds it held.
        ("queue lock owned by a live process", |_, q, _, _| {
            // With an element queued, which a pop must take the lock to take.
            MsgQueue::open(q).unwrap().push(Msg::new(1, 0)).unwrap();
            forge(q, 192, &1u32.to_ne_bytes());
        }),
    ];
    for (what, forge_words) in forgeries {
        for how in ["waitset", "events", "async"] {
            let (value_name, _value_place) = region("red-forged-value");
            let (queue_name, _queue_place) = region("red-forged-queue");
            let value = shmstore::Shm::<shmstore_tests::Counter>::create(
                &value_name,
                shmstore_tests::Counter::at(0),
            )
            .unwrap();
            *value.lock().unwrap() = shmstore_tests::Counter::at(1);
            let mut queue = MsgQueue::options()
                .queue_mode(QueueMode::Mpmc)
                .create(&queue_name)
                .unwrap();
            let payload = shmstore::inspect::Inspector::open(queue_name.as_str())
                .unwrap()
                .header_fields()
                .payload_offset;
            let since = value.version();
            let outcome = std::thread::scope(|scope| {
                let waiter = scope.spawn(|| {
                    let before = waiting_cpu_ticks();
                    let outcome = wait_forged(how, &value, &mut queue, since, FORGED_WAIT);
                    (outcome, waiting_cpu_ticks() - before)
                });
                std::thread::sleep(Duration::from_millis(100));
                forge_words(&value_name, &queue_name, payload, since);
                waiter.join().expect("the waiter panicked")
            });
            let (outcome, ticks) = outcome;
            eprintln!("{what}, {how}: {outcome} ({ticks} ticks)");
            assert!(
                ticks <= SPIN_TICKS,
                "{what}, {how}: the wait burnt {ticks} ticks of CPU in {FORGED_WAIT:?} ({outcome})"
            );
        }
    }
}

/// Waits `how` on `value` (past `since`) and `queue` (not empty) for `limit` at most; says
/// how it ended.
fn wait_forged(
    how: &str,
    value: &shmstore::Shm<shmstore_tests::Counter>,
    queue: &mut MsgQueue,
    since: u64,
    limit: Duration,
) -> String {
    match how {
        "waitset" => {
            let mut set = shmstore::WaitSet::new();
            set.add_value(value, since).unwrap();
            set.add_queue(&*queue, shmstore::QueueEvent::NotEmpty)
                .unwrap();
            set.set_timeout(limit);
            format!("{:?}", set.wait().map(|ready| ready.keys().len()))
        }
        "events" => {
            use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
            use std::os::fd::AsFd;
            let mut events = shmstore::ShmEvents::new().unwrap();
            events.add_value(value, since).unwrap();
            events
                .add_queue(&*queue, shmstore::QueueEvent::NotEmpty)
                .unwrap();
            let deadline = Instant::now() + limit;
            loop {
                let mut fds = [PollFd::new(events.as_fd(), PollFlags::POLLIN)];
                poll(&mut fds, PollTimeout::from(100u16)).unwrap();
                let ready = events.ready();
                if !ready.is_empty() {
                    return format!("{ready:?}");
                }
                if Instant::now() >= deadline {
                    return "timed out".to_string();
                }
            }
        }
        _ => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let either = async {
                    tokio::select! {
                        v = value.changed(since) => format!("changed {v:?}"),
                        m = queue.pop_async() => format!("popped {m:?}"),
                    }
                };
                tokio::time::timeout(limit, either)
                    .await
                    .unwrap_or_else(|_| "timed out".to_string())
            })
        }
    }
}

/// A value region or a queue removed while a `WaitSet`, an `ShmEvents` or a `select!` over
/// `changed` and `pop_async` waits on it, by `shmstore::unlink` or by a plain `rm` of its
/// /dev/shm file: every form reports it (ready, or `Removed`) instead of waiting on.
#[test]
fn a_removal_by_unlink_or_rm_ends_every_form_of_wait() {
    for (target, by) in [
        ("value", "unlink"),
        ("value", "rm"),
        ("queue", "unlink"),
        ("queue", "rm"),
    ] {
        for how in ["waitset", "events", "async"] {
            let (value_name, _value_place) = region("red-removed-value");
            let (queue_name, _queue_place) = region("red-removed-queue");
            let value = shmstore::Shm::<shmstore_tests::Counter>::create(
                &value_name,
                shmstore_tests::Counter::at(0),
            )
            .unwrap();
            let mut queue = MsgQueue::options()
                .queue_mode(QueueMode::Mpmc)
                .create(&queue_name)
                .unwrap();
            let since = value.version();
            let name = if target == "value" {
                &value_name
            } else {
                &queue_name
            };
            let outcome = std::thread::scope(|scope| {
                let waiter = scope.spawn(|| wait_forged(how, &value, &mut queue, since, PATIENCE));
                std::thread::sleep(Duration::from_millis(100));
                if by == "unlink" {
                    shmstore::unlink(name.as_str()).unwrap();
                } else {
                    std::fs::remove_file(shmstore_tests::shm_path(name)).unwrap();
                }
                waiter.join().expect("the waiter panicked")
            });
            eprintln!("{target} removed by {by}, {how}: {outcome}");
            assert_ne!(
                outcome, "timed out",
                "{target} removed by {by}: the {how} wait did not end"
            );
            assert!(
                !outcome.contains("Ok(0)"),
                "{target} removed by {by}: the {how} wait timed out"
            );
        }
    }
}

/// Beyond one `futex_waitv` (128 words): an `ShmEvents` on 200 value regions (its
/// registrations spread over several notifier shards) becomes readable for the one that
/// changed and names it alone; 2 000 `changed` futures on one region at once are all woken by
/// one publish; a `WaitSet` takes 64 writable values (128 words) and refuses a 65th with a
/// typed error.
#[test]
fn beyond_one_futex_waitv_every_form_still_wakes() {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    let places: Vec<_> = (0..200).map(|_| region("red-many")).collect();
    let values: Vec<_> = places
        .iter()
        .map(|(name, _)| {
            shmstore::Shm::<shmstore_tests::Counter>::create(name, shmstore_tests::Counter::at(0))
                .unwrap()
        })
        .collect();
    let mut events = shmstore::ShmEvents::new().unwrap();
    let keys: Vec<_> = values
        .iter()
        .map(|v| events.add_value(v, v.version()).unwrap())
        .collect();
    assert!(events.ready().is_empty());
    *values[137].lock().unwrap() = shmstore_tests::Counter::at(1);
    let deadline = Instant::now() + PATIENCE;
    let ready = loop {
        let mut fds = [PollFd::new(events.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::from(1000u16)).unwrap();
        let ready = events.ready();
        if !ready.is_empty() {
            break ready;
        }
        assert!(
            Instant::now() < deadline,
            "the 138th of 200 sources never woke"
        );
    };
    let woke: Vec<_> = ready.iter().map(|(key, _)| *key).collect();
    assert_eq!(woke, [keys[137]]);
    drop(events);

    struct CountWakes(AtomicUsize);
    impl Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let wakes = Arc::new(CountWakes(AtomicUsize::new(0)));
    let waker = Arc::clone(&wakes).into();
    let mut cx = Context::from_waker(&waker);
    let value = &values[0];
    let since = value.version();
    let mut futures: Vec<_> = (0..2000)
        .map(|_| Some(Box::pin(value.changed(since))))
        .collect();
    for future in &mut futures {
        assert!(future.as_mut().unwrap().as_mut().poll(&mut cx).is_pending());
    }
    *value.lock().unwrap() = shmstore_tests::Counter::at(1);
    let deadline = Instant::now() + PATIENCE;
    while futures.iter().any(Option::is_some) {
        for slot in &mut futures {
            if let Some(future) = slot {
                if let Poll::Ready(version) = future.as_mut().poll(&mut cx) {
                    assert_eq!(version.unwrap(), since + 1);
                    *slot = None;
                }
            }
        }
        let left = futures.iter().filter(|f| f.is_some()).count();
        assert!(
            Instant::now() < deadline,
            "{left} of 2000 futures never woke"
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    let mut set = shmstore::WaitSet::new();
    for v in &values[..64] {
        set.add_value(v, v.version()).unwrap();
    }
    assert!(matches!(
        set.add_value(&values[64], values[64].version()),
        Err(shmstore::Error::InvalidWaitSet { .. })
    ));
    *values[63].lock().unwrap() = shmstore_tests::Counter::at(1);
    set.set_timeout(PATIENCE);
    let ready = set.wait().unwrap();
    assert_eq!(ready.keys().len(), 1, "the 64th value alone");
    assert_eq!(ready.keys()[0].index(), 63);
}

/// The count bits of the value region `name`'s `waiters` and the MPMC queue `queue`'s
/// `not_empty_sleepers` (FORMAT.md, "Sleeper counts").
fn sleeper_counts(name: &str, queue: &str) -> (u32, u32) {
    let word = |name: &str, at: usize| {
        let bytes = std::fs::read(shmstore_tests::shm_path(name)).unwrap();
        u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap()) & 0xffff
    };
    let payload = shmstore::inspect::Inspector::open(queue)
        .unwrap()
        .header_fields()
        .payload_offset as usize;
    (word(name, 136), word(queue, payload + 132))
}

/// A process killed (SIGKILL) while registered through an `ShmEvents` or async futures left
/// its 1 in the value's and the queue's sleeper counts: the next publish to each, which woke
/// nobody, clears it, so later publishes make no system call again; and a waiter of this
/// process still wakes.
#[test]
fn a_process_killed_while_registered_through_events_or_futures_stops_costing_publishes() {
    for how in ["events", "async"] {
        let (value_name, _value_place) = region("red-killed-value");
        let (queue_name, _queue_place) = region("red-killed-queue");
        let value = shmstore::Shm::<shmstore_tests::Counter>::create(
            &value_name,
            shmstore_tests::Counter::at(0),
        )
        .unwrap();
        let mut queue = MsgQueue::options()
            .queue_mode(QueueMode::Mpmc)
            .create(&queue_name)
            .unwrap();
        let mut waiter = helper!("red-register-sleep", &value_name, &queue_name, how);
        waiter.expect("registered");
        assert_eq!(sleeper_counts(&value_name, &queue_name), (1, 1), "{how}");
        waiter.kill();
        *value.lock().unwrap() = shmstore_tests::Counter::at(1);
        queue.push(Msg::new(1, 0)).unwrap();
        assert_eq!(
            sleeper_counts(&value_name, &queue_name),
            (0, 0),
            "{how}: the dead registrant's entries stay"
        );
        // A live waiter of this process is not affected.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let since = value.version();
        let (changed, popped) = rt.block_on(async {
            let publish = async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                *value.lock().unwrap() = shmstore_tests::Counter::at(2);
            };
            let waits = async {
                let changed = value.changed(since).await;
                (changed, queue.pop_async().await)
            };
            tokio::time::timeout(PATIENCE, async { tokio::join!(waits, publish).0 })
                .await
                .expect("woken within PATIENCE")
        });
        assert_eq!(changed.unwrap(), since + 1);
        assert_eq!(popped.unwrap().map(|m| m.seq), Some(0));
    }
}

/// Without `futex_waitv` (the test-only fallback switch, in a process of its own): an
/// `ShmEvents`, `changed` and `pop_async` still see what another process publishes.
#[test]
fn without_futex_waitv_events_and_futures_still_wake() {
    let (value_name, _value_place) = region("red-fallback-value");
    let (queue_name, _queue_place) = region("red-fallback-queue");
    let value = shmstore::Shm::<shmstore_tests::Counter>::create(
        &value_name,
        shmstore_tests::Counter::at(0),
    )
    .unwrap();
    let queue = MsgQueue::options()
        .queue_mode(QueueMode::Mpmc)
        .create(&queue_name)
        .unwrap();
    let mut waiter = helper!("red-fallback-wait", &value_name, &queue_name);
    assert_eq!(waiter.line(), format!("ready {}", value.version()));
    for (round, how) in ["events", "async-value", "async-pop"]
        .into_iter()
        .enumerate()
    {
        waiter.send(how);
        std::thread::sleep(Duration::from_millis(50));
        if how == "async-pop" {
            queue.push(Msg::new(1, round as u64)).unwrap();
            assert_eq!(waiter.line(), format!("popped {round}"));
        } else {
            *value.lock().unwrap() = shmstore_tests::Counter::at(round as u64 + 1);
            assert_eq!(
                waiter.line(),
                format!("changed {}", value.version()),
                "{how}"
            );
        }
    }
    let lines = waiter.finish_ok();
    assert!(lines.is_empty(), "{lines:?}");
}

/// `pop_async` on an MPMC queue whose lock a stopped process holds, then the queue is removed
/// (a plain `rm`): the future ends with `Removed`, as a wait blocked on an empty queue does,
/// instead of re-checking the held lock forever.
#[test]
fn regression_pop_async_missed_a_removal_while_the_queue_lock_was_held() {
    let dir = TempDir::new("wait-red-shim");
    let shim = build_shim(&dir, "stop_at_unlock.c");
    let (name, _place) = region("red-busy-removed");
    let mut q = MsgQueue::options()
        .queue_mode(QueueMode::Mpmc)
        .create(&name)
        .unwrap();
    let holder = helper!("queue-stop-at-unlock", shim.display(), &name);
    wait_until_stopped(holder.pid());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ended = rt.block_on(async {
        let popping = q.pop_async();
        let removing = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            std::fs::remove_file(shmstore_tests::shm_path(&name)).unwrap();
        };
        tokio::time::timeout(PATIENCE, async { tokio::join!(popping, removing).0 }).await
    });
    let ended = ended.expect("pop_async still waiting PATIENCE after the removal");
    assert!(
        matches!(ended, Err(shmstore::Error::Removed { .. })),
        "{ended:?}"
    );
    holder.kill();
}

/// A queue closed by another process while a `WaitSet`, an `ShmEvents` or `pop_async` waits
/// for an element: each ends (ready, or `None` from the pop) instead of waiting on.
#[test]
fn a_queue_closed_by_another_process_ends_every_form_of_wait() {
    for how in ["waitset", "events", "async"] {
        let (value_name, _value_place) = region("red-closed-value");
        let (queue_name, _queue_place) = region("red-closed-queue");
        let value = shmstore::Shm::<shmstore_tests::Counter>::create(
            &value_name,
            shmstore_tests::Counter::at(0),
        )
        .unwrap();
        let mut queue = MsgQueue::options()
            .queue_mode(QueueMode::Mpmc)
            .create(&queue_name)
            .unwrap();
        let mut closer = helper!("publish-on-command", &value_name, &queue_name);
        closer.expect("ready");
        let since = value.version();
        let outcome = std::thread::scope(|scope| {
            let waiter = scope.spawn(|| wait_forged(how, &value, &mut queue, since, PATIENCE));
            std::thread::sleep(Duration::from_millis(100));
            closer.send("close");
            closer.expect("done");
            waiter.join().expect("the waiter panicked")
        });
        assert!(
            outcome == "Ok(1)" || outcome.contains("Event") || outcome == "popped Ok(None)",
            "{how}: {outcome}"
        );
    }
}
