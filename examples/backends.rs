//! The three places a region can live, with the same API: a POSIX name (the default), a file
//! that outlives reboots, and a System V segment that C programs open with `ftok` + `shmget`.
//!
//! `cargo run --example backends` — run it twice: the file-backed visit counter goes on from
//! where the last run left it (it would after a reboot too). Each run also shares a value with
//! a child process through a System V segment keyed by `ftok` of that file, and removes the
//! segment at the end. Pass a path to keep the counter elsewhere
//! (`cargo run --example backends -- /var/tmp/visits.shm`).

use std::process::Command;

use shmstore::{Location, Shm, ShmType};

#[derive(ShmType, Clone, Copy, Debug, Default)]
#[repr(C)]
struct Visits {
    count: u64,
    last_pid: u32,
    _pad: u32,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    if let Some("child") = args.next().as_deref() {
        return child(args.next().expect("key").parse()?);
    }
    let path = match std::env::args().nth(1) {
        Some(path) => path.into(),
        None => std::env::temp_dir().join("shmstore-example-visits.shm"),
    };

    // 1. A file: the value persists in the file; the first opener after a reboot resets the
    //    lock (a lock word from the previous boot means nothing) and keeps the value.
    let visits = Shm::<Visits>::open_or_create(Location::path(&path), Visits::default)?;
    let now = {
        let mut v = visits
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        v.count += 1;
        v.last_pid = std::process::id();
        *v
    };
    visits.flush()?; // msync: on disk now, not only in the page cache
    println!("[file]  {}: visit number {}", path.display(), now.count);

    // 2. A System V segment, keyed as a C program would key it: ftok(path, 1).
    let key = shmstore::ftok(&path, 1)?;
    let shared = Shm::<Visits>::options()
        .unlink_on_drop(true) // IPC_RMID when this handle goes
        .create(Location::sysv(key), now)?;
    println!("[sysv]  created {} (ftok of the file, id 1)", shared.name());
    let status = Command::new(std::env::current_exe()?)
        .args(["child", &key.to_string()])
        .status()?;
    assert!(status.success(), "the child failed: {status}");
    let seen = shared.read();
    println!(
        "[sysv]  the child (pid {}) made it {}; `shmstore list` shows such segments as sysv:…",
        seen.last_pid, seen.count
    );

    // 3. A POSIX name, for comparison: the fastest to open, gone at reboot.
    let name = format!("example-backends-{}", std::process::id());
    let posix = Shm::<Visits>::options()
        .unlink_on_drop(true)
        .create(&name, seen)?;
    println!(
        "[posix] /dev/shm/{} holds count {}",
        posix.name(),
        posix.read().count
    );
    println!("run again: the file's count goes on from {}", now.count);
    assert_eq!(visits.location(), &Location::File(path));
    Ok(())
}

/// Opens the parent's segment by key and adds 1000.
fn child(key: i32) -> Result<(), Box<dyn std::error::Error>> {
    let shared = Shm::<Visits>::open(Location::sysv(key))?;
    let mut v = shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    v.count += 1000;
    v.last_pid = std::process::id();
    Ok(())
}
