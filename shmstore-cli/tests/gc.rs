//! `shmstore gc` never removes a region in use, with real processes: a worker that inherited
//! its dead creator's mapping over `fork`, a process holding only a descriptor on the unnamed
//! (`O_TMPFILE`) object the region was linked from, a process whose main thread exited (its
//! `/proc/PID` looks like a zombie's), a creator that is a zombie (dead), and
//! gc run where `/proc` does not show every process: inside another PID namespace
//! (`unshare -p -f --mount-proc`) and under `hidepid` as another user.
//!
//! Every test holds [`whole_shm_lock`]: `gc` must not see another test's `list` as a user.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use shmstore::Shm;

#[test]
fn child_process_entry() {
    child_action();
}

/// `hold_object.c`, compiled into `dir` (which removes it when the test ends).
fn hold_object_program(dir: &TempDir) -> PathBuf {
    compile_c(
        &c_dir().join("hold_object.c"),
        dir.path(),
        &dir.path().join("hold_object"),
    )
    .unwrap_or_else(|errors| panic!("hold_object.c does not compile:\n{errors}"))
}

/// A process holding a region made by `hold_object.c`; it exits when this is dropped.
struct Holder {
    /// The process that holds the object (for `map-fork`, the forked worker).
    pid: u32,
    /// Closing it ends the holder.
    _stdin: ChildStdin,
    /// The process started (for `map-fork`, the creator, already reaped).
    child: Child,
}

impl Holder {
    /// Makes `target` from the bytes of the region `source` as a creator does (`O_TMPFILE`,
    /// then `linkat`) and holds it `how` (`fd` or `map-fork`, see `hold_object.c`).
    fn start(dir: &TempDir, source: &str, target: &str, how: &str) -> Holder {
        let mut child = Command::new(hold_object_program(dir))
            .arg(Path::new(SHM_DIR).join(source))
            .arg(Path::new(SHM_DIR).join(target))
            .arg(how)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        if how == "map-fork" {
            // The creator exits right after the fork; reaping it makes its pid dead.
            let status = wait_status(&mut child, Duration::from_secs(30), "hold_object");
            assert!(status.success(), "hold_object {how} failed: {status}");
        }
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let pid = line
            .strip_prefix("ready ")
            .and_then(|pid| pid.trim().parse().ok())
            .unwrap_or_else(|| panic!("hold_object {how} did not get ready: {line:?}"));
        Holder {
            pid,
            _stdin: stdin,
            child,
        }
    }

    /// Ends the holding process and waits until it is gone (or a zombie).
    fn stop(self) {
        let Holder {
            pid,
            _stdin,
            mut child,
        } = self;
        drop(_stdin);
        let _ = child.wait();
        wait_until(|| !running(pid), "the holder to exit");
    }
}

/// Whether `pid` is a process that has not exited (neither gone nor a zombie).
fn running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
    !matches!(state.and_then(|s| s.chars().next()), Some('Z' | 'X'))
}

/// Waits for `condition`, at most 30 seconds: only a hang fails, never slowness.
fn wait_until(condition: impl Fn() -> bool, what: &str) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "waited 30 s for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `shmstore gc --verbose --ignore-unreadable PREFIX`: some processes are unreadable even to
/// root (a sandbox's init). Where `/proc` does not show every process (a test run inside a
/// container), again with `--ignore-hidden-processes`: these tests' processes are all visible.
fn gc(prefix: &str) -> Ran {
    let ran = run(&["gc", "--verbose", "--ignore-unreadable", prefix]);
    if ran.stdout.contains("--ignore-hidden-processes") {
        return run(&[
            "gc",
            "--verbose",
            "--ignore-unreadable",
            "--ignore-hidden-processes",
            prefix,
        ]);
    }
    ran
}

/// A region `source` whose creator is dead, to copy from.
fn dead_region() -> (String, Place) {
    let (source, place) = region("gc-source");
    run_child(&format!("create {source}"));
    (source, place)
}

/// A region made from a dead creator's region and held `how` by a [`Holder`] (the source's
/// name is gone): its name, the holder, and the guards of the region and of the directory of
/// `hold_object`.
fn held_copy_of_a_dead_region(tag: &str, how: &str) -> (String, Holder, (Place, TempDir)) {
    let (source, _source) = dead_region();
    let (region, guard) = region(tag);
    let dir = TempDir::new(tag);
    let holder = Holder::start(&dir, &source, &region, how);
    std::fs::remove_file(Path::new(SHM_DIR).join(&source)).unwrap();
    (region, holder, (guard, dir))
}

/// Runs [`gc`] on `target` and checks that it succeeds and that its output contains `expected`.
fn assert_gc_says(target: &str, expected: &str) {
    let ran = gc(target);
    ran.ok();
    assert!(ran.stdout.contains(expected), "{}", ran.stdout);
}

/// Runs `command` (stdin closed, stdout and stderr captured) for at most 30 seconds.
fn run_command(mut command: Command, what: &str) -> Ran {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what} (unshare is in util-linux): {e}"));
    Ran::from((
        what.to_string(),
        wait_with_timeout(child, Duration::from_secs(30), what),
    ))
}

#[test]
fn a_worker_forked_by_a_dead_creator_keeps_the_region() {
    let _scan = whole_shm_lock();
    let (region, worker, _guards) = held_copy_of_a_dead_region("gc-fork", "map-fork");

    // The worker's mapping shows as `/dev/shm/#INODE (deleted)`: only the inode says it is
    // this region's.
    assert_gc_says(
        &region,
        &format!("kept {region}: in use by pid {}", worker.pid),
    );
    assert!(exists(&region), "gc removed a region a worker maps");

    worker.stop();
    assert_gc_says(&region, &format!("removed {region}: its creator, pid "));
    assert!(!exists(&region));
}

#[test]
fn a_descriptor_on_the_unnamed_object_keeps_the_region() {
    let _scan = whole_shm_lock();
    // Holds only the descriptor it created the object with, as a creator does before it maps;
    // the header names the dead creator of the source.
    let (region, holder, _guards) = held_copy_of_a_dead_region("gc-fd", "fd");

    assert_gc_says(
        &region,
        &format!("kept {region}: in use by pid {}", holder.pid),
    );
    assert!(exists(&region), "gc removed a region a process holds open");

    holder.stop();
    assert_gc_says(&region, &format!("removed {region}: "));
}

#[test]
fn a_process_whose_main_thread_exited_keeps_the_region() {
    let _scan = whole_shm_lock();
    // Maps the region from a thread that outlives the main thread: /proc/PID then shows a
    // zombie with empty maps, though the process lives and maps the region.
    let (region, holder, _guards) = held_copy_of_a_dead_region("gc-thread", "map-thread");
    wait_until(|| !running(holder.pid), "the main thread to exit");

    assert_gc_says(
        &region,
        &format!("kept {region}: in use by pid {}", holder.pid),
    );
    assert!(exists(&region), "gc removed a region a live thread maps");
    holder.stop();
}

#[test]
fn a_zombie_creator_is_dead() {
    let _scan = whole_shm_lock();
    let (region, _region) = region("gc-zombie");
    // The creator exits but is not reaped until the end: a zombie, with no mapping left.
    let mut creator = Command::new(std::env::current_exe().unwrap())
        .args(["child_process_entry", "--exact", "--test-threads=1"])
        .env(CHILD_ENV, format!("create {region}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = creator.id();
    wait_until(|| !running(pid), "the creator to exit");
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "the creator was reaped"
    );

    let said = std::panic::catch_unwind(|| {
        assert_gc_says(
            &region,
            &format!("removed {region}: its creator, pid {pid}, is dead and no process uses it"),
        )
    });
    let _ = creator.wait();
    said.unwrap();
    assert!(!exists(&region));
}

#[test]
fn gc_in_another_pid_namespace_removes_nothing_unless_told() {
    if !is_root() {
        eprintln!("skipped: unshare -p needs root");
        return;
    }
    let _scan = whole_shm_lock();
    let (region, _region) = dead_region();
    // This process maps the region, and is not in the namespace's /proc.
    let _mapping = Shm::<Sample>::open(&region).unwrap();

    let in_namespace = |flags: &[&str]| {
        let mut args = vec![
            "-p",
            "-f",
            "--mount-proc",
            env!("CARGO_BIN_EXE_shmstore"),
            "gc",
            "--verbose",
            "--ignore-unreadable",
        ];
        args.extend_from_slice(flags);
        args.push(&region);
        let mut unshare = Command::new("unshare");
        unshare.args(&args);
        run_command(unshare, &format!("unshare {}", args.join(" ")))
    };

    let ran = in_namespace(&[]);
    ran.ok();
    assert!(
        ran.stdout.contains(
            "gc: kept 1 abandoned-looking region because /proc may not show every process: \
             it runs in a PID namespace other than the host's"
        ),
        "{}\n{}",
        ran.stdout,
        ran.stderr
    );
    assert!(ran.stdout.contains("--ignore-hidden-processes"));
    assert!(
        exists(&region),
        "gc in a PID namespace removed a region in use"
    );

    // Told to, it trusts what it sees (here wrongly: this process maps the region).
    let ran = in_namespace(&["--ignore-hidden-processes"]);
    ran.ok();
    assert!(
        ran.stdout.contains(&format!("removed {region}: ")),
        "{}",
        ran.stdout
    );
    assert!(ran
        .stdout
        .contains("gc: --ignore-hidden-processes: /proc may not show every process"));
}

#[test]
fn gc_under_hidepid_removes_nothing() {
    if !is_root() {
        eprintln!("skipped: mounting /proc and changing uid need root");
        return;
    }
    let _scan = whole_shm_lock();
    let (region, _region) = dead_region();
    let path = Path::new(SHM_DIR).join(&region);
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    // This root process holds it open, and is hidden from uid 65534 by hidepid.
    let _open = std::fs::File::open(&path).unwrap();

    // A /proc of its own in a private mount namespace, so the host's /proc is left as it is.
    let script = r#"mount -t proc -o hidepid=2 proc /proc &&
        exec setpriv --reuid=65534 --regid=65534 --clear-groups \
            "$0" gc --verbose --ignore-unreadable "$1""#;
    let mut unshare = Command::new("unshare");
    unshare.args([
        "-m",
        "sh",
        "-c",
        script,
        env!("CARGO_BIN_EXE_shmstore"),
        &region,
    ]);
    let ran = run_command(unshare, &format!("unshare -m sh -c {script:?}"));
    ran.ok();
    assert!(
        ran.stdout.contains(
            "gc: kept 1 abandoned-looking region because /proc may not show every process: \
             /proc is mounted with hidepid="
        ),
        "{}\n{}",
        ran.stdout,
        ran.stderr
    );
    assert!(exists(&region), "gc under hidepid removed a region in use");
}

#[test]
fn the_help_says_why_gc_refuses_where_it_cannot_see_every_process() {
    let ran = run(&["gc", "--help"]);
    ran.ok();
    let help = ran.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in [
        "--ignore-hidden-processes",
        "PID namespace other than the host's",
        "hidepid",
        "Without it, gc then removes nothing",
    ] {
        assert!(help.contains(needle), "no {needle:?} in\n{}", ran.stdout);
    }
}

#[test]
fn root_is_not_told_to_run_as_root() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let _scan = whole_shm_lock();
    let (region, _region) = dead_region();
    let ran = run(&["gc", "--dry-run", &region]);
    ran.ok();
    assert!(
        !ran.stdout.contains("run as root") && !ran.stdout.contains("run gc as root"),
        "{}",
        ran.stdout
    );
}
