//! Loans, batches and iteration of `ShmQueue` (issue 17) between real processes: producers
//! killed at random points while holding loans, hundreds of times, expose no torn element and
//! leak no slot; a consumer killed holding a loan leaves its element to the next; order
//! (SPSC) and multiset (MPMC) checks over loans and batches; a 16 MiB element through a queue;
//! and a model test of the new operations against a `VecDeque`.
//!
//! The queues the helper opens are `MsgQueue`s (`Msg`: producer, number, checksum), so that a
//! lost, duplicated, reordered or half-written element shows.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use shmstore::{Error, QueueMode, Shm, ShmQueue};
use shmstore_tests::{
    create_queue, frame_number, helper, Backend, Counter, FrameQueue, Msg, Place, TempDir,
    PATIENCE, QUEUE_CAPACITY,
};

const MODES: [QueueMode; 2] = [QueueMode::Spsc, QueueMode::Mpmc];

/// Kills per mode in the crash loop.
const KILL_ROUNDS: u64 = 200;

/// A small, seeded generator (SplitMix64): the crash loop prints its seed, and
/// `SHMSTORE_TEST_SEED=N` replays one.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn seed() -> u64 {
    let seed = std::env::var("SHMSTORE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.map_or(1, |d| d.as_nanos() as u64) ^ u64::from(std::process::id())
        });
    eprintln!("queue_loans: seed {seed} (replay with SHMSTORE_TEST_SEED={seed})");
    seed
}

/// Takes one element, checking that it is whole and that it is the next of its producer's
/// stream (`next` holds, per producer, the number expected next).
fn check_next(msg: &Msg, next: &mut HashMap<u64, u64>) {
    assert!(msg.is_intact(), "torn or damaged element {msg:?}");
    let expected = next.entry(msg.producer).or_insert(0);
    assert_eq!(
        msg.seq, *expected,
        "element {msg:?} out of its producer's order"
    );
    *expected += 1;
}

// ---- producers killed holding loans ----

/// Producer processes that write each element into a loan a word at a time (one round in
/// four: push batches with `push_slice`) are SIGKILLed at random moments (most of them with a
/// loan half written), `KILL_ROUNDS` times, while this process consumes: every element that
/// arrives is whole and in order, each producer's elements arrive without a gap, and
/// afterwards the queue still holds its full capacity (no slot was lost to a dead loan).
fn killed_loan_producers_expose_no_torn_element_and_leak_no_slot(mode: QueueMode) {
    let mut rng = Rng(seed());
    let place = Place::new(Backend::Posix, "loan-kill");
    let name = place.to_string();
    let q = create_queue(&place, mode);
    let phase_place = Place::new(Backend::Posix, "loan-kill-phase");
    let phase = Shm::create(phase_place.location(), Counter::at(0)).unwrap();
    let mut next = HashMap::new();
    let mut delivered = 0u64;
    let mut rounds_with_elements = 0u64;
    let mut killed_in_step = 0u64;
    for round in 0..KILL_ROUNDS {
        let producer = round + 1;
        *phase.lock().unwrap() = Counter::at(0);
        // Three rounds in four lend; the fourth pushes batches of 1 to 64.
        let how = match round % 4 {
            3 => format!("slice:{}", 1 + rng.next() % 64),
            _ => "loan".to_string(),
        };
        let mut child = helper!("queue-loan-forever", name, producer, phase_place, how);
        child.expect("started");
        // Once it holds its first loan (or begins its first batch), 0 to 3 ms more: a few dozen elements at most.
        // Or once it has filled the queue: a producer that ran while this thread was off the
        // CPU may fill it before this loop ever sees the flag, then wait for room between two
        // loans, with the flag down (it is up only while a loan is held).
        let started = Instant::now();
        while phase.read().count == 0 && q.len() < QUEUE_CAPACITY {
            assert!(
                started.elapsed() < PATIENCE,
                "the producer never took a loan"
            );
            std::hint::spin_loop();
        }
        let until = Instant::now() + Duration::from_micros(rng.next() % 3000);
        while Instant::now() < until {
            if let Some(msg) = q.try_pop().unwrap() {
                check_next(&msg, &mut next);
                delivered += 1;
            }
        }
        child.kill();
        killed_in_step += phase.read().count;
        // Whatever the dead producer published is still there, and nothing else.
        while !q.is_empty() {
            let msg = q.pop_timeout(PATIENCE).unwrap().expect("not closed");
            check_next(&msg, &mut next);
            delivered += 1;
        }
        rounds_with_elements += u64::from(next.contains_key(&producer));
    }
    eprintln!(
        "{mode:?}: {KILL_ROUNDS} producers killed, {killed_in_step} of them holding a loan or \
         in a batch push, \
         {rounds_with_elements} after publishing; {delivered} elements delivered whole and in \
         order"
    );
    // No slot leaked: this handle (taking the dead producer's role over, in SPSC mode) fills
    // the whole capacity, and not one more.
    let mut q = q;
    for seq in 0..QUEUE_CAPACITY as u64 {
        let mut loan = q.try_loan().unwrap();
        *loan = Msg::new(0, seq);
        loan.commit().unwrap();
    }
    assert!(matches!(q.try_loan(), Err(Error::QueueFull { .. })));
    let mut out = vec![Msg::new(9, 9); QUEUE_CAPACITY];
    assert_eq!(q.try_pop_into(&mut out).unwrap(), QUEUE_CAPACITY);
    for (seq, msg) in out.iter().enumerate() {
        assert_eq!(*msg, Msg::new(0, seq as u64));
    }
}

#[test]
fn spsc_killed_loan_producers_expose_no_torn_element_and_leak_no_slot() {
    killed_loan_producers_expose_no_torn_element_and_leak_no_slot(QueueMode::Spsc);
}

#[test]
fn mpmc_killed_loan_producers_expose_no_torn_element_and_leak_no_slot() {
    killed_loan_producers_expose_no_torn_element_and_leak_no_slot(QueueMode::Mpmc);
}

/// A consumer killed while it holds a loan of the front element removed nothing: the next
/// consumer receives that element (at-least-once for a killed consumer), then the rest.
#[test]
fn a_consumer_killed_holding_a_pop_loan_leaves_the_element_to_the_next() {
    for mode in MODES {
        let place = Place::new(Backend::Posix, "loan-consumer-kill");
        let name = place.to_string();
        let q = create_queue(&place, mode);
        q.push_slice(&[Msg::new(5, 0), Msg::new(5, 1)]).unwrap();
        let mut child = helper!("queue-pop-loan-hold", name);
        child.expect("holding 5 0");
        child.kill();
        let mut next = HashMap::new();
        for msg in q.drain() {
            check_next(&msg.unwrap(), &mut next);
        }
        assert_eq!(next[&5], 2, "{mode:?}: both elements, the lent one first");
    }
}

// ---- order and multiset across processes ----

/// The `PRODUCER SEQ` lines a consumer wrote.
fn read_lines(path: &std::path::Path) -> Vec<(u64, u64)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            let (p, s) = line.split_once(' ').unwrap();
            (p.parse().unwrap(), s.parse().unwrap())
        })
        .collect()
}

/// SPSC: each producer way (loans, slices smaller and larger than the capacity) with each
/// consumer way (`pop_into`, loans, `for x in &queue`) moves a stream of elements between two
/// processes whole and in order.
#[test]
fn spsc_loans_and_batches_between_processes_keep_order() {
    const COUNT: u64 = 20_000;
    let dir = TempDir::new("loan-order");
    for (produce, consume) in [
        ("loan", "pop-into:7"),
        ("slice:13", "pop-loan"),
        ("slice:300", "iter"),
        ("loan", "pop-loan"),
        ("slice:64", "pop-into:1000"),
    ] {
        let place = Place::new(Backend::Posix, "loan-order");
        let name = place.to_string();
        let _q = create_queue(&place, QueueMode::Spsc);
        let file = dir.join(&format!("{produce}-{consume}"));
        let mut consumer = helper!("queue-consume", name, file.display(), consume);
        consumer.expect("consuming");
        let producer = helper!("queue-produce", name, 1, 0, COUNT, produce, "close");
        assert_eq!(
            producer.finish_ok(),
            [
                "pushing".to_string(),
                format!("pushed {COUNT}"),
                "closed".into()
            ]
        );
        consumer.expect(&format!("got {COUNT}"));
        let got = read_lines(&file);
        let want: Vec<(u64, u64)> = (0..COUNT).map(|s| (1, s)).collect();
        assert!(
            got == want,
            "{produce} → {consume}: out of order or incomplete"
        );
    }
}

/// MPMC: two producers (loans, slices) and three consumers (`pop_into`, loans, iteration) in
/// five processes: every element arrives exactly once, whole, and each consumer receives each
/// producer's elements in increasing order.
#[test]
fn mpmc_loans_and_batches_lose_and_duplicate_nothing() {
    const COUNT: u64 = 10_000;
    let dir = TempDir::new("loan-mpmc");
    let place = Place::new(Backend::Posix, "loan-mpmc");
    let name = place.to_string();
    let q = create_queue(&place, QueueMode::Mpmc);
    let consumers: Vec<_> = ["pop-into:9", "pop-loan", "iter"]
        .iter()
        .map(|how| {
            let file = dir.join(how);
            let mut child = helper!("queue-consume", name, file.display(), how);
            child.expect("consuming");
            (child, file)
        })
        .collect();
    let producers = [
        helper!("queue-produce", name, 1, 0, COUNT, "loan"),
        helper!("queue-produce", name, 2, 0, COUNT, "slice:17"),
    ];
    for producer in producers {
        assert_eq!(
            producer.finish_ok(),
            ["pushing".to_string(), format!("pushed {COUNT}")]
        );
    }
    q.close();
    let mut seen = HashMap::<(u64, u64), u32>::new();
    for (mut child, file) in consumers {
        let got = child.line();
        assert!(got.starts_with("got "), "{got}");
        let mut last = HashMap::<u64, u64>::new();
        for (p, s) in read_lines(&file) {
            if let Some(before) = last.insert(p, s) {
                assert!(
                    s > before,
                    "({p}, {s}) after ({p}, {before}) in one consumer"
                );
            }
            *seen.entry((p, s)).or_default() += 1;
        }
    }
    assert_eq!(seen.len() as u64, 2 * COUNT, "elements lost");
    assert!(seen.values().all(|&n| n == 1), "elements duplicated");
}

// ---- a 16 MiB element ----

/// A 16 MiB element (which `push` by value cannot even pass: it overflows the stack) goes
/// from another process to this one by loan, written and read in place, in both modes.
#[test]
fn a_16_mib_element_goes_through_a_queue_by_loan() {
    for mode in MODES {
        let place = Place::new(Backend::Posix, "loan-frame");
        let mut q = FrameQueue::options()
            .queue_mode(mode)
            .create(place.location())
            .unwrap();
        assert_eq!(
            helper!("frame-loan-push", place.to_string(), 7, 2).finish_ok(),
            ["pushed 2"]
        );
        for seq in [7, 8] {
            let frame = q.pop_loan_timeout(PATIENCE).unwrap().expect("a frame");
            assert_eq!(frame_number(&frame), Some(seq), "{mode:?}: frame {seq}");
        }
        assert!(q.is_empty());
    }
}

// ---- behaviour in one process ----

/// A loan dropped uncommitted publishes nothing, also when its thread panics; one committed
/// after the queue was closed is refused and never visible; a loan of a reused slot starts
/// zeroed.
#[test]
fn uncommitted_and_late_loans_publish_nothing() {
    for mode in MODES {
        let place = Place::new(Backend::Posix, "loan-drop");
        let mut q = ShmQueue::<[u64; 4], 2>::options()
            .queue_mode(mode)
            .create(place.location())
            .unwrap();
        q.push([9; 4]).unwrap();
        assert_eq!(q.pop().unwrap(), Some([9; 4]));
        {
            let mut loan = q.loan().unwrap();
            assert_eq!(*loan, [0; 4], "a loan starts zeroed");
            *loan = [1; 4];
        }
        assert!(q.is_empty());
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut loan = q.loan().unwrap();
            *loan = [2; 4];
            panic!("the producer fails mid-write");
        }));
        assert!(panicked.is_err());
        assert!(q.is_empty());
        let mut loan = q.loan().unwrap();
        *loan = [3; 4];
        // Closing from another handle while the MPMC loan holds the lock: `close` takes no lock.
        let closer = ShmQueue::<[u64; 4], 2>::open(place.location()).unwrap();
        closer.close();
        assert!(matches!(loan.commit(), Err(Error::QueueClosed { .. })));
        assert!(q.is_empty());
        assert!(matches!(
            q.push_slice(&[[4; 4]]),
            Err(Error::QueueClosed { .. })
        ));
        assert_eq!(q.pop_loan().unwrap().map(|l| *l), None);
    }
}

/// `for x in &queue` blocks until the queue is closed, taking every element pushed meanwhile
/// by another process, then ends.
#[test]
fn iteration_blocks_until_the_queue_is_closed() {
    for mode in MODES {
        let place = Place::new(Backend::Posix, "loan-iter");
        let q = create_queue(&place, mode);
        let producer = helper!(
            "queue-produce",
            place.to_string(),
            3,
            0,
            1000,
            "slice:10",
            "close"
        );
        let mut next = HashMap::new();
        for msg in &q {
            check_next(&msg.unwrap(), &mut next);
        }
        assert_eq!(next[&3], 1000);
        producer.finish_ok();
    }
}

// ---- model ----

#[derive(Debug, Clone)]
enum Op {
    TryPush(u64),
    TryPop,
    TryPushSlice(Vec<u64>),
    TryPopInto(usize),
    Loan { value: u64, commit: bool },
    PopLoan { keep: bool },
    Drain,
    Close,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u64>().prop_map(Op::TryPush),
        4 => Just(Op::TryPop),
        4 => proptest::collection::vec(any::<u64>(), 0..12).prop_map(Op::TryPushSlice),
        4 => (0usize..12).prop_map(Op::TryPopInto),
        4 => (any::<u64>(), any::<bool>()).prop_map(|(value, commit)| Op::Loan { value, commit }),
        4 => any::<bool>().prop_map(|keep| Op::PopLoan { keep }),
        4 => Just(Op::Drain),
        1 => Just(Op::Close),
    ]
}

const MODEL_CAP: usize = 8;

fn run_model(mode: QueueMode, ops: &[Op]) {
    let place = Place::new(Backend::Posix, "loan-model");
    let mut q = ShmQueue::<u64, MODEL_CAP>::options()
        .queue_mode(mode)
        .create(place.location())
        .unwrap();
    let mut model = VecDeque::new();
    let mut closed = false;
    for op in ops {
        match op {
            Op::TryPush(v) => match q.try_push(*v) {
                Ok(()) => model.push_back(*v),
                Err(Error::QueueClosed { .. }) => assert!(closed),
                Err(Error::QueueFull { .. }) => assert_eq!(model.len(), MODEL_CAP),
                Err(e) => panic!("{e}"),
            },
            Op::TryPop => assert_eq!(q.try_pop().unwrap(), model.pop_front()),
            Op::TryPushSlice(values) => match q.try_push_slice(values) {
                Ok(pushed) => {
                    let room = MODEL_CAP - model.len();
                    assert!(!closed || values.is_empty());
                    assert_eq!(pushed, values.len().min(room));
                    model.extend(&values[..pushed]);
                }
                Err(Error::QueueClosed { .. }) => assert!(closed),
                Err(e) => panic!("{e}"),
            },
            Op::TryPopInto(n) => {
                let mut out = vec![0; *n];
                let popped = q.try_pop_into(&mut out).unwrap();
                assert_eq!(popped, (*n).min(model.len()));
                let want: Vec<u64> = model.drain(..popped).collect();
                assert_eq!(out[..popped], want[..]);
            }
            Op::Loan { value, commit } => match q.try_loan() {
                Ok(mut loan) => {
                    assert!(!closed);
                    assert_eq!(*loan, 0);
                    *loan = *value;
                    if *commit {
                        loan.commit().unwrap();
                        model.push_back(*value);
                    }
                }
                Err(Error::QueueClosed { .. }) => assert!(closed),
                Err(Error::QueueFull { .. }) => assert_eq!(model.len(), MODEL_CAP),
                Err(e) => panic!("{e}"),
            },
            Op::PopLoan { keep } => match q.try_pop_loan().unwrap() {
                Some(loan) => {
                    assert_eq!(Some(&*loan), model.front());
                    if *keep {
                        loan.keep();
                    } else {
                        loan.release();
                        model.pop_front();
                    }
                }
                None => assert!(model.is_empty()),
            },
            Op::Drain => {
                let drained: Vec<u64> = q.drain().map(Result::unwrap).collect();
                assert_eq!(drained, model.drain(..).collect::<Vec<_>>());
            }
            Op::Close => {
                q.close();
                closed = true;
            }
        }
        assert_eq!(q.len(), model.len());
        assert_eq!(q.is_closed(), closed);
    }
    if closed {
        let mut out = [0; MODEL_CAP];
        assert_eq!(q.pop_into(&mut out).unwrap(), model.len());
        assert_eq!(q.pop_into(&mut out).unwrap(), 0, "closed and empty");
        assert_eq!(q.iter().count(), 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Loans (committed or dropped, released or kept), slices, `pop_into` and `drain` against
    /// a `VecDeque` of the same capacity, in both modes.
    #[test]
    fn loans_and_batches_behave_like_a_bounded_deque(ops in proptest::collection::vec(op(), 1..60)) {
        for mode in MODES {
            run_model(mode, &ops);
        }
    }
}
