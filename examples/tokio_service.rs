//! A tokio service that reacts to a configuration region and a job queue in one `select!`
//! (README, "Waiting on many things" and "Async and event loops"): no thread per source, no
//! `spawn_blocking`, no polling timeout.
//!
//! ```text
//! cargo run --example tokio_service --features tokio
//! ```
//!
//! It creates both regions, starts two processes that feed them (this program again, with a
//! role: `config-daemon` publishes five configurations, `producer` pushes 200 jobs, waits for
//! the last configuration and closes the queue), and serves on a current-thread runtime:
//! `config.changed(seen).await` reads each new configuration, `jobs.pop_async().await` takes
//! the jobs, and the queue's close (`None`) shuts the service down. A `sleep` branch stands
//! for a shutdown timer (or ctrl-c) and fails the run if the feeders stall. Then it checks
//! that every job arrived once and in order and that the last configuration was read, and
//! removes both regions. `cargo test -p shmstore-examples --features tokio --example
//! tokio_service` runs it as a test. `examples/wait_set.rs` is the same service, blocking, on
//! one thread with a `WaitSet`.

mod service;

use service::{feeder_role, runs_as_demo, Regions, Result, Seen, PATIENCE};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first() {
        Some(role) => match feeder_role(role, &args[1..]) {
            Some(outcome) => outcome,
            None if runs_as_demo(Some(role), "tokio_service") => demo(),
            None => Ok(()),
        },
        None => demo(),
    };
    if let Err(e) = outcome {
        eprintln!("tokio_service: {e}");
        std::process::exit(1);
    }
}

fn demo() -> Result<()> {
    let mut regions = Regions::create("tokio")?;
    let feeders = regions.start_feeders()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let seen = runtime.block_on(serve(&mut regions))?;
    feeders.finish()?;
    seen.check("tokio service", &regions.config.read())
}

/// The service: one task, one `select!` over the configuration and the queue.
async fn serve(regions: &mut Regions) -> Result<Seen> {
    let Regions { config, jobs, .. } = regions;
    let mut seen = Seen::default();
    let mut version = config.version();
    let mut current = config.read();
    println!("[tokio service] starting with {current:?} (version {version})");
    let shutdown = tokio::time::sleep(PATIENCE);
    tokio::pin!(shutdown);
    loop {
        // Both futures are cancel-safe: the branch not taken loses nothing (a job stays in
        // the queue, a change is seen on the next turn) and leaves no registration behind.
        tokio::select! {
            changed = config.changed(version) => {
                version = changed?;
                current = config.read();
                seen.config_changes += 1;
                println!("[tokio service] config version {version}: {current:?}");
            }
            job = jobs.pop_async() => match job? {
                Some(job) => seen.job(job, &current)?,
                None => {
                    println!("[tokio service] queue closed: shutting down");
                    break;
                }
            },
            () = &mut shutdown => {
                return Err(format!("no shutdown within {PATIENCE:?}: a feeder stalled").into());
            }
        }
    }
    // The producer closed the queue after the last configuration was published: read it.
    if config.version() != version {
        seen.config_changes += 1;
    }
    Ok(seen)
}
