//! The three backends side by side, in one process: `cargo bench -p shmstore --bench backends`.
//!
//! Per backend (a POSIX name in `/dev/shm`, a file in the system's temporary directory, a
//! System V segment): opening an existing 4 KiB region and dropping the handle; an uncontended
//! lock, 64-byte write and commit; a 64-byte `read`. For the file, also `flush` after one
//! commit (`msync(MS_SYNC)` of the dirty pages: what durability costs on this disk).

mod common;

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use common::bench_name;
use criterion::Criterion;
use shmstore::{Location, Shm};

type Page = [u8; 4096];
type Line = [u64; 8];

/// Removes the benchmark's regions and files when dropped, also when a benchmark panics.
struct Places(Vec<Location>);

impl Drop for Places {
    fn drop(&mut self) {
        for location in &self.0 {
            let _ = shmstore::unlink(location.clone());
        }
    }
}

/// The three locations of one benchmark region; `n` tells this process's keys apart.
fn places(what: &str, n: i32) -> Vec<(&'static str, Location)> {
    let pid = std::process::id();
    let file: PathBuf = std::env::temp_dir().join(format!("{}.shm", bench_name(what)));
    let key = 0x5b00_0000 | ((pid as i32 & 0xfff) << 12) | n;
    vec![
        ("posix", Location::Named(bench_name(what))),
        ("file", Location::File(file)),
        ("sysv", Location::SysV(key)),
    ]
}

fn benches(c: &mut Criterion) {
    let pages = places("backends-page", 1);
    let _cleanup_pages = Places(pages.iter().map(|(_, l)| l.clone()).collect());
    let lines = places("backends-line", 2);
    let _cleanup_lines = Places(lines.iter().map(|(_, l)| l.clone()).collect());

    let mut g = c.benchmark_group("open existing 4 KiB region + drop");
    g.measurement_time(Duration::from_secs(3)).sample_size(30);
    for (backend, location) in &pages {
        let _keep = Shm::<Page>::create(location.clone(), [1; 4096]).unwrap();
        g.bench_function(*backend, |b| {
            b.iter(|| drop(black_box(Shm::<Page>::open(location.clone()).unwrap())))
        });
    }
    g.finish();

    let handles: Vec<(&str, Shm<Line>)> = lines
        .iter()
        .map(|(backend, location)| {
            let shm = Shm::<Line>::create(location.clone(), [0; 8]).unwrap();
            (*backend, shm)
        })
        .collect();

    let mut g = c.benchmark_group("lock + write 64 B + commit");
    g.measurement_time(Duration::from_secs(3));
    for (backend, shm) in &handles {
        g.bench_function(*backend, |b| {
            let mut n = 0u64;
            b.iter(|| {
                n += 1;
                *shm.lock().unwrap() = [black_box(n); 8];
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("read 64 B");
    g.measurement_time(Duration::from_secs(3));
    for (backend, shm) in &handles {
        g.bench_function(*backend, |b| b.iter(|| black_box(shm.read())));
    }
    g.finish();

    let mut g = c.benchmark_group("commit + flush (file)");
    g.measurement_time(Duration::from_secs(5)).sample_size(20);
    let (_, file) = &handles[1];
    g.bench_function("file", |b| {
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            *file.lock().unwrap() = [n; 8];
            file.flush().unwrap();
        })
    });
    g.finish();
}

fn main() {
    common::start_second_thread();
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
}
