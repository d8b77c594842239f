//! `ShmChannel` between real processes: variable-length messages (1 byte to the largest) in
//! order through SPSC, as a multiset through MPMC with several producers, across many wraps of
//! the ring, by copy and through loans; producers SIGKILLed at seeded random points, hundreds
//! of times, expose no partial message and leave their room usable; forged control words,
//! settings and record lengths are `Corrupt`, never a panic.
//!
//! The messages are `channel_message(producer, seq, max)`: their bytes depend on the producer,
//! the number and the position, so a torn or mixed message differs from the one expected.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;

use shmstore::{Error, QueueMode, ShmChannel};
use shmstore_tests::{channel_message, helper, region, shm_path, PATIENCE};

const MODES: [QueueMode; 2] = [QueueMode::Spsc, QueueMode::Mpmc];

fn create(name: &str, mode: QueueMode, capacity: usize, max: usize) -> ShmChannel {
    ShmChannel::options()
        .queue_mode(mode)
        .capacity(capacity)
        .max_message(max)
        .create(name)
        .unwrap()
}

/// The next message, which must arrive within `PATIENCE`.
fn recv_some(channel: &ShmChannel) -> Vec<u8> {
    channel
        .recv_timeout(PATIENCE)
        .unwrap()
        .expect("a message, not the end of a closed channel")
}

/// A small seeded generator (xorshift64*): the kill points are random but reproducible.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

#[test]
fn variable_length_messages_arrive_in_order_and_whole_across_many_wraps() {
    const MAX: usize = 1500;
    const COUNT: u64 = 3000;
    for mode in MODES {
        for how in ["copy", "loan"] {
            let (name, _cleanup) = region("ch-order");
            // 4 KiB: two largest records fit, so the ring wraps every few messages.
            let mut channel = create(&name, mode, 4096, MAX);
            assert_eq!(ShmChannel::open(name.as_str()).unwrap().capacity(), 4096);
            let mut producer = helper!("channel-send", name, 0, 0, COUNT, how);
            producer.expect("ready");
            for seq in 0..COUNT {
                let expected = channel_message(0, seq, MAX);
                if seq % 2 == 0 {
                    assert_eq!(
                        recv_some(&channel),
                        expected,
                        "{mode:?} {how} message {seq}"
                    );
                } else {
                    let loan = channel.recv_loan().unwrap().expect("a message");
                    assert_eq!(&*loan, &expected[..], "{mode:?} {how} message {seq}");
                }
            }
            producer.expect("done");
            assert_eq!(producer.finish_ok(), Vec::<String>::new());
            assert!(channel.is_empty());
        }
    }
}

#[test]
fn mpmc_producers_deliver_every_message_exactly_once() {
    const MAX: usize = 700;
    const PRODUCERS: u64 = 3;
    const EACH: u64 = 1500;
    let (name, _cleanup) = region("ch-mpmc");
    let channel = create(&name, QueueMode::Mpmc, 8192, MAX);
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            helper!(
                "channel-send",
                name,
                p,
                0,
                EACH,
                if p % 2 == 0 { "copy" } else { "loan" }
            )
        })
        .collect();
    let mut got: Vec<Vec<u8>> = (0..PRODUCERS * EACH).map(|_| recv_some(&channel)).collect();
    for mut producer in producers {
        producer.expect("ready");
        producer.expect("done");
        producer.finish_ok();
    }
    assert_eq!(channel.try_recv().unwrap(), None);
    let mut expected: Vec<Vec<u8>> = (0..PRODUCERS)
        .flat_map(|p| (0..EACH).map(move |seq| channel_message(p, seq, MAX)))
        .collect();
    got.sort();
    expected.sort();
    assert!(got == expected, "the multiset of messages differs");
}

/// Hundreds of rounds: a producer streams numbered messages; after a seeded random number of
/// them this process SIGKILLs it, wherever it is (copying into the ring, filling a loan,
/// publishing, asleep on a full ring), then takes everything published. Every message is
/// whole and the next in the stream; the killed producer's unpublished message never shows, and
/// the next producer (SPSC: taking over the dead one's role) sends into its room at once.
#[test]
fn a_producer_killed_at_random_points_never_exposes_a_partial_message() {
    const ROUNDS: u64 = 100;
    const MAX: usize = 20_000;
    let mut rng = Rng(0x5eed_c4a2_2026_0017);
    for mode in MODES {
        for how in ["copy", "loan"] {
            let (name, _cleanup) = region("ch-kill");
            let channel = create(&name, mode, 64 * 1024, MAX);
            let mut next = 0u64;
            for _ in 0..ROUNDS {
                let mut producer = helper!("channel-send", name, 0, next, 0, how);
                producer.expect("ready");
                for _ in 0..rng.below(8) {
                    assert_eq!(recv_some(&channel), channel_message(0, next, MAX));
                    next += 1;
                }
                for _ in 0..rng.below(2000) {
                    std::hint::spin_loop();
                }
                let (status, _) = producer.kill_and_finish();
                assert_eq!(status.signal(), Some(9), "the producer was killed");
                // Nobody sends now: what is there comes out in order, whole.
                while let Some(message) = channel.try_recv().unwrap() {
                    assert_eq!(
                        message,
                        channel_message(0, next, MAX),
                        "{mode:?} {how} {next}"
                    );
                    next += 1;
                }
            }
            // The room of the last one killed is usable at once: a largest message fits the
            // drained ring, wherever its last record ended.
            channel.try_send(&vec![1; MAX]).unwrap();
            assert_eq!(channel.try_recv().unwrap(), Some(vec![1; MAX]));
            assert!(next > ROUNDS / 2, "the producers sent something");
        }
    }
}

/// Where the channel's payload starts in its file: found by its settings line (largest
/// message, ring size), 256 bytes after the payload's start.
fn payload_offset(bytes: &[u8], max: usize, ring: usize) -> u64 {
    let mut settings = (max as u64).to_ne_bytes().to_vec();
    settings.extend_from_slice(&(ring as u64).to_ne_bytes());
    let at = (0..bytes.len() - 16)
        .step_by(64)
        .find(|&at| bytes[at..at + 16] == settings[..])
        .expect("the settings line");
    (at - 256) as u64
}

#[test]
fn forged_counters_settings_and_lengths_are_corrupt_not_a_panic() {
    const MAX: usize = 100;
    const RING: usize = 1024;
    const TAG_MESSAGE: u64 = 0x4d53_4731 << 32;
    const TAG_SKIP: u64 = 0x5049_4b53 << 32;
    type Forge = (&'static str, u64, u64);
    // (what, offset from the payload's start, the word written there)
    let forgeries: [Forge; 6] = [
        (
            "a length past the largest message",
            320,
            TAG_MESSAGE | 0xffff_ff00,
        ),
        ("a length past what was published", 320, TAG_MESSAGE | 99),
        ("an unknown tag", 320, 0xdead_beef_0000_0005),
        ("a skip over everything published", 320, TAG_SKIP),
        ("a tail a ring ahead", 0, RING as u64 * 3),
        ("an unaligned head", 64, 3),
    ];
    for mode in MODES {
        for (what, offset, word) in forgeries {
            let (name, _cleanup) = region("ch-forged");
            let channel = create(&name, mode, RING, MAX);
            // One 1-byte message from another process: a 16-byte record at ring offset 0.
            let mut producer = helper!("channel-send", name, 0, 0, 1, "copy");
            producer.expect("ready");
            producer.expect("done");
            producer.finish_ok();
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(shm_path(&name))
                .unwrap();
            let bytes = std::fs::read(shm_path(&name)).unwrap();
            let payload = payload_offset(&bytes, MAX, RING);
            file.write_all_at(&word.to_ne_bytes(), payload + offset)
                .unwrap();
            let got = channel.try_recv();
            assert!(
                matches!(got, Err(Error::Corrupt { .. })),
                "{mode:?}, {what}: {got:?}"
            );
        }
        // A largest message the ring cannot carry: the opener refuses it.
        let (name, _cleanup) = region("ch-forged-settings");
        drop(create(&name, mode, RING, MAX));
        let bytes = std::fs::read(shm_path(&name)).unwrap();
        let payload = payload_offset(&bytes, MAX, RING);
        let file = OpenOptions::new()
            .write(true)
            .open(shm_path(&name))
            .unwrap();
        file.write_all_at(&u64::MAX.to_ne_bytes(), payload + 256)
            .unwrap();
        let opened = ShmChannel::open(name.as_str());
        assert!(matches!(opened, Err(Error::Corrupt { .. })), "{opened:?}");
    }
}

#[test]
fn close_timeouts_and_bounds() {
    for mode in MODES {
        let (name, _cleanup) = region("ch-close");
        let channel = create(&name, mode, 256, 100);
        assert!(matches!(
            channel.try_send(&[0; 101]),
            Err(Error::MessageTooLarge {
                len: 101,
                max: 100,
                ..
            })
        ));
        assert!(matches!(
            channel.recv_timeout(std::time::Duration::from_millis(20)),
            Err(Error::Timeout { .. })
        ));
        // Another handle sends, so that (SPSC) the producer role is free for the helper below.
        let sender = ShmChannel::open(name.as_str()).unwrap();
        sender.send(b"").unwrap();
        sender.send(b"last").unwrap();
        while sender.try_send(b"fill").is_ok() {}
        assert!(matches!(
            sender.send_timeout(b"x", std::time::Duration::from_millis(20)),
            Err(Error::Timeout { .. })
        ));
        drop(sender);
        // A producer in another process blocked on the full ring is woken by the close.
        let mut producer = helper!("channel-send", name, 0, 0, 1, "copy");
        producer.expect("ready");
        channel.close();
        producer.expect("done");
        producer.finish_ok();
        assert!(matches!(
            channel.try_send(b"x"),
            Err(Error::QueueClosed { .. })
        ));
        assert_eq!(channel.recv().unwrap(), Some(Vec::new()));
        assert_eq!(channel.recv().unwrap().as_deref(), Some(&b"last"[..]));
        while channel.recv().unwrap().is_some() {}
        assert_eq!(channel.recv().unwrap(), None);
    }
}

#[test]
fn a_16_mib_message_goes_through_loans_in_another_process() {
    const MAX: usize = 16 << 20;
    let (name, _cleanup) = region("ch-16mib");
    let mut channel = create(&name, QueueMode::Spsc, 2 * (MAX + 8), MAX);
    // Messages 1 and 2 of producer 5: 1 is the largest (16 MiB), 2 some length below it.
    let mut producer = helper!("channel-send", name, 5, 1, 2, "loan");
    producer.expect("ready");
    for seq in 1..3 {
        let loan = channel.recv_loan().unwrap().expect("a message");
        assert!(*loan == channel_message(5, seq, MAX)[..], "message {seq}");
    }
    producer.expect("done");
    producer.finish_ok();
}

#[test]
fn a_channel_and_a_queue_do_not_open_each_other() {
    let (name, _cleanup) = region("ch-kind");
    drop(create(&name, QueueMode::Mpmc, 1024, 100));
    let as_queue = shmstore::ShmQueue::<u64, 136>::open(name.as_str());
    assert!(
        matches!(as_queue, Err(Error::LayoutMismatch { .. })),
        "{as_queue:?}"
    );
    let (queue, _queue) = region("ch-kind-queue");
    drop(shmstore::ShmQueue::<u64, 8>::create(queue.as_str()).unwrap());
    let as_channel = ShmChannel::open(queue.as_str());
    assert!(
        matches!(as_channel, Err(Error::LayoutMismatch { .. })),
        "{as_channel:?}"
    );
}

/// `has_other_producer`/`has_other_consumer` tell an SPSC channel's roles as a queue's do: a
/// producer that finds no consumer can start one (the `producer` example does).
#[test]
fn an_spsc_channel_tells_whether_the_other_role_is_held() {
    let place = shmstore_tests::Place::new(shmstore_tests::Backend::Posix, "chan-roles");
    let producer = shmstore::ShmChannel::options()
        .capacity(4096)
        .max_message(256)
        .queue_mode(shmstore::QueueMode::Spsc)
        .create(place.location().clone())
        .expect("create");
    assert_eq!(producer.has_other_consumer().expect("probe"), Some(false));
    producer.send(b"first").expect("send");
    let consumer = shmstore::ShmChannel::open(place.location().clone()).expect("open");
    assert_eq!(
        consumer.recv().expect("recv").as_deref(),
        Some(&b"first"[..])
    );
    assert_eq!(producer.has_other_consumer().expect("probe"), Some(true));
    assert_eq!(consumer.has_other_producer().expect("probe"), Some(true));
    assert_eq!(
        producer.has_other_producer().expect("probe"),
        Some(false),
        "its own role"
    );
    let mpmc_place = shmstore_tests::Place::new(shmstore_tests::Backend::Posix, "chan-roles-mpmc");
    let mpmc = shmstore::ShmChannel::options()
        .queue_mode(shmstore::QueueMode::Mpmc)
        .create(mpmc_place.location().clone())
        .expect("create");
    assert_eq!(mpmc.has_other_consumer().expect("probe"), None);
}
