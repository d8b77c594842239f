//! `ShmQueue` and `ShmChannel` against a pipe and a Unix stream socket between two processes
//! (DESIGN §11), measured in one run: `cargo bench -p shmstore --bench queue`.
//!
//! The bench process is pinned to CPU 0; its peer is a helper process (this binary re-executed
//! with a role, pinned to CPU 1). A pipe or socket is handed to the helper as its standard
//! input or output, so a helper that dies shows up as end-of-file instead of a hang.
//!
//! - Throughput, 64 B and 4 KiB messages: the helper produces numbered messages back to back
//!   (`push`, or one `write` per message); the bench process consumes `iters` of them (`pop`,
//!   or one `read_exact` per message), checks their order and is timed from the first to the
//!   last. Queues: SPSC (and MPMC for 64 B) with 256 KiB of slots, consumed with the blocking
//!   `pop` and (SPSC) with `try_pop` in a busy loop; pipe and socket with their default
//!   buffers; and the bound of this machine: a textbook SPSC ring in raw shared memory (two
//!   counters on their own cache lines, release/acquire, `memcpy` in and out, busy-polling,
//!   no wake-ups, no crash safety), with as many bytes of slots.
//! - The same rows in the shapes meant for speed. 64 B in batches: the helper pushes `BATCH`
//!   (32) messages per `push_slice`, the bench process takes up to 32 per `pop_into`
//!   (blocking) or `try_pop_into` (busy loop), still counting and checking every message.
//!   4 KiB through loans: the helper `loan`s a slot, writes the whole message in place (its
//!   number into every 8-byte word) and commits; the bench process `pop_loan`s (or
//!   `try_pop_loan`s in a busy loop), reads every word in place (checking each against the
//!   number) and drops the loan, which frees the slot; the baseline is the textbook ring doing
//!   the same writes and reads in its slots (no `memcpy`).
//! - `ShmChannel` (SPSC, 256 KiB of ring, largest message 1 500 B), 64 B and 1 500 B
//!   messages: `send` from a buffer and `recv_into` a buffer, then loans (`send_loan`, the
//!   message written word by word in place, `commit`; `recv_loan`, every word read in place).
//!   Baselines: the 64 B pipe and socket rows above, and a pipe and a socket carrying 1 500 B
//!   messages in the 1 500 B group.
//! - Instructions per element, for an instruction counter (deterministic, unlike the times on
//!   a shared machine): `SHMSTORE_BENCH_COUNT=WHAT:N` (`spsc64`, `spsc4k` or `mpmc64`) runs no
//!   benchmark but pushes `N` elements through a queue and pops them, in batches of
//!   `COUNT_BATCH`, in this one process (a producer handle and a consumer handle); `batch64`
//!   does the same with one `push_slice` and one `pop_into` per batch, `loan4k` with a loan
//!   per element, written and read in place as in the throughput rows; `channel64`,
//!   `channel1500`, `channel-loan64` and `channel-loan1500` send and receive through an SPSC
//!   `ShmChannel` as its throughput rows do. Run it twice
//!   under callgrind with two `N` and divide the difference of the totals by the difference of
//!   the `N`:
//!
//!   ```text
//!   SHMSTORE_BENCH_COUNT=spsc64:100000 valgrind --tool=callgrind \
//!       --callgrind-out-file=/dev/null target/release/deps/queue-HASH
//!   ```
//! - Round trip, busy-polling echo: the bench process sends a `u64` and spins until it comes
//!   back; the helper spins on `try_pop` and pushes it back on a second queue. Baselines: a
//!   pipe ping-pong with both ends spinning on non-blocking reads, the same with blocking
//!   reads, and the floor of any shared-memory transport: two processes bouncing a counter
//!   through two cache lines. Also the queue's blocking `pop`/`push` back to back.
//! - Round trip, sleeping echo: the same after a pause of `GAP` (the echo's `pop` spins ~20 µs,
//!   so it is asleep in the futex), against a pipe ping-pong with the same pause; only the
//!   round trips are timed. Then `TIMED_SLEEPING` of each, interleaved, as distributions.
//!
//! Each figure is also kept as the median of criterion's samples (robust against the samples a
//! noisy machine spoils), and a summary of the ratios against the targets is printed at the end.
//! On a virtual machine the two CPUs may sit close together or far apart in the host, and that
//! can change between runs: the "raw cache-line ping-pong" figure says which case a run met.

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{
    bench_name, helper_role, pin_to_cpu, spin_until, Helper, Percentiles, RawShm, Regions,
};
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::unistd::pipe2;
use shmstore::{Error, QueueMode, ShmChannel, ShmQueue};

/// Slots of the 64-byte queue: 256 KiB.
const SMALL_CAP: usize = 4096;
/// Slots of the 4 KiB queue: 256 KiB.
const PAGE_CAP: usize = 64;
/// Elements per `push_slice` and `pop_into` in the batched 64-byte rows.
const BATCH: usize = 32;
/// Ring bytes of the byte channels: 256 KiB, as the queues' slots.
const CHANNEL_CAP: usize = 256 * 1024;
/// The larger channel message: an Ethernet frame's payload.
const FRAME: usize = 1500;

/// Slots of the round-trip queues (one message is in flight at a time).
const PING_CAP: usize = 16;

type PingQueue = ShmQueue<u64, PING_CAP>;

/// How long the bench process waits after each answer before the next message, in the
/// sleeping case: well past the ~20 µs a blocked `pop` spins before it sleeps.
const GAP: Duration = Duration::from_micros(200);
/// A helper that does not answer within this has died: fail instead of hanging.
const PATIENCE: Duration = Duration::from_secs(10);
/// Round trips of each kind measured for the printed sleeping distributions.
const TIMED_SLEEPING: usize = 2_000;
/// Criterion's samples per benchmark (the summary takes the median of the last this many).
const SAMPLES: usize = 10;

// Keys of the figures kept for the summary.
const TP64_SPSC: &str = "tp64 spsc";
const TP64_SPSC_POLL: &str = "tp64 spsc poll";
const TP64_MPMC: &str = "tp64 mpmc";
const TP64_PIPE: &str = "tp64 pipe";
const TP64_RAW: &str = "tp64 raw ring";
const TP64_SOCKET: &str = "tp64 socket";
const TP4K_SPSC: &str = "tp4k spsc";
const TP4K_SPSC_POLL: &str = "tp4k spsc poll";
const TP4K_PIPE: &str = "tp4k pipe";
const TP4K_RAW: &str = "tp4k raw ring";
const TP4K_SOCKET: &str = "tp4k socket";
const TP64_BATCH: &str = "tp64 spsc batch";
const TP64_BATCH_POLL: &str = "tp64 spsc batch poll";
const TP4K_LOAN: &str = "tp4k spsc loan";
const TP4K_LOAN_POLL: &str = "tp4k spsc loan poll";
const TP4K_RAW_IN_PLACE: &str = "tp4k raw ring in place";
const CH64_COPY: &str = "ch64 copy";
const CH64_LOAN: &str = "ch64 loan";
const CH1500_COPY: &str = "ch1500 copy";
const CH1500_LOAN: &str = "ch1500 loan";
const TP1500_PIPE: &str = "tp1500 pipe";
const TP1500_SOCKET: &str = "tp1500 socket";
const RT_SPIN_QUEUE: &str = "rt spin queue";
const RT_SPIN_ATOMIC: &str = "rt spin atomic";
const RT_BLOCK_QUEUE: &str = "rt block queue";
const RT_PIPE: &str = "rt pipe";
const RT_PIPE_SPIN: &str = "rt pipe spin";
const RT_SLEEP_QUEUE: &str = "rt sleep queue";
const RT_SLEEP_PIPE: &str = "rt sleep pipe";

/// Writes message number `seq` into its first 8 bytes.
#[inline]
fn stamp<const S: usize>(msg: &mut [u8; S], seq: u64) {
    msg[..8].copy_from_slice(&seq.to_le_bytes());
}

/// The number of a message.
#[inline]
fn seq_of(msg: &[u8]) -> u64 {
    u64::from_le_bytes(msg[..8].try_into().expect("8 bytes"))
}

/// Writes message number `seq` over the whole of `msg`, in place: into every 8-byte word (and
/// its low bytes into a shorter last word), so that the message is written end to end.
#[inline]
fn fill(msg: &mut [u8], seq: u64) {
    let word = seq.to_le_bytes();
    let mut words = msg.chunks_exact_mut(8);
    for w in &mut words {
        w.copy_from_slice(&word);
    }
    let rest = words.into_remainder();
    let len = rest.len();
    rest.copy_from_slice(&word[..len]);
}

/// The number of a message written by `fill`, read in place: every word is folded into a
/// check, so the whole message is read, and a message not written end to end with one number
/// (torn, or overwritten under the reader) fails.
#[inline]
fn checked_seq_of(msg: &[u8]) -> u64 {
    let seq = seq_of(msg);
    let mut words = msg.chunks_exact(8);
    let mut diff = 0u64;
    for w in &mut words {
        diff |= u64::from_le_bytes(w.try_into().expect("8 bytes")) ^ seq;
    }
    let rest = words.remainder();
    let mismatch = rest != &seq.to_le_bytes()[..rest.len()];
    assert!(
        std::hint::black_box(diff) == 0 && !mismatch,
        "message {seq} not written end to end"
    );
    seq
}

/// A helper's standard input or output as a `File` (unbuffered: one system call per message).
fn stdio_file(fd: impl AsFd) -> File {
    File::from(fd.as_fd().try_clone_to_owned().expect("dup stdio"))
}

/// Spins until `ready` returns something; panics after `PATIENCE` (the helper died).
#[inline]
fn spin_for<R>(mut ready: impl FnMut() -> Option<R>) -> R {
    let mut spins = 0u32;
    let mut since = None;
    loop {
        if let Some(r) = ready() {
            return r;
        }
        spins = spins.wrapping_add(1);
        if spins % 65_536 == 0 && since.get_or_insert_with(Instant::now).elapsed() > PATIENCE {
            panic!("no answer within {PATIENCE:?}: did the helper process die?");
        }
        std::hint::spin_loop();
    }
}

/// The figures of this run, for the summary: per benchmark, `(iters, time)` of every call of
/// the measured routine (warm-up first, then criterion's samples).
#[derive(Default)]
struct Figures(RefCell<BTreeMap<&'static str, Vec<(u64, Duration)>>>);

impl Figures {
    fn record(&self, key: &'static str, iters: u64, time: Duration) -> Duration {
        self.0
            .borrow_mut()
            .entry(key)
            .or_default()
            .push((iters, time));
        time
    }

    /// The median time per iteration of the last `SAMPLES` calls (criterion's samples), in
    /// nanoseconds; `None` if the benchmark did not run or ran in test mode.
    fn ns(&self, key: &str) -> Option<f64> {
        let map = self.0.borrow();
        let calls = map.get(key)?;
        if calls.len() < SAMPLES || calls.iter().rev().take(SAMPLES).any(|&(i, _)| i < 2) {
            return None;
        }
        let mut per: Vec<f64> = calls[calls.len() - SAMPLES..]
            .iter()
            .map(|&(iters, time)| time.as_nanos() as f64 / iters as f64)
            .collect();
        per.sort_by(f64::total_cmp);
        Some((per[SAMPLES / 2 - 1] + per[SAMPLES / 2]) / 2.0)
    }
}

// ---------------------------------------------------------------------------------------------
// Throughput

/// Where the bench process receives numbered messages from.
trait Source {
    /// The next message's number.
    fn recv(&mut self) -> u64;
}

impl<const S: usize, const CAP: usize> Source for ShmQueue<[u8; S], CAP> {
    #[inline]
    fn recv(&mut self) -> u64 {
        let msg = self.pop().expect("pop").expect("queue closed");
        seq_of(&msg)
    }
}

/// A queue consumed with `try_pop` in a busy loop (never sleeping).
struct Polling<Q>(Q);

impl<const S: usize, const CAP: usize> Source for Polling<ShmQueue<[u8; S], CAP>> {
    #[inline]
    fn recv(&mut self) -> u64 {
        let msg = spin_for(|| self.0.try_pop().expect("try_pop"));
        seq_of(&msg)
    }
}

/// A queue consumed `BATCH` elements at a time: `pop_into` (blocking), or with `POLL`
/// `try_pop_into` in a busy loop; `recv` hands out the batch's elements one by one.
struct Batches<const POLL: bool> {
    queue: ShmQueue<[u8; 64], SMALL_CAP>,
    buf: Box<[[u8; 64]; BATCH]>,
    len: usize,
    at: usize,
}

impl<const POLL: bool> Batches<POLL> {
    fn new(queue: ShmQueue<[u8; 64], SMALL_CAP>) -> Self {
        Batches {
            queue,
            buf: Box::new([[0; 64]; BATCH]),
            len: 0,
            at: 0,
        }
    }
}

impl<const POLL: bool> Source for Batches<POLL> {
    #[inline]
    fn recv(&mut self) -> u64 {
        if self.at == self.len {
            let (queue, buf) = (&self.queue, &mut self.buf[..]);
            self.len = if POLL {
                spin_for(|| {
                    let n = queue.try_pop_into(buf).expect("try_pop_into");
                    (n > 0).then_some(n)
                })
            } else {
                queue.pop_into(buf).expect("pop_into")
            };
            assert!(self.len > 0, "queue closed");
            self.at = 0;
        }
        self.at += 1;
        seq_of(&self.buf[self.at - 1])
    }
}

/// A 4 KiB queue read through loans, in place: `pop_loan` (blocking), or with `POLL`
/// `try_pop_loan` in a busy loop. Every word is read (`checked_seq_of`), then the loan is
/// dropped, which releases the slot.
struct Loans<const POLL: bool>(ShmQueue<[u8; 4096], PAGE_CAP>);

impl<const POLL: bool> Source for Loans<POLL> {
    #[inline]
    fn recv(&mut self) -> u64 {
        if !POLL {
            let msg = self.0.pop_loan().expect("pop_loan").expect("queue closed");
            return checked_seq_of(&msg[..]);
        }
        // As `spin_for`, which cannot hand out a loan that borrows the queue.
        let mut spins = 0u32;
        let mut since = None;
        loop {
            if let Some(msg) = self.0.try_pop_loan().expect("try_pop_loan") {
                return checked_seq_of(&msg[..]);
            }
            spins = spins.wrapping_add(1);
            if spins % 65_536 == 0 && since.get_or_insert_with(Instant::now).elapsed() > PATIENCE {
                panic!("no answer within {PATIENCE:?}: did the helper process die?");
            }
            std::hint::spin_loop();
        }
    }
}

/// A byte channel: `recv_into` a buffer (the message copied out), or with `LOAN` `recv_loan`
/// (read in place, every word, as `Loans`).
struct ChannelSource<const LOAN: bool> {
    channel: ShmChannel,
    buf: Vec<u8>,
}

impl<const LOAN: bool> Source for ChannelSource<LOAN> {
    #[inline]
    fn recv(&mut self) -> u64 {
        if LOAN {
            let msg = self
                .channel
                .recv_loan()
                .expect("recv_loan")
                .expect("channel closed");
            return checked_seq_of(&msg);
        }
        assert!(
            self.channel.recv_into(&mut self.buf).expect("recv_into"),
            "channel closed"
        );
        seq_of(&self.buf)
    }
}

/// A pipe or socket, one `read_exact` of `S` bytes per message.
struct FdSource<const S: usize> {
    file: File,
    buf: Box<[u8; S]>,
}

impl<const S: usize> FdSource<S> {
    fn new(fd: OwnedFd) -> Self {
        FdSource {
            file: File::from(fd),
            buf: Box::new([0; S]),
        }
    }
}

impl<const S: usize> Source for FdSource<S> {
    #[inline]
    fn recv(&mut self) -> u64 {
        self.file
            .read_exact(&mut self.buf[..])
            .expect("read (did the helper process die?)");
        seq_of(&self.buf[..])
    }
}

/// Receives one message, then times `iters` more, checking that none is lost or reordered.
fn drain(src: &mut impl Source, next: &mut u64, iters: u64) -> Duration {
    let mut check = |got: u64| {
        assert_eq!(got, *next, "message lost or reordered");
        *next += 1;
    };
    check(src.recv());
    let start = Instant::now();
    for _ in 0..iters {
        check(src.recv());
    }
    start.elapsed()
}

/// Helper role `produce-queue-*` (argument: the queue): pushes numbered messages until the
/// queue is closed.
fn produce_queue<const S: usize, const CAP: usize>(name: &str) {
    let q = ShmQueue::<[u8; S], CAP>::open(name).expect("producer: open");
    let mut msg = [0u8; S];
    for seq in 0u64.. {
        stamp(&mut msg, seq);
        match q.push(msg) {
            Ok(()) => {}
            Err(Error::QueueClosed { .. }) => return,
            Err(e) => panic!("producer: {e}"),
        }
    }
}

/// Helper role `produce-batch-64` (argument: the queue): pushes numbered messages `BATCH` at
/// a time with `push_slice`, until the queue is closed.
fn produce_batches(name: &str) {
    let q = ShmQueue::<[u8; 64], SMALL_CAP>::open(name).expect("producer: open");
    let mut batch = [[0u8; 64]; BATCH];
    for first in (0u64..).step_by(BATCH) {
        for (seq, msg) in (first..).zip(batch.iter_mut()) {
            stamp(msg, seq);
        }
        match q.push_slice(&batch) {
            Ok(()) => {}
            Err(Error::QueueClosed { .. }) => return,
            Err(e) => panic!("producer: {e}"),
        }
    }
}

/// Helper role `produce-loan-4k` (argument: the queue): writes numbered 4 KiB messages in place
/// through loans (`fill`: every word), committing each, until the queue is closed.
fn produce_loans(name: &str) {
    let mut q = ShmQueue::<[u8; 4096], PAGE_CAP>::open(name).expect("producer: open");
    for seq in 0u64.. {
        let mut slot = match q.loan() {
            Ok(slot) => slot,
            Err(Error::QueueClosed { .. }) => return,
            Err(e) => panic!("producer: {e}"),
        };
        fill(&mut slot[..], seq);
        match slot.commit() {
            Ok(()) => {}
            Err(Error::QueueClosed { .. }) => return,
            Err(e) => panic!("producer: {e}"),
        }
    }
}

/// Helper roles `produce-channel-*` (argument: the channel): sends numbered messages of `S`
/// bytes, by copy from a buffer (`send`), or with `LOAN` written in place (`send_loan`,
/// `fill`, `commit`), until the channel is closed.
fn produce_channel<const S: usize, const LOAN: bool>(name: &str) {
    let mut ch = ShmChannel::open(name).expect("producer: open");
    let mut msg = [0u8; S];
    for seq in 0u64.. {
        let sent = if LOAN {
            match ch.send_loan(S) {
                Ok(mut loan) => {
                    fill(&mut loan, seq);
                    loan.commit()
                }
                Err(e) => Err(e),
            }
        } else {
            stamp(&mut msg, seq);
            ch.send(&msg)
        };
        match sent {
            Ok(()) => {}
            Err(Error::QueueClosed { .. }) => return,
            Err(e) => panic!("producer: {e}"),
        }
    }
}

/// Helper role `produce-fd-*`: writes numbered messages to its standard output (a pipe or a
/// socket), one `write` each, until the reader goes away.
fn produce_fd<const S: usize>() {
    let mut out = stdio_file(std::io::stdout());
    let mut msg = [0u8; S];
    for seq in 0u64.. {
        stamp(&mut msg, seq);
        if out.write_all(&msg).is_err() {
            return;
        }
    }
}

type Group<'a> = BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// One throughput benchmark: consume from `src` while `_helper` produces.
fn bench_source(
    g: &mut Group<'_>,
    figs: &Figures,
    key: &'static str,
    label: &str,
    mut src: impl Source,
    _helper: Helper,
) {
    let mut next = 0;
    g.bench_function(label, |b| {
        b.iter_custom(|iters| figs.record(key, iters, drain(&mut src, &mut next, iters)))
    });
}

/// The queue, pipe and socket throughput benchmarks for messages of `S` bytes.
/// The textbook ring in raw shared memory (module docs): `head` and `tail` on their own cache
/// lines, then `CAP` slots of `S` bytes.
#[repr(C)]
struct RawRing<const S: usize, const CAP: usize> {
    head: Line,
    tail: Line,
    slots: [[u8; S]; CAP],
}

impl<const S: usize, const CAP: usize> RawRing<S, CAP> {
    const LEN: usize = std::mem::size_of::<Self>();

    /// The ring in `shm` (a mapping of `LEN` bytes, zero-filled at creation).
    fn at(shm: &RawShm) -> &Self {
        // SAFETY: the mapping is `LEN` bytes, page-aligned, zero-filled at creation (a valid
        // ring: zero counters, any slot bytes); the counters are atomics and the slots are
        // only reached through raw pointers (`slot`), so sharing through `&` is sound; the
        // reference is tied to `shm`.
        unsafe { &*shm.ptr().cast::<Self>() }
    }

    fn slot(&self, seq: u64) -> *mut u8 {
        std::ptr::addr_of!(self.slots[(seq % CAP as u64) as usize])
            .cast_mut()
            .cast()
    }
}

/// The bench process's end of a raw ring: busy-polls `tail`, copies the slot out (or, with
/// `IN_PLACE`, reads every word of it in place, as `Loans`), frees it.
struct RawSource<const S: usize, const CAP: usize, const IN_PLACE: bool> {
    shm: RawShm,
    next: u64,
    seen_tail: u64,
}

impl<const S: usize, const CAP: usize, const IN_PLACE: bool> RawSource<S, CAP, IN_PLACE> {
    fn new(shm: RawShm) -> Self {
        RawSource {
            shm,
            next: 0,
            seen_tail: 0,
        }
    }
}

impl<const S: usize, const CAP: usize, const IN_PLACE: bool> Source
    for RawSource<S, CAP, IN_PLACE>
{
    #[inline]
    fn recv(&mut self) -> u64 {
        let ring = RawRing::<S, CAP>::at(&self.shm);
        if self.next == self.seen_tail {
            self.seen_tail = spin_for(|| {
                let tail = ring.tail.0.load(Ordering::Acquire);
                (tail != self.next).then_some(tail)
            });
        }
        let seq = if IN_PLACE {
            // SAFETY: `next < tail` (acquired): the producer wrote the slot before it released
            // `tail` and does not write it again until `head` passes it, after this borrow.
            let msg = unsafe { std::slice::from_raw_parts(ring.slot(self.next), S) };
            checked_seq_of(msg)
        } else {
            let mut msg = [0u8; S];
            // SAFETY: as above; `msg` is ours.
            unsafe { std::ptr::copy_nonoverlapping(ring.slot(self.next), msg.as_mut_ptr(), S) };
            // As if the whole message were used: otherwise the compiler copies only the 8
            // bytes read, and the ring would not move the rest between the CPUs at all.
            seq_of(std::hint::black_box(&msg))
        };
        self.next += 1;
        ring.head.0.store(self.next, Ordering::Release);
        seq
    }
}

/// Helper role `produce-raw-*` (argument: the raw object): fills the raw ring with numbered
/// messages, copied in (or, with `IN_PLACE`, written in place word by word, as the loans are),
/// busy-polling `head` when it is full, until killed.
fn produce_raw<const S: usize, const CAP: usize, const IN_PLACE: bool>(name: &str) {
    let shm = RawShm::open(name, RawRing::<S, CAP>::LEN);
    let ring = RawRing::<S, CAP>::at(&shm);
    let mut msg = [0u8; S];
    let mut seen_head = 0;
    for seq in 0u64.. {
        if !IN_PLACE {
            stamp(&mut msg, seq);
        }
        while seq - seen_head >= CAP as u64 {
            seen_head = ring.head.0.load(Ordering::Acquire);
            std::hint::spin_loop();
        }
        if IN_PLACE {
            // SAFETY: `seq - head < CAP`: the consumer is done with the slot and does not read
            // it before `tail` passes it; only this process writes slots.
            fill(
                unsafe { std::slice::from_raw_parts_mut(ring.slot(seq), S) },
                seq,
            );
        } else {
            // SAFETY: as above; a local array never overlaps the mapping.
            unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), ring.slot(seq), S) };
        }
        ring.tail.0.store(seq + 1, Ordering::Release);
    }
}

/// The keys `throughput` records under (an empty key skips that benchmark).
struct Keys {
    spsc: &'static str,
    spsc_poll: &'static str,
    mpmc: &'static str,
    pipe: &'static str,
    socket: &'static str,
    raw: &'static str,
}

/// The queue, pipe and socket throughput benchmarks for messages of `S` bytes.
fn throughput<const S: usize, const CAP: usize>(g: &mut Group<'_>, figs: &Figures, keys: Keys) {
    let size = if S == 64 { "64" } else { "4k" };
    let role = format!("produce-queue-{size}");
    let runs = [
        (QueueMode::Spsc, false, keys.spsc, "ShmQueue Spsc, pop"),
        (
            QueueMode::Spsc,
            true,
            keys.spsc_poll,
            "ShmQueue Spsc, try_pop spin",
        ),
        (QueueMode::Mpmc, false, keys.mpmc, "ShmQueue Mpmc, pop"),
    ];
    for (mode, poll, key, label) in runs.into_iter().filter(|run| !run.2.is_empty()) {
        let names = Regions(vec![bench_name(&format!("queue-tp{size}"))]);
        let q = ShmQueue::<[u8; S], CAP>::options()
            .queue_mode(mode)
            .create(&names.0[0])
            .expect("create");
        let helper = Helper::spawn(&role, &names.0[0]);
        if poll {
            bench_source(g, figs, key, label, Polling(q), helper);
        } else {
            bench_source(g, figs, key, label, q, helper);
        }
    }
    let raw = RawShm::create(
        &bench_name(&format!("queue-raw{size}")),
        RawRing::<S, CAP>::LEN,
    );
    let helper = Helper::spawn(&format!("produce-raw-{size}"), raw.name());
    let src = RawSource::<S, CAP, false>::new(raw);
    bench_source(
        g,
        figs,
        keys.raw,
        "textbook ring, raw shared memory",
        src,
        helper,
    );
    fd_baselines::<S>(g, figs, size, keys.pipe, keys.socket);
}

/// The pipe and socket baselines for messages of `S` bytes (helper role `produce-fd-{size}`).
fn fd_baselines<const S: usize>(
    g: &mut Group<'_>,
    figs: &Figures,
    size: &str,
    pipe: &'static str,
    socket: &'static str,
) {
    let role = format!("produce-fd-{size}");
    let (r, w) = pipe2(OFlag::O_CLOEXEC).expect("pipe2");
    let helper = Helper::spawn_with_stdio(&role, "", Stdio::null(), Stdio::from(w));
    bench_source(g, figs, pipe, "pipe", FdSource::<S>::new(r), helper);
    let (mine, theirs) = UnixStream::pair().expect("socketpair");
    let helper =
        Helper::spawn_with_stdio(&role, "", Stdio::null(), Stdio::from(OwnedFd::from(theirs)));
    bench_source(
        g,
        figs,
        socket,
        "Unix stream socket",
        FdSource::<S>::new(mine.into()),
        helper,
    );
}

/// A new SPSC queue for a throughput benchmark, and its producer: a helper with `role`.
fn spsc_with_producer<const S: usize, const CAP: usize>(
    name: &str,
    role: &str,
) -> (ShmQueue<[u8; S], CAP>, Helper) {
    let q = ShmQueue::<[u8; S], CAP>::options()
        .queue_mode(QueueMode::Spsc)
        .create(name)
        .expect("create");
    (q, Helper::spawn(role, name))
}

/// The 64-byte SPSC queue in batches: the helper pushes `BATCH` elements per `push_slice`,
/// the bench process pops up to `BATCH` per `pop_into` (blocking) or `try_pop_into` (spin).
fn batches(g: &mut Group<'_>, figs: &Figures) {
    let names = Regions(vec![
        bench_name("queue-batch"),
        bench_name("queue-batch-spin"),
    ]);
    let (q, helper) = spsc_with_producer(&names.0[0], "produce-batch-64");
    let label = "ShmQueue Spsc, push_slice/pop_into of 32";
    bench_source(g, figs, TP64_BATCH, label, Batches::<false>::new(q), helper);
    let (q, helper) = spsc_with_producer(&names.0[1], "produce-batch-64");
    let label = "ShmQueue Spsc, push_slice/try_pop_into of 32 spin";
    bench_source(
        g,
        figs,
        TP64_BATCH_POLL,
        label,
        Batches::<true>::new(q),
        helper,
    );
}

/// The 4 KiB SPSC queue through loans, every word written and read in place (the helper
/// `loan`s, `fill`s and commits; the bench process `pop_loan`s, or `try_pop_loan`s in a busy
/// loop, and reads every word), against the raw ring doing the same in place.
fn loans(g: &mut Group<'_>, figs: &Figures) {
    let names = Regions(vec![
        bench_name("queue-loan"),
        bench_name("queue-loan-spin"),
    ]);
    let (q, helper) = spsc_with_producer(&names.0[0], "produce-loan-4k");
    let label = "ShmQueue Spsc, loan/pop_loan, in place";
    bench_source(g, figs, TP4K_LOAN, label, Loans::<false>(q), helper);
    let (q, helper) = spsc_with_producer(&names.0[1], "produce-loan-4k");
    let label = "ShmQueue Spsc, loan/try_pop_loan spin, in place";
    bench_source(g, figs, TP4K_LOAN_POLL, label, Loans::<true>(q), helper);
    let raw = RawShm::create(
        &bench_name("queue-raw-in-place"),
        RawRing::<4096, PAGE_CAP>::LEN,
    );
    let helper = Helper::spawn("produce-raw-in-place-4k", raw.name());
    let src = RawSource::<4096, PAGE_CAP, true>::new(raw);
    let label = "textbook ring, raw shared memory, in place";
    bench_source(g, figs, TP4K_RAW_IN_PLACE, label, src, helper);
}

/// The byte channel (SPSC, `CHANNEL_CAP` bytes of ring) with messages of `S` bytes: `send` and
/// `recv_into` a buffer, then loans written and read in place.
fn channel<const S: usize>(
    g: &mut Group<'_>,
    figs: &Figures,
    copy: &'static str,
    loan: &'static str,
) {
    let names = Regions(vec![
        bench_name(&format!("channel-{S}")),
        bench_name(&format!("channel-loan-{S}")),
    ]);
    let create = |name: &str| {
        ShmChannel::options()
            .queue_mode(QueueMode::Spsc)
            .capacity(CHANNEL_CAP)
            .max_message(FRAME)
            .create(name)
            .expect("create")
    };
    let src = ChannelSource::<false> {
        channel: create(&names.0[0]),
        buf: Vec::with_capacity(S),
    };
    let helper = Helper::spawn(&format!("produce-channel-{S}"), &names.0[0]);
    let label = "ShmChannel Spsc, send/recv_into";
    bench_source(g, figs, copy, label, src, helper);
    let src = ChannelSource::<true> {
        channel: create(&names.0[1]),
        buf: Vec::new(),
    };
    let helper = Helper::spawn(&format!("produce-channel-loan-{S}"), &names.0[1]);
    let label = "ShmChannel Spsc, send_loan/recv_loan, in place";
    bench_source(g, figs, loan, label, src, helper);
}

/// Elements pushed before they are popped, in the instruction-counting mode: the consumer
/// finds a batch each time it looks at `tail`, as when elements stream in.
const COUNT_BATCH: u64 = 32;

/// The instruction-counting mode (module docs): `n` elements of `S` bytes through a queue of
/// `mode`, pushed and popped in batches of `COUNT_BATCH` by two handles of this process.
fn count<const S: usize, const CAP: usize>(mode: QueueMode, n: u64) {
    let names = Regions(vec![bench_name("queue-count")]);
    let options = || ShmQueue::<[u8; S], CAP>::options().queue_mode(mode);
    let producer = options().create(&names.0[0]).expect("create");
    let consumer = options().open(&names.0[0]).expect("open");
    // Unknown to the compiler, as a real message is: built once, stamped, pushed by copy (as
    // the throughput producer does).
    let mut msg = std::hint::black_box([0u8; S]);
    let mut next = 0u64;
    for seq in 0..n {
        stamp(&mut msg, seq);
        producer.push(msg).expect("push");
        if (seq + 1) % COUNT_BATCH == 0 || seq + 1 == n {
            while next <= seq {
                let got = consumer.pop().expect("pop").expect("an element");
                assert_eq!(seq_of(std::hint::black_box(&got)), next);
                next += 1;
            }
        }
    }
}

/// The instruction-counting mode for `batch64`: `n` (a multiple of `COUNT_BATCH`) 64-byte
/// elements, one `push_slice` and one `pop_into` per `COUNT_BATCH`.
fn count_batches(n: u64) {
    let names = Regions(vec![bench_name("queue-count")]);
    let options = || ShmQueue::<[u8; 64], SMALL_CAP>::options().queue_mode(QueueMode::Spsc);
    let producer = options().create(&names.0[0]).expect("create");
    let consumer = options().open(&names.0[0]).expect("open");
    let mut batch = std::hint::black_box([[0u8; 64]; COUNT_BATCH as usize]);
    let mut out = [[0u8; 64]; COUNT_BATCH as usize];
    for first in (0..n).step_by(COUNT_BATCH as usize) {
        for (seq, msg) in (first..).zip(batch.iter_mut()) {
            stamp(msg, seq);
        }
        producer.push_slice(&batch).expect("push_slice");
        assert_eq!(consumer.pop_into(&mut out).expect("pop_into"), batch.len());
        for (seq, msg) in (first..).zip(std::hint::black_box(&out)) {
            assert_eq!(seq_of(msg), seq);
        }
    }
}

/// The instruction-counting mode for `loan4k`: `n` 4 KiB elements, each written in place
/// through a loan (`fill`), then read in place through a pop loan (`checked_seq_of`), in
/// batches of `COUNT_BATCH`.
fn count_loans(n: u64) {
    let names = Regions(vec![bench_name("queue-count")]);
    let options = || ShmQueue::<[u8; 4096], PAGE_CAP>::options().queue_mode(QueueMode::Spsc);
    let mut producer = options().create(&names.0[0]).expect("create");
    let mut consumer = options().open(&names.0[0]).expect("open");
    let mut next = 0u64;
    for seq in 0..n {
        let mut slot = producer.loan().expect("loan");
        fill(&mut slot[..], seq);
        slot.commit().expect("commit");
        if (seq + 1) % COUNT_BATCH == 0 || seq + 1 == n {
            while next <= seq {
                let msg = consumer.pop_loan().expect("pop_loan").expect("an element");
                assert_eq!(checked_seq_of(&msg[..]), next);
                next += 1;
            }
        }
    }
}

/// The instruction-counting mode for `channel64` and `channel1500` (`S` bytes, `send` and
/// `recv_into`) and `channel-loan64` and `channel-loan1500` (`LOAN`: loans written and read
/// in place): `n` messages through an SPSC channel, in batches of `COUNT_BATCH`.
fn count_channel<const S: usize, const LOAN: bool>(n: u64) {
    let names = Regions(vec![bench_name("channel-count")]);
    let mut producer = ShmChannel::options()
        .queue_mode(QueueMode::Spsc)
        .capacity(CHANNEL_CAP)
        .max_message(FRAME)
        .create(&names.0[0])
        .expect("create");
    let mut consumer = ShmChannel::open(&names.0[0]).expect("open");
    let mut msg = std::hint::black_box([0u8; S]);
    let mut buf = Vec::with_capacity(S);
    let mut next = 0u64;
    for seq in 0..n {
        if LOAN {
            let mut loan = producer.send_loan(S).expect("send_loan");
            fill(&mut loan, seq);
            loan.commit().expect("commit");
        } else {
            stamp(&mut msg, seq);
            producer.send(&msg).expect("send");
        }
        if (seq + 1) % COUNT_BATCH == 0 || seq + 1 == n {
            while next <= seq {
                let got = if LOAN {
                    let loan = consumer.recv_loan().expect("recv_loan").expect("a message");
                    checked_seq_of(&loan)
                } else {
                    assert!(consumer.recv_into(&mut buf).expect("recv_into"));
                    seq_of(std::hint::black_box(&buf))
                };
                assert_eq!(got, next);
                next += 1;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Round trips

/// One side of a ping-pong, seen from the bench process.
trait Echo {
    /// Sends `seq` and waits until it comes back.
    fn round(&mut self, seq: u64);
}

/// Two SPSC queues; the bench process spins on `try_pop` (the echo does too).
struct QueueSpin {
    ping: PingQueue,
    pong: PingQueue,
}

impl Echo for QueueSpin {
    #[inline]
    fn round(&mut self, seq: u64) {
        self.ping.try_push(seq).expect("push");
        let back = spin_for(|| self.pong.try_pop().expect("pop"));
        assert_eq!(back, seq);
    }
}

/// Two SPSC queues, the blocking calls (spin, then futex).
struct QueueBlocking {
    ping: PingQueue,
    pong: PingQueue,
}

impl Echo for QueueBlocking {
    #[inline]
    fn round(&mut self, seq: u64) {
        self.ping.push(seq).expect("push");
        let back = self.pong.pop_timeout(PATIENCE).expect("pop");
        assert_eq!(back, Some(seq));
    }
}

/// Two pipes: `write`, then a blocking `read`, or (`spin`) a non-blocking one in a busy loop.
struct PipeEcho {
    ping: File,
    pong: File,
    spin: bool,
}

impl Echo for PipeEcho {
    #[inline]
    fn round(&mut self, seq: u64) {
        self.ping.write_all(&seq.to_le_bytes()).expect("write");
        let mut buf = [0u8; 8];
        read_full(&mut self.pong, &mut buf, self.spin).expect("read (did the helper process die?)");
        assert_eq!(u64::from_le_bytes(buf), seq);
    }
}

/// Fills `buf` from `file`; with `spin`, the descriptor is non-blocking and this spins while it
/// has nothing to read. End of file (the peer died) is an error.
#[inline]
fn read_full(file: &mut File, buf: &mut [u8], spin: bool) -> std::io::Result<()> {
    if !spin {
        return file.read_exact(buf);
    }
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Makes reads of `file` non-blocking.
fn set_nonblocking(file: &File) {
    let flags = fcntl(file, FcntlArg::F_GETFL).expect("F_GETFL");
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(file, FcntlArg::F_SETFL(flags)).expect("F_SETFL");
}

/// The raw floor: a counter bounced between two processes through two cache lines.
struct AtomicEcho<'a>(&'a Words);

#[repr(C, align(64))]
struct Line(AtomicU64);

#[repr(C)]
struct Words {
    ping: Line,
    pong: Line,
}

fn words(shm: &RawShm) -> &Words {
    const { assert!(std::mem::size_of::<Words>() <= 4096) };
    // SAFETY: the mapping is at least 4096 bytes, page-aligned and zero-filled at creation;
    // atomics accept any bytes and are shared through `&` only; the reference is tied to `shm`.
    unsafe { &*shm.ptr().cast::<Words>() }
}

impl Echo for AtomicEcho<'_> {
    #[inline]
    fn round(&mut self, seq: u64) {
        self.0.ping.0.store(seq, Ordering::Release);
        spin_for(|| (self.0.pong.0.load(Ordering::Acquire) == seq).then_some(()));
    }
}

/// Helper role `echo-queue-spin` / `echo-queue-sleep` (argument `PING,PONG`): pushes back on
/// PONG every number popped from PING, with `try_pop` in a busy loop or with `pop`.
fn echo_queue(arg: &str, spin: bool) {
    let (ping, pong) = arg.split_once(',').expect("two names");
    let ping = PingQueue::open(ping).expect("echo: open ping");
    let pong = PingQueue::open(pong).expect("echo: open pong");
    if spin {
        loop {
            match ping.try_pop().expect("echo: pop") {
                Some(v) => pong.try_push(v).expect("echo: push"),
                None => std::hint::spin_loop(),
            }
        }
    }
    while let Some(v) = ping.pop().expect("echo: pop") {
        pong.push(v).expect("echo: push");
    }
}

/// Helper role `echo-fd` / `echo-fd-spin`: writes back to its standard output every 8 bytes
/// read from its standard input (blocking, or non-blocking in a busy loop), until either end
/// goes away.
fn echo_fd(spin: bool) {
    let mut input = stdio_file(std::io::stdin());
    if spin {
        set_nonblocking(&input);
    }
    let mut output = stdio_file(std::io::stdout());
    let mut buf = [0u8; 8];
    while read_full(&mut input, &mut buf, spin).is_ok() {
        if output.write_all(&buf).is_err() {
            return;
        }
    }
}

/// Helper role `echo-atomic` (argument: the raw object): copies `ping` to `pong`, spinning.
fn echo_atomic(name: &str) {
    let shm = RawShm::open(name, 4096);
    let w = words(&shm);
    let mut seen = 0;
    loop {
        let v = w.ping.0.load(Ordering::Acquire);
        if v != seen {
            seen = v;
            w.pong.0.store(v, Ordering::Release);
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Runs `f` with a queue ping-pong whose helper has role `role`.
fn with_queues<R>(role: &str, f: impl FnOnce(PingQueue, PingQueue) -> R) -> R {
    let names = Regions(vec![bench_name("queue-ping"), bench_name("queue-pong")]);
    let spsc = || PingQueue::options().queue_mode(QueueMode::Spsc);
    let ping = spsc().create(&names.0[0]).expect("create ping");
    let pong = spsc().create(&names.0[1]).expect("create pong");
    let _helper = Helper::spawn(role, &names.0.join(","));
    // The first answer also waits for the helper to start.
    ping.push(0).expect("push");
    assert_eq!(pong.pop_timeout(PATIENCE).expect("first answer"), Some(0));
    f(ping, pong)
}

/// Runs `f` with a pipe ping-pong; with `spin`, both ends busy-poll non-blocking reads.
fn with_pipes<R>(spin: bool, f: impl FnOnce(&mut PipeEcho) -> R) -> R {
    let (ping_r, ping_w) = pipe2(OFlag::O_CLOEXEC).expect("pipe2");
    let (pong_r, pong_w) = pipe2(OFlag::O_CLOEXEC).expect("pipe2");
    let role = if spin { "echo-fd-spin" } else { "echo-fd" };
    let _helper = Helper::spawn_with_stdio(role, "", ping_r.into(), pong_w.into());
    let pong = File::from(pong_r);
    if spin {
        set_nonblocking(&pong);
    }
    let mut e = PipeEcho {
        ping: ping_w.into(),
        pong,
        spin,
    };
    e.round(0);
    f(&mut e)
}

/// Back to back: the time of `iters` round trips.
fn back_to_back(e: &mut impl Echo, seq: &mut u64, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        *seq += 1;
        e.round(*seq);
    }
    start.elapsed()
}

/// After a pause: the sum of `iters` round trips, each `GAP` after the previous one.
fn after_pause(e: &mut impl Echo, seq: &mut u64, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        spin_until(Instant::now() + GAP);
        *seq += 1;
        let t = Instant::now();
        e.round(*seq);
        total += t.elapsed();
    }
    total
}

fn benches(c: &mut Criterion, figs: &Figures) {
    pin_to_cpu(0);

    let mut g: Group<'_> = c.benchmark_group("queue throughput, 64 B messages");
    g.throughput(Throughput::Elements(1))
        .sample_size(SAMPLES)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let keys = Keys {
        spsc: TP64_SPSC,
        spsc_poll: TP64_SPSC_POLL,
        mpmc: TP64_MPMC,
        pipe: TP64_PIPE,
        socket: TP64_SOCKET,
        raw: TP64_RAW,
    };
    throughput::<64, SMALL_CAP>(&mut g, figs, keys);
    batches(&mut g, figs);
    g.finish();

    let mut g: Group<'_> = c.benchmark_group("queue throughput, 4 KiB messages");
    g.throughput(Throughput::Bytes(4096))
        .sample_size(SAMPLES)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let keys = Keys {
        spsc: TP4K_SPSC,
        spsc_poll: TP4K_SPSC_POLL,
        mpmc: "",
        pipe: TP4K_PIPE,
        socket: TP4K_SOCKET,
        raw: TP4K_RAW,
    };
    throughput::<4096, PAGE_CAP>(&mut g, figs, keys);
    loans(&mut g, figs);
    g.finish();

    let mut g: Group<'_> = c.benchmark_group("channel throughput, 64 B messages");
    g.throughput(Throughput::Elements(1))
        .sample_size(SAMPLES)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    channel::<64>(&mut g, figs, CH64_COPY, CH64_LOAN);
    g.finish();

    let mut g: Group<'_> = c.benchmark_group("channel throughput, 1500 B messages");
    g.throughput(Throughput::Elements(1))
        .sample_size(SAMPLES)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    channel::<FRAME>(&mut g, figs, CH1500_COPY, CH1500_LOAN);
    fd_baselines::<FRAME>(&mut g, figs, "1500", TP1500_PIPE, TP1500_SOCKET);
    g.finish();

    let mut g: Group<'_> = c.benchmark_group("round trip, busy-polling echo");
    g.sample_size(SAMPLES)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let mut seq = 0;
    with_queues("echo-queue-spin", |ping, pong| {
        let mut e = QueueSpin { ping, pong };
        g.bench_function("ShmQueue SPSC, try_pop spin", |b| {
            b.iter_custom(|iters| {
                figs.record(RT_SPIN_QUEUE, iters, back_to_back(&mut e, &mut seq, iters))
            })
        });
    });
    with_queues("echo-queue-sleep", |ping, pong| {
        let mut e = QueueBlocking { ping, pong };
        let mut seq = 0;
        g.bench_function("ShmQueue SPSC, pop/push (blocking calls)", |b| {
            b.iter_custom(|iters| {
                figs.record(RT_BLOCK_QUEUE, iters, back_to_back(&mut e, &mut seq, iters))
            })
        });
    });
    {
        let raw = RawShm::create(&bench_name("queue-atomic"), 4096);
        let _helper = Helper::spawn("echo-atomic", raw.name());
        let mut e = AtomicEcho(words(&raw));
        e.round(u64::MAX);
        let mut seq = 0;
        g.bench_function("raw cache-line ping-pong", |b| {
            b.iter_custom(|iters| {
                figs.record(RT_SPIN_ATOMIC, iters, back_to_back(&mut e, &mut seq, iters))
            })
        });
    }
    with_pipes(true, |e| {
        let mut seq = 0;
        g.bench_function("pipe, non-blocking read spin", |b| {
            b.iter_custom(|iters| {
                figs.record(RT_PIPE_SPIN, iters, back_to_back(e, &mut seq, iters))
            })
        });
    });
    with_pipes(false, |e| {
        let mut seq = 0;
        g.bench_function("pipe, blocking read", |b| {
            b.iter_custom(|iters| figs.record(RT_PIPE, iters, back_to_back(e, &mut seq, iters)))
        });
    });
    g.finish();

    // Only the round trips are timed, so the wall time is ~GAP / round trip longer than
    // criterion's measurement time.
    let mut g: Group<'_> = c.benchmark_group("round trip, sleeping echo (200 us apart)");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(SAMPLES)
        .warm_up_time(Duration::from_millis(50))
        .measurement_time(Duration::from_millis(200));
    with_queues("echo-queue-sleep", |ping, pong| {
        let mut e = QueueBlocking { ping, pong };
        let mut seq = 0;
        g.bench_function("ShmQueue SPSC, pop/push", |b| {
            b.iter_custom(|iters| {
                figs.record(RT_SLEEP_QUEUE, iters, after_pause(&mut e, &mut seq, iters))
            })
        });
    });
    with_pipes(false, |e| {
        let mut seq = 0;
        g.bench_function("pipe", |b| {
            b.iter_custom(|iters| {
                figs.record(RT_SLEEP_PIPE, iters, after_pause(e, &mut seq, iters))
            })
        });
    });
    g.finish();

    let [queue, pipe] = with_queues("echo-queue-sleep", |ping, pong| {
        let mut q = QueueBlocking { ping, pong };
        with_pipes(false, |p| sleeping_distributions(&mut q, p))
    });
    println!("round trip, sleeping echo, {TIMED_SLEEPING} of each interleaved:");
    println!("    ShmQueue SPSC: {queue}");
    println!("    pipe:          {pipe}");
    summary(figs);
}

/// `TIMED_SLEEPING` round trips of each kind after a pause, interleaved (queue, pipe, queue,
/// ...) so that both see the same machine at the same time.
fn sleeping_distributions(q: &mut QueueBlocking, p: &mut PipeEcho) -> [Percentiles; 2] {
    let (mut qs, mut ps) = (Vec::new(), Vec::new());
    let mut seq = 1 << 32;
    for _ in 0..TIMED_SLEEPING {
        for (e, out) in [(q as &mut dyn Echo, &mut qs), (p as &mut dyn Echo, &mut ps)] {
            seq += 1;
            spin_until(Instant::now() + GAP);
            let t = Instant::now();
            e.round(seq);
            out.push(t.elapsed().as_nanos() as u64);
        }
    }
    [Percentiles::of(qs), Percentiles::of(ps)]
}

/// What a summary row measures: messages or bytes per second (higher is better), or a round
/// trip in nanoseconds (lower is better).
#[derive(Clone, Copy)]
enum Unit {
    Msgs,
    Bytes(f64),
    Nanos,
}

impl Unit {
    fn show(self, ns: f64) -> String {
        match self {
            Unit::Msgs => format!("{:.2} M msg/s", 1e3 / ns),
            Unit::Bytes(size) => format!("{:.2} GB/s", size / ns),
            Unit::Nanos if ns < 10_000.0 => format!("{ns:.0} ns"),
            Unit::Nanos => format!("{:.1} us", ns / 1e3),
        }
    }

    /// ShmQueue's figure over the baseline's (throughput) or the baseline's over ShmQueue's
    /// (latency): above 1 means ShmQueue is better, for both.
    fn gain(self, ours: f64, base: f64) -> f64 {
        match self {
            Unit::Nanos => ours / base,
            _ => base / ours,
        }
    }
}

/// The target of a figure that only has to be reported: no verdict.
const REPORT: &str = "report";

/// One summary row; `target` says whether the row meets its target (`None`: no target).
fn row(
    what: &str,
    unit: Unit,
    ours: Option<f64>,
    base: (&str, Option<f64>),
    target: (&str, &dyn Fn(f64, f64) -> bool),
) {
    let (Some(ours), Some(base_ns)) = (ours, base.1) else {
        println!("  {what:<30} not measured in this run");
        return;
    };
    let ratio = unit.gain(ours, base_ns);
    let verdict = if target.0.is_empty() || target.0 == REPORT {
        ""
    } else if (target.1)(ours, ratio) {
        "  met"
    } else {
        "  MISSED"
    };
    let ratio = match unit {
        Unit::Nanos => format!("{ratio:.3}x"),
        _ => format!("{ratio:.1}x"),
    };
    println!(
        "  {what:<30} {:>14}   {:<9} {:>14}   {ratio:>8}   {}{verdict}",
        unit.show(ours),
        base.0,
        unit.show(base_ns),
        target.0,
    );
}

/// The ratios against the targets, from the figures of this run.
fn summary(figs: &Figures) {
    let f = |key| figs.ns(key);
    let none: (&str, &dyn Fn(f64, f64) -> bool) = ("", &|_, _| true);
    println!();
    println!(
        "ShmQueue against its targets (DESIGN \u{a7}11), medians of criterion's samples in this \
         run. Ratio: throughput ShmQueue / baseline (higher is better), round trip ShmQueue / \
         baseline (lower is better)."
    );
    println!(
        "  {:<30} {:>14}   {:<9} {:>14}   {:>8}   target",
        "", "ShmQueue", "vs", "baseline", "ratio"
    );
    let tp64 = |ns: f64, ratio: f64| ratio >= 20.0 && 1e9 / ns >= 50e6;
    row(
        "SPSC throughput, 64 B",
        Unit::Msgs,
        f(TP64_SPSC),
        ("pipe", f(TP64_PIPE)),
        (">= 20x pipe and >= 50 M msg/s", &tp64),
    );
    row(
        "SPSC throughput, 64 B, spin",
        Unit::Msgs,
        f(TP64_SPSC_POLL),
        ("pipe", f(TP64_PIPE)),
        (">= 20x pipe and >= 50 M msg/s", &tp64),
    );
    row(
        "SPSC throughput, 64 B",
        Unit::Msgs,
        f(TP64_SPSC),
        ("socket", f(TP64_SOCKET)),
        none,
    );
    row(
        "SPSC throughput, 64 B, spin",
        Unit::Msgs,
        f(TP64_SPSC_POLL),
        ("raw ring", f(TP64_RAW)),
        none,
    );
    row(
        "MPMC throughput, 64 B",
        Unit::Msgs,
        f(TP64_MPMC),
        ("pipe", f(TP64_PIPE)),
        none,
    );
    row(
        "SPSC 64 B, batches of 32",
        Unit::Msgs,
        f(TP64_BATCH),
        ("pipe", f(TP64_PIPE)),
        (">= 20x pipe and >= 50 M msg/s", &tp64),
    );
    row(
        "SPSC 64 B, batches of 32, spin",
        Unit::Msgs,
        f(TP64_BATCH_POLL),
        ("pipe", f(TP64_PIPE)),
        (">= 20x pipe and >= 50 M msg/s", &tp64),
    );
    row(
        "SPSC 64 B, batches of 32, spin",
        Unit::Msgs,
        f(TP64_BATCH_POLL),
        ("raw ring", f(TP64_RAW)),
        none,
    );
    let tp4k = |ns: f64, ratio: f64| ratio >= 10.0 && 4096.0 / ns >= 35.0;
    let page = Unit::Bytes(4096.0);
    row(
        "SPSC throughput, 4 KiB",
        page,
        f(TP4K_SPSC),
        ("pipe", f(TP4K_PIPE)),
        (">= 10x pipe and >= 35 GB/s", &tp4k),
    );
    row(
        "SPSC throughput, 4 KiB, spin",
        page,
        f(TP4K_SPSC_POLL),
        ("pipe", f(TP4K_PIPE)),
        (">= 10x pipe and >= 35 GB/s", &tp4k),
    );
    row(
        "SPSC throughput, 4 KiB",
        page,
        f(TP4K_SPSC),
        ("socket", f(TP4K_SOCKET)),
        none,
    );
    row(
        "SPSC throughput, 4 KiB, spin",
        page,
        f(TP4K_SPSC_POLL),
        ("raw ring", f(TP4K_RAW)),
        none,
    );
    row(
        "SPSC 4 KiB, loans in place",
        page,
        f(TP4K_LOAN),
        ("pipe", f(TP4K_PIPE)),
        (">= 10x pipe and >= 35 GB/s", &tp4k),
    );
    row(
        "SPSC 4 KiB, loans, spin",
        page,
        f(TP4K_LOAN_POLL),
        ("pipe", f(TP4K_PIPE)),
        (">= 10x pipe and >= 35 GB/s", &tp4k),
    );
    row(
        "SPSC 4 KiB, loans, spin",
        page,
        f(TP4K_LOAN_POLL),
        ("raw inpl", f(TP4K_RAW_IN_PLACE)),
        none,
    );
    let report: (&str, &dyn Fn(f64, f64) -> bool) = (REPORT, &|_, _| true);
    row(
        "channel 64 B, send/recv_into",
        Unit::Msgs,
        f(CH64_COPY),
        ("pipe", f(TP64_PIPE)),
        report,
    );
    row(
        "channel 64 B, send/recv_into",
        Unit::Msgs,
        f(CH64_COPY),
        ("socket", f(TP64_SOCKET)),
        none,
    );
    row(
        "channel 64 B, loans",
        Unit::Msgs,
        f(CH64_LOAN),
        ("pipe", f(TP64_PIPE)),
        report,
    );
    row(
        "channel 1500 B, send/recv_into",
        Unit::Msgs,
        f(CH1500_COPY),
        ("pipe", f(TP1500_PIPE)),
        report,
    );
    row(
        "channel 1500 B, send/recv_into",
        Unit::Msgs,
        f(CH1500_COPY),
        ("socket", f(TP1500_SOCKET)),
        none,
    );
    row(
        "channel 1500 B, loans",
        Unit::Msgs,
        f(CH1500_LOAN),
        ("pipe", f(TP1500_PIPE)),
        report,
    );
    let busy = |ns: f64, _: f64| ns <= 150.0;
    row(
        "round trip, busy-polling echo",
        Unit::Nanos,
        f(RT_SPIN_QUEUE),
        ("pipe spin", f(RT_PIPE_SPIN)),
        ("<= 150 ns (iceoryx2: 551 ns)", &busy),
    );
    row(
        "round trip, busy-polling echo",
        Unit::Nanos,
        f(RT_SPIN_QUEUE),
        ("pipe blk", f(RT_PIPE)),
        none,
    );
    row(
        "round trip, busy-polling echo",
        Unit::Nanos,
        f(RT_SPIN_QUEUE),
        ("atomic", f(RT_SPIN_ATOMIC)),
        none,
    );
    row(
        "round trip, blocking pop/push",
        Unit::Nanos,
        f(RT_BLOCK_QUEUE),
        ("atomic", f(RT_SPIN_ATOMIC)),
        none,
    );
    let sleeping = |_: f64, ratio: f64| ratio <= 1.0;
    row(
        "round trip, sleeping echo",
        Unit::Nanos,
        f(RT_SLEEP_QUEUE),
        ("pipe", f(RT_SLEEP_PIPE)),
        ("<= 1.0x pipe", &sleeping),
    );
    if let Some(floor) = f(RT_SPIN_ATOMIC) {
        println!(
            "  (\"atomic\" is two processes bouncing a counter through two cache lines: the floor \
             of any shared-memory round trip on this machine now, {floor:.0} ns)"
        );
    }
}

fn main() {
    common::start_second_thread();
    if let Ok(what) = std::env::var("SHMSTORE_BENCH_COUNT") {
        let (what, n) = what.split_once(':').expect("SHMSTORE_BENCH_COUNT=WHAT:N");
        let n: u64 = n.parse().expect("N: a number of elements");
        match what {
            "spsc64" => count::<64, SMALL_CAP>(QueueMode::Spsc, n),
            "spsc4k" => count::<4096, PAGE_CAP>(QueueMode::Spsc, n),
            "mpmc64" => count::<64, SMALL_CAP>(QueueMode::Mpmc, n),
            "batch64" => count_batches(n),
            "loan4k" => count_loans(n),
            "channel64" => count_channel::<64, false>(n),
            "channel1500" => count_channel::<FRAME, false>(n),
            "channel-loan64" => count_channel::<64, true>(n),
            "channel-loan1500" => count_channel::<FRAME, true>(n),
            other => panic!(
                "unknown count {other}: spsc64, spsc4k, mpmc64, batch64, loan4k, channel64, \
                 channel1500, channel-loan64 or channel-loan1500"
            ),
        }
        return;
    }
    if let Some((role, arg)) = helper_role() {
        pin_to_cpu(1);
        match role.as_str() {
            "produce-queue-64" => produce_queue::<64, SMALL_CAP>(&arg),
            "produce-queue-4k" => produce_queue::<4096, PAGE_CAP>(&arg),
            "produce-raw-64" => produce_raw::<64, SMALL_CAP, false>(&arg),
            "produce-raw-4k" => produce_raw::<4096, PAGE_CAP, false>(&arg),
            "produce-raw-in-place-4k" => produce_raw::<4096, PAGE_CAP, true>(&arg),
            "produce-batch-64" => produce_batches(&arg),
            "produce-loan-4k" => produce_loans(&arg),
            "produce-channel-64" => produce_channel::<64, false>(&arg),
            "produce-channel-loan-64" => produce_channel::<64, true>(&arg),
            "produce-channel-1500" => produce_channel::<FRAME, false>(&arg),
            "produce-channel-loan-1500" => produce_channel::<FRAME, true>(&arg),
            "produce-fd-64" => produce_fd::<64>(),
            "produce-fd-4k" => produce_fd::<4096>(),
            "produce-fd-1500" => produce_fd::<FRAME>(),
            "echo-queue-spin" => echo_queue(&arg, true),
            "echo-queue-sleep" => echo_queue(&arg, false),
            "echo-fd" => echo_fd(false),
            "echo-fd-spin" => echo_fd(true),
            "echo-atomic" => echo_atomic(&arg),
            other => panic!("unknown helper role {other}"),
        }
        return;
    }
    let figs = Figures::default();
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c, &figs);
    c.final_summary();
}
