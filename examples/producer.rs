//! The producing half of a job queue between processes:
//!
//! ```text
//! cargo run --release --example producer [-- JOBS]
//! ```
//!
//! sends JOBS jobs (default 2 000 000) of 24 to 1 500 bytes each into the single-producer
//! single-consumer byte channel `shmstore-example.jobs` and closes it. Each job is written in
//! place, in the channel's ring, through a send loan of exactly its length. If no consumer is
//! attached (see `has_other_consumer`), it starts one: this program again, in a child process.
//! Or start `cargo run --release --example consumer` in another terminal first.
//!
//! The channel is bounded (64 KiB): when the consumer falls behind, a send waits for room
//! (spinning briefly, then sleeping on a futex), so the producer never outruns memory.

use std::process::Command;
use std::time::Instant;

#[path = "jobs.rs"]
mod jobs;
use jobs::Job;
use shmstore::ShmChannel;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().nth(1).as_deref() == Some("--as-consumer") {
        return Ok(jobs::consume("consumer (child)")?);
    }
    let count: u64 = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 2_000_000,
    };
    let mut channel: ShmChannel = jobs::channel()?;
    let mut child = None;
    if channel.has_other_consumer()? == Some(false) {
        println!("[producer] no consumer attached: starting one");
        child = Some(
            Command::new(std::env::current_exe()?)
                .arg("--as-consumer")
                .spawn()?,
        );
    }
    println!(
        "[producer] sending {count} jobs into `{}` ({:?}, {} bytes, jobs of up to {} bytes)",
        channel.name(),
        channel.mode(),
        channel.capacity(),
        channel.max_message()
    );
    let start = Instant::now();
    for seq in 0..count {
        // Lend exactly this job's bytes in the ring, write it there, publish it.
        let mut loan = channel.send_loan(Job::len_of(seq))?;
        Job::write(seq, &mut loan);
        loan.commit()?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "[producer] sent {count} jobs in {:.0} ms ({:.1} M jobs/s); closing the channel",
        secs * 1e3,
        count as f64 / secs / 1e6
    );
    // The consumer receives what is queued, then sees the end.
    channel.close();
    if let Some(mut child) = child {
        let status = child.wait()?;
        if !status.success() {
            return Err(format!("the consumer failed: {status}").into());
        }
    }
    Ok(())
}
