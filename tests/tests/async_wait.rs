//! Waiting on several things at once, asynchronously and through a descriptor, with real
//! processes publishing: a `select!` over a region's `changed` and a queue's `pop_async` wakes
//! for the one that was published; thousands of cancelled futures (runtime timeouts, and the
//! losing branch of a `select!`) lose no element and leave no registration and no sleeper
//! count behind; `ShmEvents` becomes readable under `poll(2)` and says which source is ready.

use std::os::fd::AsFd;
use std::sync::Mutex;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use shmstore::inspect::Inspector;
use shmstore::{QueueEvent, QueueMode, Readiness, Shm, ShmChannel, ShmEvents};
use shmstore_tests::{
    create_queue, helper, region, shm_path, Backend, Counter, Helper, Msg, MsgQueue, Place,
    PATIENCE,
};

/// The notifier's registry is one per process: tests that count its registrations run one at
/// a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A value region, a queue of `mode`, and a helper that publishes to either on command.
struct Sources {
    value: Shm<Counter>,
    queue: MsgQueue,
    publisher: Helper,
    value_name: String,
    queue_name: String,
    _places: (Place, Place),
}

impl Sources {
    fn new(tag: &str, mode: QueueMode) -> Sources {
        let (value_name, value_place) = region(&format!("{tag}-value"));
        let queue_place = Place::new(Backend::Posix, &format!("{tag}-queue"));
        let queue_name = queue_place.to_string();
        let value = Shm::<Counter>::create(&value_name, Counter::at(0)).unwrap();
        let queue = create_queue(&queue_place, mode);
        let mut publisher = helper!("publish-on-command", value_name, queue_name);
        publisher.expect("ready");
        Sources {
            value,
            queue,
            publisher,
            value_name,
            queue_name,
            _places: (value_place, queue_place),
        }
    }

    /// Has the helper run `command` and waits until it did.
    fn publish(&mut self, command: &str) {
        self.publisher.send(command);
        self.publisher.expect("done");
    }

    /// The value's registered waiters (its header's `waiters`).
    fn value_waiters(&self) -> u32 {
        Inspector::open(self.value_name.as_str())
            .unwrap()
            .header_fields()
            .waiters
            & COUNT_BITS
    }

    /// The queue's sleeper counts (SPSC: flags), `not_empty` then `not_full`, read from the
    /// object's bytes (FORMAT.md: the events at 128 and 192 of the control block, each an
    /// epoch then a count).
    fn queue_sleepers(&self) -> (u32, u32) {
        let payload = Inspector::open(self.queue_name.as_str())
            .unwrap()
            .header_fields()
            .payload_offset as usize;
        let bytes = std::fs::read(shm_path(&self.queue_name)).unwrap();
        let word = |at: usize| u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap());
        (
            word(payload + 128 + 4) & COUNT_BITS,
            word(payload + 192 + 4) & COUNT_BITS,
        )
    }

    /// Nothing of this process waits on either source any more.
    fn assert_nothing_registered(&self) {
        assert_eq!(
            shmstore::__notifier_registrations(),
            0,
            "registrations left"
        );
        assert_eq!(self.value_waiters(), 0, "the value's waiters");
        assert_eq!(self.queue_sleepers(), (0, 0), "the queue's sleepers");
    }
}

/// The count bits of a sleeper count word (FORMAT.md, "Sleeper counts": the high half is a
/// generation that moves each time a publisher clears the count).
const COUNT_BITS: u32 = 0xffff;

enum Woke {
    Value(u64),
    Queue(Option<Msg>),
}

/// Waits (asynchronously, without a timer) until `ready` holds; panics after [`PATIENCE`], so
/// that a test that would hang fails instead and its guards remove its regions (a test runner
/// that kills a hung test leaves them in /dev/shm).
async fn until(mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "the condition did not hold within {PATIENCE:?}"
        );
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// A `select!` over a region's `changed` and a queue's `pop_async` wakes for the source that
/// another process published to, once both are asleep (counted in as sleepers), in both queue
/// modes; and the losing branch leaves nothing behind.
#[test]
fn a_select_over_a_value_and_a_queue_wakes_for_the_one_published() {
    let _serial = serial();
    for mode in [QueueMode::Spsc, QueueMode::Mpmc] {
        let mut s = Sources::new("async-select", mode);
        let rt = runtime();
        for (round, command) in ["value", "push 7", "value", "push 8"]
            .into_iter()
            .enumerate()
        {
            let since = s.value.version();
            let woke = rt.block_on(async {
                let Sources {
                    value,
                    queue,
                    publisher,
                    value_name,
                    queue_name,
                    ..
                } = &mut s;
                let waiting = async {
                    // Bounded, for the same reason as `until`: a missed wake-up fails the test
                    // (and removes its regions) instead of hanging it.
                    let either = async {
                        tokio::select! {
                            version = value.changed(since) => Woke::Value(version.unwrap()),
                            msg = queue.pop_async() => Woke::Queue(msg.unwrap()),
                        }
                    };
                    tokio::time::timeout(PATIENCE, either)
                        .await
                        .expect("no wake-up within PATIENCE")
                };
                let publishing = async {
                    // Both futures are armed: the helper's publish must wake the sleeper.
                    let value_name = value_name.clone();
                    let queue_name = queue_name.clone();
                    until(move || {
                        let waiters = Inspector::open(value_name.as_str())
                            .unwrap()
                            .header_fields()
                            .waiters;
                        let payload = Inspector::open(queue_name.as_str())
                            .unwrap()
                            .header_fields()
                            .payload_offset as usize;
                        let bytes = std::fs::read(shm_path(&queue_name)).unwrap();
                        let sleepers = u32::from_ne_bytes(
                            bytes[payload + 132..payload + 136].try_into().unwrap(),
                        );
                        // Count bits only: a publish of an earlier round moved the generation.
                        waiters & COUNT_BITS == 1 && sleepers & COUNT_BITS == 1
                    })
                    .await;
                    publisher.send(command);
                };
                tokio::join!(waiting, publishing).0
            });
            s.publisher.expect("done");
            match (command, woke) {
                ("value", Woke::Value(version)) => assert_eq!(version, since + 1),
                (push, Woke::Queue(Some(msg))) if push.starts_with("push") => {
                    assert!(msg.is_intact());
                    assert_eq!(format!("push {}", msg.seq), push, "round {round}");
                }
                (command, _) => {
                    panic!("{mode:?} round {round}: woke for the wrong source after `{command}`")
                }
            }
            s.assert_nothing_registered();
        }
    }
}

/// Thousands of futures cancelled mid-wait (a runtime timeout of a few microseconds, and the
/// losing branch of a `select!`) leave no registration and no sleeper count behind, and,
/// while another process pushes thousands of elements, lose none: every element arrives,
/// once, in order.
#[test]
fn thousands_of_cancellations_lose_nothing_and_leave_nothing() {
    const CANCELLED: u64 = 2_000;
    const PUSHED: u64 = 20_000;
    let _serial = serial();
    for mode in [QueueMode::Spsc, QueueMode::Mpmc] {
        let mut s = Sources::new("async-cancel", mode);
        let rt = runtime();
        let tiny = Duration::from_micros(5);
        rt.block_on(async {
            // Nothing is published: each of these can only end by its timeout.
            let since = s.value.version();
            for _ in 0..CANCELLED {
                assert!(tokio::time::timeout(tiny, s.value.changed(since))
                    .await
                    .is_err());
                assert!(tokio::time::timeout(tiny, s.queue.pop_async())
                    .await
                    .is_err());
            }
        });
        s.assert_nothing_registered();

        // Now another process pushes; every pop races a timeout and a `changed` that never
        // completes (the value does not change), whose future the `select!` drops.
        let pusher = helper!("queue-push", s.queue_name, 1, 0, PUSHED);
        let since = s.value.version();
        let (mut next, mut timeouts) = (0u64, 0u64);
        rt.block_on(async {
            while next < PUSHED {
                let popped = tokio::time::timeout(tiny, async {
                    tokio::select! {
                        msg = s.queue.pop_async() => msg.unwrap(),
                        changed = s.value.changed(since) => panic!("no publish, yet {changed:?}"),
                    }
                })
                .await;
                match popped {
                    Ok(Some(msg)) => {
                        assert!(msg.is_intact(), "damaged {msg:?}");
                        assert_eq!((msg.producer, msg.seq), (1, next), "lost or reordered");
                        next += 1;
                    }
                    Ok(None) => panic!("the queue was closed"),
                    Err(_) => timeouts += 1,
                }
            }
        });
        assert_eq!(
            pusher.finish_ok(),
            ["pushing".to_string(), format!("pushed {PUSHED}")]
        );
        eprintln!("{mode:?}: {PUSHED} elements, {timeouts} more cancellations");
        assert_eq!(s.queue.try_pop().unwrap(), None, "nothing left over");
        s.assert_nothing_registered();
    }
}

/// `ShmEvents` under `poll(2)`: readable when another process commits the watched value (and
/// `ready` says the value's watch, with the new version), then when it pushes to the watched
/// queue (and `ready` says the queue's); dropping it leaves nothing registered.
#[test]
fn the_descriptor_becomes_readable_for_the_source_another_process_published_to() {
    let _serial = serial();
    for mode in [QueueMode::Spsc, QueueMode::Mpmc] {
        let mut s = Sources::new("async-events", mode);
        let since = s.value.version();
        {
            let mut events = ShmEvents::new().unwrap();
            let value_key = events.add_value(&s.value, since).unwrap();
            let queue_key = events.add_queue(&s.queue, QueueEvent::NotEmpty).unwrap();
            assert_eq!(s.value_waiters(), 1);
            assert_eq!(s.queue_sleepers().0, 1);
            let wait_readable = |events: &ShmEvents<'_>| {
                let mut fds = [PollFd::new(events.as_fd(), PollFlags::POLLIN)];
                let patience = PollTimeout::try_from(PATIENCE).unwrap();
                assert_eq!(poll(&mut fds, patience).unwrap(), 1, "not readable in time");
            };
            let ready_now = |events: &mut ShmEvents<'_>| loop {
                wait_readable(events);
                let ready = events.ready();
                // A wake-up with nothing ready (a slice that ran out) is not an answer.
                if !ready.is_empty() {
                    return ready
                        .into_iter()
                        .map(|(key, readiness)| (key, readiness.unwrap()))
                        .collect::<Vec<_>>();
                }
            };

            s.publisher.send("value");
            assert_eq!(
                ready_now(&mut events),
                [(value_key, Readiness::Changed(since + 1))]
            );
            s.publisher.expect("done");
            s.publisher.send("push 3");
            assert_eq!(ready_now(&mut events), [(queue_key, Readiness::Event)]);
            s.publisher.expect("done");
            let msg = s.queue.try_pop().unwrap().expect("the element announced");
            assert_eq!(msg.seq, 3);
            // Armed again on both: the next commit is reported with its own version.
            s.publisher.send("value");
            assert_eq!(
                ready_now(&mut events),
                [(value_key, Readiness::Changed(since + 2))]
            );
            s.publisher.expect("done");
        }
        s.assert_nothing_registered();
    }
}

/// A read-only handle's `changed` and a byte channel's `recv_async`/`send_async` across
/// processes' worth of handles: the reader sees another process's commit; a message sent
/// asynchronously arrives whole; a closed, empty channel ends `recv_async` with `None`.
#[test]
fn a_reader_and_a_channel_wait_asynchronously() {
    let _serial = serial();
    let mut s = Sources::new("async-reader", QueueMode::Mpmc);
    let reader = Shm::<Counter>::open_reader(s.value_name.as_str()).unwrap();
    let since = reader.version();
    let rt = runtime();
    // Published before the wait: the first look finds it.
    s.publish("value");
    assert_eq!(rt.block_on(reader.changed(since)).unwrap(), since + 1);
    // Published while it waits (a reader re-checks every 10 ms: no notify_readers).
    s.publisher.send("value");
    assert_eq!(rt.block_on(reader.changed(since + 1)).unwrap(), since + 2);
    s.publisher.expect("done");

    let (name, _place) = region("async-channel");
    let mut rx = ShmChannel::options()
        .capacity(4096)
        .max_message(1024)
        .create(name.as_str())
        .unwrap();
    let mut tx = ShmChannel::open(name.as_str()).unwrap();
    rt.block_on(async {
        tx.send_async(b"hello").await.unwrap();
        assert_eq!(
            rx.recv_async().await.unwrap().as_deref(),
            Some(&b"hello"[..])
        );
        let idle = tokio::time::timeout(Duration::from_millis(5), rx.recv_async()).await;
        assert!(idle.is_err(), "nothing was sent");
        tx.close();
        assert_eq!(rx.recv_async().await.unwrap(), None);
    });
    drop(reader);
    s.assert_nothing_registered();
}

/// Bug (found in review before the first merge): a watch re-armed after a wake-up without an
/// event (its slice ran out) armed the SPSC queue's sleeper flag anew and then dropped its old
/// arming, which cleared the flag because the epoch had not moved: the producer then saw
/// nobody asleep and never woke it, so every wake-up after the first second came a slice
/// late. Now the old arming goes first (`Watch::disarm`).
#[test]
fn regression_a_quiet_rearm_cleared_the_spsc_sleeper_flag() {
    let _serial = serial();
    let s = Sources::new("async-rearm", QueueMode::Spsc);
    let mut events = ShmEvents::new().unwrap();
    events.add_queue(&s.queue, QueueEvent::NotEmpty).unwrap();
    assert_eq!(s.queue_sleepers().0, 1, "armed");
    // Nothing is published: the only wake-up is the watch's slice running out (a second).
    let mut fds = [PollFd::new(events.as_fd(), PollFlags::POLLIN)];
    let patience = PollTimeout::try_from(PATIENCE).unwrap();
    assert_eq!(
        poll(&mut fds, patience).unwrap(),
        1,
        "the slice never ran out"
    );
    assert!(events.ready().is_empty(), "nothing was published");
    assert_eq!(s.queue_sleepers().0, 1, "re-armed, but the flag is clear");
    drop(events);
    s.assert_nothing_registered();
}

/// A region removed by shmstore while `changed` waits on it ends the wait with `Removed`
/// (its remover wakes every sleeper: the notifier sees a wake-up without a new version, and
/// the future looks at the location; or the wait's slice runs out first), and leaves nothing
/// registered.
#[test]
fn changed_ends_with_removed_when_the_region_is_removed() {
    let _serial = serial();
    let (name, _place) = region("async-removed");
    let value = Shm::<Counter>::create(name.as_str(), Counter::at(0)).unwrap();
    let since = value.version();
    let rt = runtime();
    let ended = rt.block_on(async {
        let removing = async {
            until(|| {
                Inspector::open(name.as_str())
                    .unwrap()
                    .header_fields()
                    .waiters
                    == 1
            })
            .await;
            // Usually lets the notifier fall asleep on the word first, so that the remover's
            // wake-up reaches it; one that comes before is lost, as for a blocking wait, and
            // the wait's slice (a second) bounds that. Either way the answer is `Removed`.
            std::thread::sleep(Duration::from_millis(50));
            shmstore::unlink(name.as_str()).unwrap();
        };
        tokio::join!(value.changed(since), removing).0
    });
    assert!(
        matches!(ended, Err(shmstore::Error::Removed { .. })),
        "{ended:?}"
    );
    assert_eq!(shmstore::__notifier_registrations(), 0);
}

/// `ShmEvents` in tokio's `AsyncFd` (its epoll reactor): the task wakes when another process
/// pushes to the watched queue, and `ready` names the queue's watch.
#[test]
fn the_descriptor_drives_a_tokio_async_fd() {
    let _serial = serial();
    let mut s = Sources::new("async-fd", QueueMode::Mpmc);
    let rt = runtime();
    {
        let mut events = ShmEvents::new().unwrap();
        let queue_key = events.add_queue(&s.queue, QueueEvent::NotEmpty).unwrap();
        let publisher = &mut s.publisher;
        let ready = rt.block_on(async {
            // SAFETY: an `ShmEvents` owns its eventfd and keeps it open, as the same
            // descriptor, for as long as it lives (its documentation says so), and the
            // `AsyncFd` owns the `ShmEvents`.
            let mut events = unsafe { tokio::io::unix::AsyncFd::register(events) }
                .map_err(|e| e.into_parts().1)
                .expect("AsyncFd");
            publisher.send("push 9");
            loop {
                let mut guard = events.readable_mut().await.expect("readable");
                let ready = guard.get_inner_mut().ready();
                guard.clear_ready();
                if !ready.is_empty() {
                    break ready;
                }
            }
        });
        s.publisher.expect("done");
        let ready: Vec<_> = ready
            .into_iter()
            .map(|(key, readiness)| (key, readiness.unwrap()))
            .collect();
        assert_eq!(ready, [(queue_key, Readiness::Event)]);
        assert_eq!(s.queue.try_pop().unwrap().map(|m| m.seq), Some(9));
    }
    s.assert_nothing_registered();
}

/// `push_async` on a full queue, cancelled a thousand times by a runtime timeout (nobody pops,
/// so only the timeout can end each), pushes nothing and leaves no registration and no count
/// in `not_full`; once another process frees room, a `push_async` completes.
#[test]
fn cancelled_pushes_push_nothing_and_leave_nothing() {
    let _serial = serial();
    for mode in [QueueMode::Spsc, QueueMode::Mpmc] {
        let mut s = Sources::new("async-push", mode);
        let rt = runtime();
        let capacity = shmstore_tests::QUEUE_CAPACITY as u64;
        rt.block_on(async {
            for seq in 0..capacity {
                s.queue.push_async(Msg::new(2, seq)).await.unwrap();
            }
            for seq in 0..1_000 {
                let push = s.queue.push_async(Msg::new(3, seq));
                assert!(tokio::time::timeout(Duration::from_micros(5), push)
                    .await
                    .is_err());
            }
        });
        assert_eq!(s.queue.len(), capacity as usize, "a cancelled push pushed");
        s.assert_nothing_registered();
        // Another process takes one element: the next push finds room.
        let mut popper = helper!("queue-pop", s.queue_name, 1);
        popper.expect("popping");
        assert_eq!(popper.line(), "got 2 0");
        rt.block_on(async {
            tokio::time::timeout(PATIENCE, s.queue.push_async(Msg::new(4, 0)))
                .await
                .expect("room within the patience")
                .unwrap();
        });
        s.assert_nothing_registered();
    }
}

/// A migration by another process (a binary of a wider release opens the region and commits)
/// while `changed` waits: the future follows the region that replaced its own and returns
/// the version committed there, never `Removed`.
#[test]
fn changed_follows_a_migration_by_another_process() {
    use shmstore::value::FixedStr;
    use shmstore_tests::config_versions::{ConfigV1, LevelV1};
    let _serial = serial();
    let (name, _place) = region("async-migrated");
    let config = Shm::<ConfigV1>::create(
        name.as_str(),
        ConfigV1 {
            workers: 4,
            timeout_ms: 500,
            service: FixedStr::new("gateway").expect("fits"),
            level: LevelV1::Warn.into(),
            _pad: [0; 3],
        },
    )
    .unwrap();
    let since = config.version();
    let mut migrator = helper!("config-count", name, "v1-plus", 1);
    migrator.expect("ready");
    let rt = runtime();
    let changed = rt.block_on(async {
        let migrating = async {
            until(|| {
                Inspector::open(name.as_str())
                    .unwrap()
                    .header_fields()
                    .waiters
                    == 1
            })
            .await;
            migrator.send("go");
        };
        tokio::join!(config.changed(since), migrating).0
    });
    let version = changed.expect("a version, not an error");
    assert!(version > since, "{version} after {since}");
    assert_eq!(config.read().workers, 5, "the migrated region's commit");
    migrator.expect("done");
    assert_eq!(shmstore::__notifier_registrations(), 0);
}
