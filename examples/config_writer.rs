//! A configuration service: publishes a new configuration every half second, then tells
//! readers to stop. Run `cargo run --example config_reader` in another terminal (before or
//! after), then `cargo run --example config_writer`.
//!
//! Each update is one locked write: readers see the whole new configuration or the old one,
//! never a mix, and are woken the moment it is published (`notify_readers`), without polling.

use std::time::Duration;

use shmstore::Shm;

#[path = "config.rs"]
mod config;
use config::{Config, REGION};

fn main() -> Result<(), shmstore::Error> {
    let updates: &[(u32, u32, &str)] = &[
        (100, 2, "10.0.0.1:8080"),
        (250, 2, "10.0.0.1:8080"),
        (250, 4, "10.0.0.2:8080"),
        (500, 1, "backend.internal:9000"),
    ];
    // Readers may be waiting for the name already; notify_readers wakes read-only handles,
    // and mode 0o644 lets services running as other users read it.
    let config = Shm::<Config>::options()
        .mode(0o644)
        .notify_readers(true)
        .open_or_create(REGION, || Config::new(1, 50, 2, "localhost:8080"))?;
    println!("[writer] serving `{REGION}`: {}", brief(&config.read()));
    for &(rate, level, upstream) in updates {
        std::thread::sleep(Duration::from_millis(500));
        let mut g = config
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *g = Config::new(g.generation + 1, rate, level, upstream);
        println!("[writer] published {}", brief(&g));
    }
    std::thread::sleep(Duration::from_millis(500));
    config.lock().unwrap_or_else(|p| p.into_inner()).shutdown = 1;
    println!("[writer] told readers to stop; removing `{REGION}`");
    shmstore::unlink(REGION)
}

fn brief(c: &Config) -> String {
    format!(
        "generation {} rate_limit {} log_level {} upstream {}",
        c.generation,
        c.rate_limit,
        c.log_level,
        c.upstream()
    )
}
