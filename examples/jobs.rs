//! What the `producer` and `consumer` examples share: the element type, the queue's name, and
//! the consumer's loop (the producer runs it in a child process when no consumer is running).

use std::time::Instant;

use shmstore::{QueueMode, ShmQueue, ShmType, Store};

/// The application's namespace; the queue is `shmstore-example.jobs`.
pub const APP: &str = "shmstore-example";
/// Capacity: enough to absorb bursts, small enough to stay in cache (64 KiB of jobs).
pub const CAPACITY: usize = 1024;

/// One unit of work. 64 bytes: one cache line per element.
#[derive(ShmType, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct Job {
    /// 0, 1, 2, … in push order: the consumer checks that none is lost or reordered.
    pub seq: u64,
    /// What to do with it (here: add it up).
    pub amount: u64,
    /// Free text, NUL-padded.
    pub note: [u8; 40],
    /// `seq ^ amount ^ MAGIC`: a consumer that sees anything else saw a torn element.
    pub check: u64,
}

const MAGIC: u64 = 0x5eed_cafe_f00d_d00d;

impl Job {
    /// Job number `seq`.
    #[allow(dead_code)] // the consumer only reads jobs
    pub fn new(seq: u64) -> Job {
        let amount = seq % 1000;
        let mut note = [0u8; 40];
        note[..11].copy_from_slice(b"example job");
        Job {
            seq,
            amount,
            note,
            check: seq ^ amount ^ MAGIC,
        }
    }

    /// Whether the element arrived whole.
    pub fn intact(&self) -> bool {
        self.check == self.seq ^ self.amount ^ MAGIC
    }
}

/// The queue of jobs: single producer, single consumer, lock-free. Whoever comes first creates
/// it; a queue left closed by an earlier run is removed and created anew.
pub fn queue() -> shmstore::Result<ShmQueue<Job, CAPACITY>> {
    let app = Store::new(APP)?;
    let jobs = app.queue::<Job, CAPACITY>("jobs", QueueMode::Spsc)?;
    if !jobs.is_closed() {
        return Ok(jobs);
    }
    drop(jobs);
    match shmstore::unlink(&app.name_of("jobs")?) {
        Ok(()) | Err(shmstore::Error::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    app.queue::<Job, CAPACITY>("jobs", QueueMode::Spsc)
}

/// Pops jobs until the producer closes the queue, checking order and integrity, then removes
/// the queue (a closed queue stays closed; the next run starts a new one).
pub fn consume(who: &str) -> shmstore::Result<()> {
    let jobs = queue()?;
    println!(
        "[{who}] waiting for jobs on `{APP}.jobs` (pid {})",
        std::process::id()
    );
    let mut expected = 0u64;
    let mut total = 0u64;
    let mut started = None;
    while let Some(job) = jobs.pop()? {
        started.get_or_insert_with(Instant::now);
        assert!(job.intact(), "torn job {job:?}");
        assert_eq!(job.seq, expected, "a job was lost or reordered");
        expected += 1;
        total += job.amount;
        if expected % 250_000 == 0 {
            println!(
                "[{who}] {expected} jobs so far (queue holds {})",
                jobs.len()
            );
        }
    }
    let secs = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
    println!(
        "[{who}] queue closed: received {expected} jobs, all whole and in order, total amount \
         {total}, {:.1} M jobs/s",
        expected as f64 / secs.max(1e-9) / 1e6
    );
    drop(jobs);
    match shmstore::unlink(&Store::new(APP)?.name_of("jobs")?) {
        Ok(()) | Err(shmstore::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
