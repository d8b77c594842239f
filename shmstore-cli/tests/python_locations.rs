//! The Python reader (`examples/python/read_region.py`) takes a region's location as the
//! `shmstore` command does: a file region's path reads like `shmstore inspect PATH`, and a
//! System V key, which Python's standard library cannot attach, is refused with the command
//! that reads it.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use shmstore::{Location, Shm};

/// Runs the Python reader on `location`, or `None` when python3 is not installed.
fn read_region_py(location: &str) -> Option<Output> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/python/read_region.py");
    let child = match Command::new("python3")
        .arg(&script)
        .arg(location)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(_) => {
            eprintln!("note: python3 is not installed; skipping the Python reader test");
            return None;
        }
    };
    Some(wait_with_timeout(
        child,
        Duration::from_secs(30),
        "read_region.py",
    ))
}

#[test]
fn the_python_example_reads_a_file_region_like_inspect() {
    let dir = TempDir::new("python-file");
    let path = dir.join("state.shm");
    let shm = Shm::<Sample>::create(Location::path(&path), sample()).unwrap();
    shm.lock().unwrap().counter = 8;
    let location = path.to_str().unwrap();
    let Some(output) = read_region_py(location) else {
        return;
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "read_region.py failed on a file region:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let inspect = run(&["inspect", location]);
    inspect.ok();
    // Nothing changes the region meanwhile: the whole output is the same, header included.
    assert_eq!(stdout, inspect.stdout);
    assert!(stdout.contains("counter = 8"), "{stdout}");
    drop(shm);
    shmstore::unlink(&path).unwrap();
}

#[test]
fn the_python_example_says_how_to_read_a_system_v_segment_and_refuses_a_link() {
    let Some(output) = read_region_py("sysv:0x4c00c00d") else {
        return;
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("System V") && stderr.contains("shmstore inspect sysv:0x4c00c00d"),
        "{stderr}"
    );
    assert!(!stderr.contains("Traceback"), "{stderr}");

    // A symbolic link as the last component is refused, as the library refuses it.
    let dir = TempDir::new("python-link");
    let target = dir.join("state.shm");
    let shm = Shm::<Sample>::create(Location::path(&target), sample()).unwrap();
    let link = dir.join("link.shm");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let output = read_region_py(link.to_str().unwrap()).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("symbolic link"), "{stderr}");
    assert!(!stderr.contains("Traceback"), "{stderr}");
    drop(shm);
}
