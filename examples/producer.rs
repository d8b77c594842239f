//! The producing half of a job queue between processes:
//!
//! ```text
//! cargo run --release --example producer [-- JOBS]
//! ```
//!
//! pushes JOBS jobs (default 2 000 000) into the single-producer single-consumer queue
//! `shmstore-example.jobs` and closes it. If no consumer is attached (see
//! `has_other_consumer`), it starts one: this program again, in a child process. Or start
//! `cargo run --release --example consumer` in another terminal first.
//!
//! The queue is bounded (1024 jobs): when the consumer falls behind, `push` waits for room
//! (spinning briefly, then sleeping on a futex), so the producer never outruns memory.

use std::process::Command;
use std::time::Instant;

#[path = "jobs.rs"]
mod jobs;
use jobs::Job;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().nth(1).as_deref() == Some("--as-consumer") {
        return Ok(jobs::consume("consumer (child)")?);
    }
    let count: u64 = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 2_000_000,
    };
    let queue = jobs::queue()?;
    let mut child = None;
    if queue.has_other_consumer()? == Some(false) {
        println!("[producer] no consumer attached: starting one");
        child = Some(
            Command::new(std::env::current_exe()?)
                .arg("--as-consumer")
                .spawn()?,
        );
    }
    println!(
        "[producer] pushing {count} jobs into `{}` ({:?}, capacity {})",
        queue.name(),
        queue.mode(),
        queue.capacity()
    );
    let start = Instant::now();
    for seq in 0..count {
        queue.push(Job::new(seq))?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "[producer] pushed {count} jobs in {:.0} ms ({:.1} M jobs/s); closing the queue",
        secs * 1e3,
        count as f64 / secs / 1e6
    );
    // Consumers drain what is queued, then see the end.
    queue.close();
    if let Some(mut child) = child {
        let status = child.wait()?;
        if !status.success() {
            return Err(format!("the consumer failed: {status}").into());
        }
    }
    Ok(())
}
