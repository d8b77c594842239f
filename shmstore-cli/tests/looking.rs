//! Looking never crashes or hangs (issue 13, point 3): `list`, `watch` and the other commands
//! that look at regions survive other processes shrinking objects, swapping them for links to
//! FIFOs, and holding regions "initialising"; the work per object is bounded. And `list` shows
//! a System V segment's creator beside its owner (point 2).
//!
//! The commands run as child processes: their exit status shows a SIGBUS or a hang.

mod common;

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use serde_json::Value;
use shmstore::Shm;

#[test]
fn child_process_entry() {
    child_action();
}

/// How many regions a test holds "initialising" at once.
const HELD: usize = 20;

/// Bug: `list` waited the one-second open timeout for each region being initialised.
///
/// Each region held initialising used to cost `list` the library's one-second open timeout:
/// twenty of them took twenty seconds. `list` no longer waits for any of them, so it finishes
/// well within ten seconds (the bound is half of what the old code needed at the very least,
/// not a performance target).
#[test]
fn regression_list_waited_a_second_for_each_region_being_initialised() {
    let _lock = whole_shm_lock();
    let (names, _places): (Vec<String>, Vec<Place>) =
        (0..HELD).map(|_| region("initialising")).unzip();
    let (entered_tx, entered) = mpsc::channel();
    let mut releases = Vec::new();
    std::thread::scope(|s| {
        for name in &names {
            let (release, wait) = mpsc::channel::<()>();
            releases.push(release);
            let entered_tx = entered_tx.clone();
            s.spawn(move || {
                // The region stays "initialising", its initialiser lock held, until released.
                Shm::<u64>::open_or_create(name, || {
                    entered_tx.send(()).unwrap();
                    let _ = wait.recv();
                    1
                })
                .unwrap();
            });
        }
        let listed = std::panic::catch_unwind(|| {
            for _ in 0..HELD {
                entered.recv_timeout(Duration::from_secs(30)).unwrap();
            }
            let child = shmstore()
                .args(["list", "--json"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            wait_with_timeout(child, Duration::from_secs(10), "shmstore list --json")
        });
        // Lets every creator finish, also when the listing failed (the scope waits for them).
        releases.clear();
        let output = listed.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let ran = Ran::from(("shmstore list --json".to_string(), output));
        ran.ok();
        let rows: Vec<Value> = serde_json::from_str(&ran.stdout).unwrap();
        for name in &names {
            let row = rows
                .iter()
                .find(|r| r["name"] == name.as_str())
                .unwrap_or_else(|| panic!("{name} is not listed"));
            assert_eq!(row["kind"], "initialising", "{row}");
        }
    });
}

/// The largest descriptor a header may claim (16 MiB).
const HUGE_DESCRIPTOR: u64 = 16 << 20;

/// Turns the `Shm<u64>` region `name` (default mode) into a sparse one whose header claims a
/// 16 MiB type descriptor, consistent with the rest of its header (FORMAT.md offsets).
fn forge_huge_descriptor(name: &str) {
    let file = OpenOptions::new()
        .write(true)
        .open(Path::new(SHM_DIR).join(name))
        .unwrap();
    let payload_offset = 256 + HUGE_DESCRIPTOR;
    let region_size = payload_offset + 64 + 8;
    file.set_len(region_size).unwrap();
    for (offset, value) in [
        (32, payload_offset),
        (56, region_size),
        (72, HUGE_DESCRIPTOR),
    ] {
        file.write_all_at(&value.to_ne_bytes(), offset).unwrap();
    }
}

/// Bug: `list` read every huge descriptor whole.
///
/// Fifty regions whose headers claim 16 MiB descriptors: `list` does not read them (it used
/// to read every one whole), and says why it shows them as unreadable.
#[test]
fn regression_list_read_every_huge_descriptor_whole() {
    let _lock = whole_shm_lock();
    let (names, _places): (Vec<String>, Vec<Place>) = (0..50).map(|_| region("huge")).unzip();
    for name in &names {
        drop(Shm::<u64>::create(name, 1).unwrap());
        forge_huge_descriptor(name);
    }
    let ran = run(&["list", "--json"]);
    ran.ok();
    let rows: Vec<Value> = serde_json::from_str(&ran.stdout).unwrap();
    for name in &names {
        let row = rows
            .iter()
            .find(|r| r["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} is not listed"));
        assert_eq!(row["kind"], "unreadable", "{row}");
        let note = row["note"].as_str().unwrap();
        assert!(note.contains("more than a listing reads"), "{row}");
    }
    // `inspect` reads it whole when asked about it alone.
    run(&["inspect", &names[0]]).expect_failure("shmstore: region");
}

/// Bug: `watch` mapped the region and died of SIGBUS once another process truncated it.
///
/// `watch` used to map the region: once another process truncated it, the next look at the
/// version killed `watch` with SIGBUS. It reads with `pread` now and stops with a message.
#[test]
fn regression_sigbus_in_watch_when_a_peer_truncates_the_region() {
    let (name, _cleanup) = region("watch-shrink");
    // Made by a child that exits: this process maps nothing that the truncation could fault.
    run_child(&format!("create {name}"));
    let Watch {
        mut child, first, ..
    } = start_watch(&["watch", &name]);
    assert!(first.starts_with("watching "), "{first:?}");
    OpenOptions::new()
        .write(true)
        .open(Path::new(SHM_DIR).join(&name))
        .unwrap()
        .set_len(0)
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let status = wait_status(&mut child, Duration::from_secs(30), "shmstore watch");
    let mut message = String::new();
    stderr.read_to_string(&mut message).unwrap();
    assert_eq!(
        (status.code(), status.signal()),
        (Some(1), None),
        "watch must fail with a message, not a signal (7 is SIGBUS): {message}"
    );
    assert!(message.contains("shrank"), "{message}");
}

/// How many times the churn test runs `list`.
const LISTS: usize = 40;

/// Bug: `list` died of SIGBUS on a shrunk region and blocked on a region swapped for a FIFO.
///
/// A peer that, until told to stop, truncates one region and writes it back, and replaces
/// another region's name with a symbolic link to a FIFO and back. `list` used to die of
/// SIGBUS in the first case (it mapped every region) and to block for ever in the second
/// (`lstat` saw a file, then a plain `open` followed the new link to the FIFO and waited for a
/// writer).
#[test]
fn regression_sigbus_or_hang_in_list_when_objects_shrink_or_turn_into_fifos() {
    let _lock = whole_shm_lock();
    let (shrinking, _shrinking) = region("shrinking");
    let (swapped, _swapped) = region("swapped");
    let (staging, _staging) = region("staging");
    let (link, _link) = region("link");
    let (fifo, _fifo) = region("fifo");
    run_child(&format!("create {shrinking}"));
    let shm_dir = Path::new(SHM_DIR);
    let bytes = std::fs::read(shm_dir.join(&shrinking)).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(shm_dir.join(&fifo))
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo failed");
    std::fs::write(shm_dir.join(&swapped), &bytes).unwrap();

    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = OpenOptions::new()
                .write(true)
                .open(shm_dir.join(&shrinking))
                .unwrap();
            while !stop.load(Ordering::Relaxed) {
                file.set_len(0).unwrap();
                file.set_len(bytes.len() as u64).unwrap();
                file.write_all_at(&bytes, 0).unwrap();
                std::fs::write(shm_dir.join(&staging), &bytes).unwrap();
                std::fs::rename(shm_dir.join(&staging), shm_dir.join(&swapped)).unwrap();
                let _ = std::fs::remove_file(shm_dir.join(&link));
                std::os::unix::fs::symlink(shm_dir.join(&fifo), shm_dir.join(&link)).unwrap();
                std::fs::rename(shm_dir.join(&link), shm_dir.join(&swapped)).unwrap();
            }
        });
        let outcome = std::panic::catch_unwind(|| {
            for _ in 0..LISTS {
                let child = shmstore()
                    .args(["list"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap();
                let output = wait_with_timeout(child, Duration::from_secs(30), "shmstore list");
                Ran::from(("shmstore list".to_string(), output)).ok();
            }
        });
        stop.store(true, Ordering::Relaxed);
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    });
}

/// `list` shows who created a System V segment (`cuid`, which `IPC_SET` cannot change)
/// beside its owner, in the table and in the JSON.
#[test]
fn list_shows_the_creator_of_a_segment() {
    let _lock = whole_shm_lock();
    let (_shm, segment) = sysv_region(sample());
    let location = segment.to_string();
    let ran = run(&["list", "--json"]);
    ran.ok();
    let rows: Vec<Value> = serde_json::from_str(&ran.stdout).unwrap();
    let row = rows
        .iter()
        .find(|r| r["name"] == location.as_str())
        .unwrap_or_else(|| panic!("{location} is not listed: {}", ran.stdout));
    // This process (root in CI, or whoever runs the tests) created it.
    assert_eq!(row["creator_uid"], row["uid"], "{row}");
    assert_eq!(row["created_by"], row["owner"], "{row}");
    let text = run(&["list"]);
    text.ok();
    let header = text.stdout.lines().next().unwrap();
    assert!(
        header.contains("OWNER") && header.contains("CREATED BY"),
        "{header}"
    );
    let line = text
        .stdout
        .lines()
        .find(|l| l.starts_with(location.as_str()))
        .unwrap();
    let owner = row["owner"].as_str().unwrap();
    assert!(
        line.trim_end().ends_with(&format!("{owner}  {owner}"))
            || line.split_whitespace().rev().take(2).all(|w| w == owner),
        "{line}"
    );
}
