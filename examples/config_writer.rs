//! A configuration service: publishes a new configuration every half second, then removes the
//! region. Run `cargo run --example config_reader` in another terminal (before or after), then
//! `cargo run --example config_writer`.
//!
//! Each update is one locked write: readers see the whole new configuration or the old one,
//! never a mix, and are woken the moment it is published (`notify_readers`), without polling.
//! The fields are shmstore's value types (text, a list, flags, an enum, an optional limit, a
//! timestamp): `shmstore inspect shmstore-example.config` shows them too.

use std::time::Duration;

use shmstore::value::{Timestamp, ValueError};
use shmstore::Shm;

#[path = "config.rs"]
mod config;
use config::{LogLevel, ServiceConfig, REGION};

/// One update: what an operator changes between two configurations.
type Update = fn(&mut ServiceConfig) -> Result<(), ValueError>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let updates: &[(&str, Update)] = &[
        ("rate 100/s", |c| {
            c.rate = 100.0;
            Ok(())
        }),
        ("a second upstream, TLS on", |c| {
            c.upstream_ports.push(8081)?;
            c.tls.set(true);
            Ok(())
        }),
        ("debug logs, at most 500 requests in flight", |c| {
            c.log_level.set(LogLevel::Debug);
            c.request_limit.set(Some(500));
            Ok(())
        }),
        ("moved to backend.internal:9000, in maintenance", |c| {
            c.hostname.set("backend.internal")?;
            c.upstream_ports.clear();
            c.upstream_ports.push(9000)?;
            c.maintenance.set(true);
            Ok(())
        }),
    ];
    // Readers may be waiting for the name already; notify_readers wakes read-only handles,
    // and mode 0o644 lets services running as other users read it.
    let initial = ServiceConfig::initial()?;
    let config = Shm::<ServiceConfig>::options()
        .mode(0o644)
        .notify_readers(true)
        .open_or_create(REGION, || initial)?;
    println!("[writer] serving `{REGION}`: {}", config.read().describe());
    for (what, update) in updates {
        std::thread::sleep(Duration::from_millis(500));
        let mut g = config
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Work on a copy and publish it whole: an update that fails (a name too long, a list
        // full) returns before the guard is written, and an unwritten guard publishes nothing.
        let mut next = *g;
        update(&mut next)?;
        next.updated_at = Timestamp::now();
        *g = next;
        drop(g);
        println!("[writer] version {}: {what}", config.version());
    }
    std::thread::sleep(Duration::from_millis(500));
    println!("[writer] done; removing `{REGION}` (readers notice and exit)");
    shmstore::unlink(REGION)?;
    Ok(())
}
