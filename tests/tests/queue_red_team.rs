//! A red-team pass over what issue 17 added: `ShmQueue` loans, batches and iteration, and
//! `ShmChannel`, attacked as a hostile peer (forged words in the region), a killed process, a
//! careless caller (`mem::forget` of a loan, a loan held across `close`, a panic inside a
//! loan) and a confused one (a queue opened as a channel, a mode asked for and not found).
//! Each case expects a typed `shmstore::Error` with a helpful message, or the documented
//! behaviour: no panic, no hang, no lost or torn message, no leaked room.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;

use shmstore::{Error, QueueMode, Shm, ShmChannel, ShmQueue};
use shmstore_tests::{helper, is_root, region, shm_path, variant, NEVER, PATIENCE};

const MODES: [QueueMode; 2] = [QueueMode::Spsc, QueueMode::Mpmc];

fn channel(name: &str, mode: QueueMode, capacity: usize, max: usize) -> ShmChannel {
    ShmChannel::options()
        .queue_mode(mode)
        .capacity(capacity)
        .max_message(max)
        .create(name)
        .unwrap()
}

/// Asking for a channel's mode and finding the other one is an error naming both, as for a
/// queue (issue 17, "no silent mode switch"); an opener that asks for none follows.
#[test]
fn a_channel_opened_asking_for_the_other_mode_is_refused() {
    for (created, asked) in [
        (QueueMode::Mpmc, QueueMode::Spsc),
        (QueueMode::Spsc, QueueMode::Mpmc),
    ] {
        let (name, _cleanup) = region("rt-ch-mode");
        let _creator = channel(&name, created, 4096, 100);
        for how in ["open", "open_or_create"] {
            let options = ShmChannel::options().queue_mode(asked);
            let opened = match how {
                "open" => options.open(name.as_str()),
                _ => options.capacity(4096).open_or_create(name.as_str()),
            };
            match opened {
                Err(Error::QueueModeMismatch {
                    asked: a, found: f, ..
                }) => assert_eq!((a, f), (asked, created)),
                other => panic!("{how} asking for {asked:?} of a {created:?} channel: {other:?}"),
            }
        }
        let follower = ShmChannel::open(name.as_str()).unwrap();
        assert_eq!(follower.mode(), created);
        let follower = ShmChannel::options()
            .capacity(4096)
            .open_or_create(name.as_str())
            .unwrap();
        assert_eq!(follower.mode(), created);
    }
}

/// Zero-length messages, messages of exactly the largest length, and a capacity that is a
/// multiple of nothing in particular, by copy and through loans, over many wraps: each comes
/// out whole and in order, and the ring is empty afterwards.
#[test]
fn edge_lengths_and_odd_capacities_wrap_whole() {
    for mode in MODES {
        for capacity in [33, 100, 4097] {
            let (name, _cleanup) = region("rt-ch-edges");
            let mut ch = ShmChannel::options()
                .queue_mode(mode)
                .capacity(capacity)
                .create(name.as_str())
                .unwrap();
            let max = ch.max_message();
            assert!(ch.capacity() >= capacity && ch.capacity() % 8 == 0);
            for round in 0..200usize {
                let len = match round % 3 {
                    0 => 0,
                    1 => max,
                    _ => round % (max + 1),
                };
                let message: Vec<u8> = (0..len).map(|i| (i + round) as u8).collect();
                if round % 2 == 0 {
                    ch.try_send(&message).unwrap();
                } else {
                    let mut loan = ch.try_send_loan(len).unwrap();
                    loan.copy_from_slice(&message);
                    loan.commit().unwrap();
                }
                if round % 4 == 0 {
                    let got = ch.try_recv_loan().unwrap().expect("a message");
                    assert_eq!(&*got, &message[..], "{mode:?} {capacity} {round}");
                } else {
                    assert_eq!(ch.try_recv().unwrap(), Some(message));
                }
                assert_eq!(ch.used_bytes(), 0);
            }
            let too_long = ch.try_send(&vec![0; max + 1]).unwrap_err();
            assert_eq!(variant(&too_long), "MessageTooLarge");
            assert_eq!(
                variant(&ch.try_send_loan(max + 1).unwrap_err()),
                "MessageTooLarge"
            );
        }
    }
}

/// A send loan held across `close` publishes nothing: its commit is `QueueClosed`, what was
/// sent before is delivered, then the end. A receive loan held across `close` still releases.
#[test]
fn loans_held_across_close() {
    for mode in MODES {
        let (name, _cleanup) = region("rt-ch-close");
        let mut ch = channel(&name, mode, 1024, 64);
        ch.send(b"before").unwrap();
        let closer = ShmChannel::open(name.as_str()).unwrap();
        let mut loan = ch.send_loan(5).unwrap();
        loan.copy_from_slice(b"after");
        if mode == QueueMode::Mpmc {
            // The loan holds the lock; close needs none.
            closer.close();
        } else {
            closer.close();
        }
        assert_eq!(variant(&loan.commit().unwrap_err()), "QueueClosed");
        let got = ch.recv_loan().unwrap().expect("the message sent before");
        assert_eq!(&*got, b"before");
        drop(got);
        assert_eq!(ch.recv().unwrap(), None);
        assert_eq!(ch.used_bytes(), 0);

        // A queue's push loan, the same.
        let (name, _cleanup) = region("rt-q-close");
        let mut q = ShmQueue::<u64, 4>::options()
            .queue_mode(mode)
            .create(name.as_str())
            .unwrap();
        q.push(1).unwrap();
        let mut loan = q.loan().unwrap();
        *loan = 2;
        ShmQueue::<u64, 4>::open(name.as_str()).unwrap().close();
        assert_eq!(variant(&loan.commit().unwrap_err()), "QueueClosed");
        assert_eq!(q.pop().unwrap(), Some(1));
        assert_eq!(q.pop().unwrap(), None);
        assert_eq!(q.drain().count(), 0);
        assert_eq!(q.iter().count(), 0);
    }
}

/// A forgotten loan moves no counter: in SPSC mode the next send (or push) writes the same
/// room again, the next receive (or pop) takes the same message again, and nothing leaks.
#[test]
fn a_forgotten_spsc_loan_leaks_nothing() {
    let (name, _cleanup) = region("rt-ch-forget");
    let mut ch = channel(&name, QueueMode::Spsc, 256, 64);
    for _ in 0..100 {
        let mut loan = ch.send_loan(64).unwrap();
        loan.fill(0xee);
        std::mem::forget(loan);
    }
    assert_eq!(ch.used_bytes(), 0);
    ch.send(b"one").unwrap();
    for _ in 0..100 {
        std::mem::forget(ch.recv_loan().unwrap().expect("a message"));
    }
    assert_eq!(ch.recv().unwrap(), Some(b"one".to_vec()));
    assert_eq!(ch.used_bytes(), 0);

    let (name, _cleanup) = region("rt-q-forget");
    let mut q = ShmQueue::<u64, 2>::options()
        .queue_mode(QueueMode::Spsc)
        .create(name.as_str())
        .unwrap();
    for _ in 0..10 {
        std::mem::forget(q.loan().unwrap());
    }
    q.push_slice(&[1, 2]).unwrap();
    for _ in 0..10 {
        std::mem::forget(q.pop_loan().unwrap());
    }
    let mut out = [0; 4];
    assert_eq!(q.pop_into(&mut out).unwrap(), 2);
    assert_eq!(out[..2], [1, 2]);
}

/// A forgotten MPMC loan keeps the lock (as a forgotten `MutexGuard` does): another handle's
/// bounded calls give up with `QueueFull`, `None` or `Timeout`, never hang, and a blocking
/// call on the thread that holds the lock is an error that says so, not `Corrupt` with advice
/// to remove the region.
#[test]
fn a_forgotten_mpmc_loan_leaves_bounded_calls_bounded() {
    let (name, _cleanup) = region("rt-ch-forget-mpmc");
    let mut ch = channel(&name, QueueMode::Mpmc, 256, 64);
    ch.send(b"queued").unwrap();
    std::mem::forget(ch.send_loan(8).unwrap());
    let other = ShmChannel::open(name.as_str()).unwrap();
    assert_eq!(variant(&other.try_send(b"x").unwrap_err()), "QueueFull");
    assert_eq!(other.try_recv().unwrap(), None);
    for e in [
        other.send_timeout(b"x", NEVER).unwrap_err(),
        other.recv_timeout(NEVER).unwrap_err(),
        other.send(b"x").unwrap_err(),
    ] {
        assert_eq!(variant(&e), "Io", "{e}");
        let text = e.to_string();
        assert!(text.contains("this thread already holds it"), "{text}");
        assert!(text.contains("mem::forget"), "{text}");
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            let elsewhere = ShmChannel::open(name.as_str()).unwrap();
            let e = elsewhere.send_timeout(b"x", NEVER).unwrap_err();
            assert_eq!(variant(&e), "Timeout", "{e}");
            let e = elsewhere.recv_timeout(NEVER).unwrap_err();
            assert_eq!(variant(&e), "Timeout", "{e}");
        });
    });

    // A queue's pop loan, the same.
    let (name, _cleanup) = region("rt-q-forget-mpmc");
    let mut q = ShmQueue::<u64, 4>::create(name.as_str()).unwrap();
    q.push(1).unwrap();
    std::mem::forget(q.pop_loan().unwrap());
    let other = ShmQueue::<u64, 4>::open(name.as_str()).unwrap();
    assert_eq!(other.try_pop().unwrap(), None);
    let e = other.pop_timeout(NEVER).unwrap_err();
    assert_eq!(variant(&e), "Io", "{e}");
}

/// A channel refused at open (its settings forged) is not removed by the refused opener's
/// `unlink_on_drop`: it is not that opener's.
#[test]
fn a_refused_channel_is_not_removed_by_unlink_on_drop() {
    let (name, _cleanup) = region("rt-ch-refused");
    drop(channel(&name, QueueMode::Mpmc, 1024, 100));
    let settings = payload_offset(&name) + 256;
    let file = OpenOptions::new()
        .write(true)
        .open(shm_path(&name))
        .unwrap();
    file.write_all_at(&u64::MAX.to_ne_bytes(), settings)
        .unwrap();
    let opened = ShmChannel::options()
        .unlink_on_drop(true)
        .open(name.as_str());
    assert!(matches!(opened, Err(Error::Corrupt { .. })), "{opened:?}");
    assert!(shm_path(&name).exists(), "the refused channel was removed");
    // Nor one refused for its mode.
    let (name, _cleanup) = region("rt-ch-refused-mode");
    let _creator = channel(&name, QueueMode::Mpmc, 1024, 100);
    let opened = ShmChannel::options()
        .queue_mode(QueueMode::Spsc)
        .unlink_on_drop(true)
        .open(name.as_str());
    assert!(opened.is_err());
    assert!(shm_path(&name).exists(), "the refused channel was removed");
}

/// A receive loan dropped while its thread unwinds from a panic keeps the message for the
/// next receive, as a queue's pop loan keeps its element: a message is consumed only by a
/// consumer that finished with it.
#[test]
fn a_recv_loan_dropped_in_a_panic_keeps_the_message() {
    for mode in MODES {
        let (name, _cleanup) = region("rt-ch-panic");
        let mut ch = channel(&name, mode, 256, 64);
        ch.send(b"precious").unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let loan = ch.recv_loan().unwrap().expect("a message");
            assert_eq!(&*loan, b"precious");
            panic!("the consumer fails while it reads");
        }));
        assert!(panicked.is_err());
        assert_eq!(
            ch.try_recv().unwrap(),
            Some(b"precious".to_vec()),
            "{mode:?}"
        );
    }
}

/// A queue opened as a channel and a channel opened as a queue or a value are refused with
/// errors that name what the region is and what opens it.
#[test]
fn a_queue_and_a_channel_do_not_pass_for_each_other() {
    let (name, _cleanup) = region("rt-kinds");
    let _queue = ShmQueue::<u64, 40>::create(name.as_str()).unwrap();
    let e = ShmChannel::open(name.as_str()).unwrap_err();
    assert_eq!(variant(&e), "LayoutMismatch", "{e}");
    let (name, _cleanup) = region("rt-kinds-ch");
    let _ch = channel(&name, QueueMode::Mpmc, 256, 64);
    let e = ShmQueue::<u64, 40>::open(name.as_str()).unwrap_err();
    assert_eq!(variant(&e), "LayoutMismatch", "{e}");
    let e = Shm::<u64>::open(name.as_str()).unwrap_err();
    assert_eq!(variant(&e), "WrongKind", "{e}");
    assert!(e.to_string().contains("ShmChannel"), "{e}");
}

/// The payload's offset in the object, read from the header (FORMAT.md: `payload_offset`).
fn payload_offset(name: &str) -> u64 {
    let bytes = std::fs::read(shm_path(name)).unwrap();
    let view = shmstore::inspect::Inspector::open(name).unwrap();
    let offset = view.header_fields().payload_offset;
    assert!((offset as usize) < bytes.len());
    offset
}

/// A peer that rewrites the record under a consumer's receive loan changes the bytes the
/// loan shows (documented), never their length or where they lie, and the release moves
/// `head` by the record the loan found: the next message comes out whole.
#[test]
fn garbage_written_under_a_recv_loan_stays_inside_the_record() {
    for mode in MODES {
        let (name, _cleanup) = region("rt-ch-garbage");
        let mut ch = channel(&name, mode, 1024, 100);
        ch.send(&[7; 40]).unwrap();
        ch.send(b"next").unwrap();
        let ring = payload_offset(&name) + 256 + 64;
        let file = OpenOptions::new()
            .write(true)
            .open(shm_path(&name))
            .unwrap();
        let loan = ch.recv_loan().unwrap().expect("a message");
        // The record header: a forged length, then garbage over the message.
        file.write_all_at(&u64::MAX.to_ne_bytes(), ring).unwrap();
        file.write_all_at(&[0xff; 40], ring + 8).unwrap();
        assert_eq!(loan.len(), 40);
        assert_eq!(&*loan, &[0xff; 40][..]);
        drop(loan);
        assert_eq!(ch.try_recv().unwrap(), Some(b"next".to_vec()), "{mode:?}");
        assert_eq!(ch.used_bytes(), 0);
    }
}

/// A header whose queue capacity was forged (larger, smaller, zero) is refused when the
/// channel is opened: `Corrupt`, never a read past the mapping.
#[test]
fn a_forged_header_capacity_is_refused() {
    const QUEUE_CAPACITY: u64 = 112; // FORMAT.md, the header's `queue_capacity`
    for forged in [0u64, 1, 8, 9, 1 << 20, u64::MAX / 8, u64::MAX] {
        let (name, _cleanup) = region("rt-ch-capacity");
        drop(channel(&name, QueueMode::Mpmc, 1024, 100));
        let file = OpenOptions::new()
            .write(true)
            .open(shm_path(&name))
            .unwrap();
        file.write_all_at(&forged.to_ne_bytes(), QUEUE_CAPACITY)
            .unwrap();
        let opened = ShmChannel::open(name.as_str());
        assert!(
            matches!(opened, Err(Error::Corrupt { .. })),
            "{forged}: {opened:?}"
        );
        let listed = shmstore::inspect::Inspector::open(name.as_str());
        if let Ok(view) = listed {
            let _ = view.channel();
            let _ = view.info();
        }
    }
}

/// A producer killed holding a send loan half written: in SPSC mode the replacement producer
/// takes the role over at once, in MPMC mode the next sender recovers the lock the loan held;
/// either way the new messages arrive whole and the dead one's bytes never do. A consumer
/// killed holding a receive loan consumed nothing: the next one gets the message.
#[test]
fn roles_and_locks_taken_over_after_a_kill_holding_a_loan() {
    for mode in MODES {
        let (name, _cleanup) = region("rt-ch-kill");
        let ch = channel(&name, mode, 1024, 100);
        let mut producer = helper!("channel-loan-hold", name, "send");
        producer.expect("holding");
        assert_eq!(ch.try_recv().unwrap(), None);
        let busy = match mode {
            QueueMode::Spsc => "RoleTaken",
            QueueMode::Mpmc => "QueueFull",
        };
        assert_eq!(variant(&ch.try_send(b"x").unwrap_err()), busy);
        let (status, _) = producer.kill_and_finish();
        assert_eq!(status.signal(), Some(9));
        let replacement = ShmChannel::open(name.as_str()).unwrap();
        replacement.send(b"whole").unwrap();
        assert_eq!(ch.recv_timeout(PATIENCE).unwrap(), Some(b"whole".to_vec()));
        drop(ch);

        replacement.send(b"kept").unwrap();
        let mut consumer = helper!("channel-loan-hold", name, "recv");
        consumer.expect("holding 4");
        let (status, _) = consumer.kill_and_finish();
        assert_eq!(status.signal(), Some(9));
        let next = ShmChannel::open(name.as_str()).unwrap();
        assert_eq!(next.recv_timeout(PATIENCE).unwrap(), Some(b"kept".to_vec()));
        assert_eq!(next.used_bytes(), 0, "{mode:?}");
    }
}

/// Another user that may only read the channel (mode 0644) cannot open it to send: a typed
/// `PermissionDenied`, not a read-only handle that fails later (or faults on its first
/// write). One that may write (0666) sends like anyone.
#[test]
fn another_user_with_read_access_only_cannot_send() {
    if !is_root() {
        eprintln!("skipped: setuid needs root");
        return;
    }
    for (mode, expected) in [(0o644, "open err PermissionDenied"), (0o666, "open ok")] {
        let (name, _cleanup) = region("rt-ch-uid");
        let ch = ShmChannel::options()
            .mode(mode)
            .capacity(1024)
            .create(name.as_str())
            .unwrap();
        let mut nobody = helper!("setuid-channel", name);
        let line = nobody.line();
        assert!(line.starts_with(expected), "{mode:o}: {line}");
        if mode == 0o666 {
            nobody.expect("send ok");
            assert_eq!(
                ch.recv_timeout(PATIENCE).unwrap(),
                Some(b"from nobody".to_vec())
            );
        }
        nobody.finish_ok();
    }
}

/// Forged counters (more elements than the capacity, or `head` past `tail`) make every batch,
/// loan and iteration of a queue return `Corrupt` at once: never a panic, a hang, or a read
/// of a slot outside the ring.
#[test]
fn forged_queue_counters_are_corrupt_for_batches_loans_and_iteration() {
    const N: usize = 8;
    type Q = ShmQueue<u64, N>;
    // (tail, head): too many elements; head past tail.
    for (tail, head) in [(N as u64 + 3, 0u64), (2, 5), (u64::MAX >> 1, 0)] {
        for mode in MODES {
            let (name, _cleanup) = region("rt-q-forged");
            let q = Q::options().queue_mode(mode).create(name.as_str()).unwrap();
            q.push_slice(&[1, 2]).unwrap();
            drop(q);
            let control = payload_offset(&name);
            let file = OpenOptions::new()
                .write(true)
                .open(shm_path(&name))
                .unwrap();
            file.write_all_at(&tail.to_ne_bytes(), control).unwrap();
            file.write_all_at(&head.to_ne_bytes(), control + 64)
                .unwrap();
            let open = || Q::open(name.as_str()).unwrap();
            let corrupt = |what: &str, e: Option<Error>| match e {
                Some(Error::Corrupt { .. }) => {}
                other => panic!("{mode:?} tail {tail} head {head}, {what}: {other:?}"),
            };
            let mut out = [0u64; 4];
            corrupt(
                "pop_into",
                open().pop_into_timeout(&mut out, PATIENCE).err(),
            );
            corrupt("try_pop_into", open().try_pop_into(&mut out).err());
            corrupt(
                "push_slice",
                open().push_slice_timeout(&[1; 20], PATIENCE).err(),
            );
            corrupt("try_push_slice", open().try_push_slice(&[1; 3]).err());
            corrupt("loan", open().loan_timeout(PATIENCE).err());
            corrupt("try_loan", open().try_loan().err());
            corrupt(
                "pop_loan",
                open()
                    .pop_loan_timeout(PATIENCE)
                    .map(|l| l.map(|_| ()))
                    .err(),
            );
            let q = open();
            let drained: Vec<_> = q.drain().collect();
            assert!(drained.len() <= 1, "{drained:?}");
            if let Some(item) = drained.into_iter().next() {
                corrupt("drain", item.err());
            }
            let iterated: Vec<_> = q.iter().collect();
            assert_eq!(iterated.len(), 1, "{iterated:?}");
            corrupt("iter", iterated.into_iter().next().and_then(Result::err));
        }
    }
}

/// Zero and unrepresentably long timeouts: a zero one gives up at once with `Timeout` (never a
/// panic computing a deadline), an endless one succeeds when there is room or a message.
#[test]
fn zero_and_endless_timeouts() {
    use std::time::Duration;
    for mode in MODES {
        let (name, _cleanup) = region("rt-ch-timeouts");
        let mut ch = channel(&name, mode, 64, 16);
        let e = ch.recv_timeout(Duration::ZERO).unwrap_err();
        assert_eq!(variant(&e), "Timeout", "{e}");
        ch.send_timeout(&[1; 16], Duration::MAX).unwrap();
        ch.send_timeout(&[2; 16], Duration::MAX).unwrap();
        let e = ch.send_timeout(&[3; 16], Duration::ZERO).unwrap_err();
        assert_eq!(variant(&e), "Timeout", "{e}");
        assert!(e.to_string().contains("the channel stayed full"), "{e}");
        assert_eq!(ch.recv_timeout(Duration::MAX).unwrap(), Some(vec![1; 16]));
        drop(ch.recv_loan().unwrap());
        assert_eq!(ch.used_bytes(), 0);

        let (name, _cleanup) = region("rt-q-timeouts");
        let mut q = ShmQueue::<u64, 2>::options()
            .queue_mode(mode)
            .create(name.as_str())
            .unwrap();
        let mut out = [0; 2];
        let e = q.pop_into_timeout(&mut out, Duration::ZERO).unwrap_err();
        assert_eq!(variant(&e), "Timeout", "{e}");
        let e = q.pop_loan_timeout(Duration::ZERO).unwrap_err();
        assert_eq!(variant(&e), "Timeout", "{e}");
        q.push_slice_timeout(&[1, 2], Duration::MAX).unwrap();
        let e = q.push_slice_timeout(&[3], Duration::ZERO).unwrap_err();
        assert_eq!(variant(&e), "Timeout", "{e}");
        let e = q.loan_timeout(Duration::ZERO).unwrap_err();
        assert_eq!(variant(&e), "Timeout", "{e}");
        assert_eq!(q.pop_into_timeout(&mut out, Duration::MAX).unwrap(), 2);
        assert_eq!(out, [1, 2]);
    }
}

/// The same kills in a file channel and a System V one (whose SPSC roles are pids, with no
/// descriptor to lock): the replacement producer takes the dead one's role (or lock) over, and
/// the message a killed consumer held is delivered again.
#[test]
fn kills_holding_loans_in_file_and_system_v_channels() {
    use shmstore_tests::{Backend, Place};
    for backend in [Backend::File, Backend::SysV] {
        for mode in MODES {
            let place = Place::new(backend, "rt-ch-kill-where");
            let at = place.to_string();
            let ch = ShmChannel::options()
                .queue_mode(mode)
                .capacity(1024)
                .max_message(100)
                .create(place.location().clone())
                .unwrap();
            let mut producer = helper!("channel-loan-hold", at, "send");
            producer.expect("holding");
            let (status, _) = producer.kill_and_finish();
            assert_eq!(status.signal(), Some(9));
            let replacement = ShmChannel::open(place.location().clone()).unwrap();
            replacement.send(b"whole").unwrap();
            assert_eq!(
                ch.recv_timeout(PATIENCE).unwrap(),
                Some(b"whole".to_vec()),
                "{backend:?} {mode:?}"
            );
            drop(ch);
            replacement.send(b"kept").unwrap();
            let mut consumer = helper!("channel-loan-hold", at, "recv");
            consumer.expect("holding 4");
            let (status, _) = consumer.kill_and_finish();
            assert_eq!(status.signal(), Some(9));
            let next = ShmChannel::open(place.location().clone()).unwrap();
            assert_eq!(next.recv_timeout(PATIENCE).unwrap(), Some(b"kept".to_vec()));
            assert_eq!(next.used_bytes(), 0, "{backend:?} {mode:?}");
        }
    }
}
