//! A service that follows the configuration `config_writer` publishes: it prints each new
//! configuration as it changes and exits when the writer removes it. It sleeps between
//! changes (a futex wait, no polling) and opens the region read-only, so it cannot corrupt it.
//!
//! `cargo run --example config_reader` (it waits up to a minute for the writer to appear).

use std::time::{Duration, Instant};

use shmstore::{Error, Shm, ShmReader};

// Shared with config_writer, which uses the parts this reader does not.
#[allow(dead_code)]
#[path = "config.rs"]
mod config;
use config::{ServiceConfig, REGION};

fn main() -> Result<(), Error> {
    let config = wait_for_region(Duration::from_secs(60))?;
    let mut seen = config.version();
    println!(
        "[reader] following `{REGION}` from version {seen}: {}",
        config.read().describe()
    );
    loop {
        // Sleeps until the writer publishes. Versions count commits, so a jump of more than
        // one means updates published while this process was not looking (the value read
        // holds the last of them), never lost ones.
        match config.wait_for_change(seen, Some(Duration::from_secs(1))) {
            Ok(now) => {
                seen = now;
                println!("[reader] version {seen}: {}", config.read().describe());
            }
            // A quiet second: is the configuration still published? (This handle keeps the
            // removed region readable; the name is what the writer gives up.)
            Err(Error::Timeout { .. }) => {
                if config.is_removed()? {
                    println!("[reader] the writer removed `{REGION}`; done");
                    return Ok(());
                }
            }
            Err(other) => return Err(other),
        }
    }
}

/// Opens the region read-only, retrying while the writer has not created it yet.
fn wait_for_region(patience: Duration) -> Result<ShmReader<ServiceConfig>, Error> {
    let start = Instant::now();
    loop {
        match Shm::<ServiceConfig>::open_reader(REGION) {
            Err(Error::NotFound { .. }) if start.elapsed() < patience => {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}
