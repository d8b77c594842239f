//! The consuming half of a job channel between processes (variable-length jobs through a
//! `ShmChannel`, read in place). Run it in one terminal:
//!
//! ```text
//! cargo run --release --example consumer
//! ```
//!
//! and `cargo run --release --example producer` in another. It prints progress, checks that
//! every job arrives whole and in order, and exits when the producer closes the channel. (The
//! producer, run alone, starts its own consumer process.)

#[path = "jobs.rs"]
mod jobs;

fn main() -> shmstore::Result<()> {
    jobs::consume("consumer")
}
