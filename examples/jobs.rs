//! What the `producer` and `consumer` examples share: the job encoding, the channel's name, and
//! the consumer's loop (the producer runs it in a child process when no consumer is running).
//!
//! Jobs are variable-length byte messages in a `ShmChannel`: a 1-byte request takes a few bytes
//! of the ring, a 1 500-byte one its 1 500, none is padded to a slot or cut to fit one.

use std::time::Instant;

use shmstore::{QueueMode, ShmChannel, Store};

/// The application's namespace; the channel is `shmstore-example.jobs`.
pub const APP: &str = "shmstore-example";
/// The ring's size: enough to absorb bursts (64 KiB).
pub const CAPACITY: usize = 64 << 10;
/// The largest job: a full Ethernet payload.
pub const MAX_JOB: usize = 1500;
/// The fixed part of a job: `seq`, `amount`, `check`.
const HEADER: usize = 24;

/// One unit of work, as it travels: `seq` and `amount` (little-endian `u64`s), a check word,
/// then a payload of `seq`-dependent length (0 to 1 476 bytes).
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// 0, 1, 2, … in send order: the consumer checks that none is lost or reordered.
    pub seq: u64,
    /// What to do with it (here: add it up).
    pub amount: u64,
    /// The payload's length.
    pub payload: usize,
}

const MAGIC: u64 = 0x5eed_cafe_f00d_d00d;

impl Job {
    /// The length of job `seq` on the wire: from 24 to 1 500 bytes.
    #[allow(dead_code)] // the consumer only reads jobs
    pub fn len_of(seq: u64) -> usize {
        HEADER + (seq.wrapping_mul(7919) % (MAX_JOB - HEADER + 1) as u64) as usize
    }

    /// Writes job `seq` into `bytes` (of `len_of(seq)` bytes): where a send loan lends them,
    /// in the channel's ring.
    #[allow(dead_code)] // the consumer only reads jobs
    pub fn write(seq: u64, bytes: &mut [u8]) {
        let amount = seq % 1000;
        let check = seq ^ amount ^ MAGIC ^ bytes.len() as u64;
        bytes[..8].copy_from_slice(&seq.to_le_bytes());
        bytes[8..16].copy_from_slice(&amount.to_le_bytes());
        bytes[16..24].copy_from_slice(&check.to_le_bytes());
        for (i, b) in bytes[HEADER..].iter_mut().enumerate() {
            *b = (seq as usize + i) as u8;
        }
    }

    /// The job in `bytes`, if it arrived whole (its check word and payload agree).
    pub fn read(bytes: &[u8]) -> Option<Job> {
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(bytes.get(at..at + 8)?);
            Some(u64::from_le_bytes(w))
        };
        let (seq, amount, check) = (word(0)?, word(8)?, word(16)?);
        let payload = &bytes[HEADER..];
        let intact = check == seq ^ amount ^ MAGIC ^ bytes.len() as u64
            && payload
                .iter()
                .enumerate()
                .all(|(i, &b)| b == (seq as usize + i) as u8);
        intact.then_some(Job {
            seq,
            amount,
            payload: payload.len(),
        })
    }
}

/// The channel of jobs: one producer, one consumer, lock-free. Whoever comes first creates it;
/// a channel left closed by an earlier run is removed and created anew.
pub fn channel() -> shmstore::Result<ShmChannel> {
    let app = Store::new(APP)?;
    let name = app.name_of("jobs")?;
    let open = || {
        ShmChannel::options()
            .capacity(CAPACITY)
            .max_message(MAX_JOB)
            .queue_mode(QueueMode::Spsc)
            .open_or_create(name.as_str())
    };
    let jobs = open()?;
    if !jobs.is_closed() {
        return Ok(jobs);
    }
    drop(jobs);
    match shmstore::unlink(name.as_str()) {
        Ok(()) | Err(shmstore::Error::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    open()
}

/// Receives jobs until the producer closes the channel, checking order and integrity, then
/// removes the channel (a closed channel stays closed; the next run starts a new one).
pub fn consume(who: &str) -> shmstore::Result<()> {
    let mut jobs = channel()?;
    println!(
        "[{who}] waiting for jobs on `{APP}.jobs` (pid {})",
        std::process::id()
    );
    let (mut expected, mut total, mut bytes) = (0u64, 0u64, 0u64);
    let mut started = None;
    // Each job is read in place, in the ring, and its room freed when the loan drops.
    while let Some(job) = jobs.recv_loan()? {
        started.get_or_insert_with(Instant::now);
        let Some(job) = Job::read(&job) else {
            panic!("torn job after {expected}");
        };
        assert_eq!(job.seq, expected, "a job was lost or reordered");
        expected += 1;
        total += job.amount;
        bytes += (HEADER + job.payload) as u64;
        if expected % 250_000 == 0 {
            println!("[{who}] {expected} jobs so far");
        }
    }
    let secs = started.map_or(0.0, |s| s.elapsed().as_secs_f64()).max(1e-9);
    println!(
        "[{who}] channel closed: received {expected} jobs of 24 to {MAX_JOB} bytes, all whole \
         and in order, total amount {total}, {:.1} M jobs/s, {:.2} GB/s",
        expected as f64 / secs / 1e6,
        bytes as f64 / secs / 1e9
    );
    drop(jobs);
    match shmstore::unlink(Store::new(APP)?.name_of("jobs")?.as_str()) {
        Ok(()) | Err(shmstore::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
