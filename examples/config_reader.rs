//! A service that follows the configuration `config_writer` publishes: it prints each new
//! configuration as it changes and exits when the writer says so. It sleeps between changes
//! (a futex wait, no polling) and opens the region read-only, so it cannot corrupt it.
//!
//! `cargo run --example config_reader` (it waits up to a minute for the writer to appear).

use std::time::{Duration, Instant};

use shmstore::{Error, Shm, ShmReader};

// Shared with config_writer, which uses the parts this reader does not.
#[allow(dead_code)]
#[path = "config.rs"]
mod config;
use config::{Config, REGION};

fn main() -> Result<(), Error> {
    let config = wait_for_region(Duration::from_secs(60))?;
    let mut seen = config.version();
    let mut current = config.read();
    println!("[reader] following `{REGION}`: {}", describe(&current));
    while current.shutdown == 0 {
        // Sleeps until the writer publishes; a quiet minute ends the wait with Error::Timeout.
        seen = config.wait_for_change(seen, Some(Duration::from_secs(60)))?;
        current = config.read();
        println!("[reader] version {seen}: {}", describe(&current));
    }
    println!("[reader] the writer is done");
    Ok(())
}

/// Opens the region read-only, retrying while the writer has not created it yet.
fn wait_for_region(patience: Duration) -> Result<ShmReader<Config>, Error> {
    let start = Instant::now();
    loop {
        match Shm::<Config>::open_reader(REGION) {
            Err(Error::NotFound { .. }) if start.elapsed() < patience => {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

fn describe(c: &Config) -> String {
    if c.shutdown != 0 {
        return "shutdown".to_string();
    }
    format!(
        "generation {}: rate_limit={} log_level={} upstream={}",
        c.generation,
        c.rate_limit,
        c.log_level,
        c.upstream()
    )
}
