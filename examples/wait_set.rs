//! The blocking counterpart of `tokio_service`: the same service (a configuration region and
//! a job queue, fed by two processes) on one thread that sleeps in a `WaitSet` until the
//! first source is ready (README, "Waiting on many things"): no thread per source, no
//! polling.
//!
//! ```text
//! cargo run --example wait_set
//! ```
//!
//! It creates both regions, starts the `config-daemon` and `producer` processes (this program
//! again, with a role), serves until the producer closes the queue, checks what it saw, and
//! removes both regions; `cargo test -p shmstore-examples --example wait_set` runs it as a
//! test.

mod service;

use shmstore::QueueEvent;
use shmstore::WaitSet;

use service::{feeder_role, runs_as_demo, Regions, Result, Seen, PATIENCE};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first() {
        Some(role) => match feeder_role(role, &args[1..]) {
            Some(outcome) => outcome,
            None if runs_as_demo(Some(role), "wait_set") => demo(),
            None => Ok(()),
        },
        None => demo(),
    };
    if let Err(e) = outcome {
        eprintln!("wait_set: {e}");
        std::process::exit(1);
    }
}

fn demo() -> Result<()> {
    let regions = Regions::create("wait-set")?;
    let feeders = regions.start_feeders()?;
    let seen = serve(&regions)?;
    feeders.finish()?;
    seen.check("wait_set service", &regions.config.read())
}

/// The service: one thread, one `WaitSet` over the configuration and the queue.
fn serve(regions: &Regions) -> Result<Seen> {
    let Regions { config, jobs, .. } = regions;
    let mut seen = Seen::default();
    let mut current = config.read();
    let mut version = config.version();
    println!("[wait_set service] starting with {current:?} (version {version})");

    let mut set = WaitSet::new();
    let config_changed = set.add_value(config, version)?;
    let job_waiting = set.add_queue(jobs, QueueEvent::NotEmpty)?;
    // A shutdown timer: the wait ends with nothing ready if the feeders stall.
    set.set_timeout(PATIENCE);
    loop {
        let ready = set.wait()?;
        if ready.timed_out() {
            return Err(format!("no shutdown within {PATIENCE:?}: a feeder stalled").into());
        }
        if ready.contains(config_changed) {
            version = config.version();
            current = config.read();
            seen.config_changes += 1;
            set.set_since(config_changed, version);
            println!("[wait_set service] config version {version}: {current:?}");
        }
        if ready.contains(job_waiting) {
            // Ready means an element or the close: take what is there.
            while let Some(job) = jobs.try_pop()? {
                seen.job(job, &current)?;
            }
            if jobs.is_closed() && jobs.is_empty() {
                println!("[wait_set service] queue closed: shutting down");
                break;
            }
        }
    }
    if config.version() != version {
        seen.config_changes += 1;
    }
    Ok(seen)
}
