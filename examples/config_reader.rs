//! A service that follows the configuration `config_writer` publishes: it prints each new
//! configuration as it changes and exits when the writer removes it. It sleeps between
//! changes (a futex wait, no polling) and opens the region read-only, so it cannot corrupt it.
//! It may start before the writer: its open sleeps until the writer creates the region.
//!
//! `cargo run --example config_reader` (it waits up to a minute for the writer to appear).

use std::time::Duration;

use shmstore::{Error, Shm};

// Shared with config_writer, which uses the parts this reader does not.
#[allow(dead_code)]
#[path = "config.rs"]
mod config;
use config::{ServiceConfig, REGION};

fn main() -> Result<(), Error> {
    // Started first, it waits (inotify on /dev/shm, no polling) for the writer's region.
    let config = Shm::<ServiceConfig>::options()
        .wait_for_creation(Duration::from_secs(60))
        .open_reader(REGION)?;
    let mut seen = config.version();
    println!(
        "[reader] following `{REGION}` from version {seen}: {}",
        config.read().describe()
    );
    loop {
        // Sleeps until the writer publishes. Versions count commits, so a jump of more than
        // one means updates published while this process was not looking (the value read
        // holds the last of them), never lost ones.
        // The writer's removal of the region (unlink_on_drop) ends the wait with `Removed`.
        match config.wait_for_change(seen, None) {
            Ok(now) => {
                seen = now;
                println!("[reader] version {seen}: {}", config.read().describe());
            }
            Err(Error::Removed { .. }) => {
                println!("[reader] the writer removed `{REGION}`; done");
                return Ok(());
            }
            Err(other) => return Err(other),
        }
    }
}
