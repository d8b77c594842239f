//! Repairers that race, and die, while a reader's read lock keeps them from repairing an
//! abandoned region in place (issue 13, points 4 and 9).
//!
//! A repairer then builds a new region and renames it over the abandoned one. Only one
//! repairer may do that for a given object (a claim in the object's header); one that dies
//! anywhere in the repair leaves a state the next opener repairs, and never two regions: a
//! region in use under a hidden name while a second one is built under the real name.
//!
//! The repairer dies exactly where it matters through an `LD_PRELOAD` shim
//! (`tests/shims/at_rename.c`, compiled with `cc` by the test) that stops or SIGKILLs it at
//! its `renameat2`. The hostile reader is `shm-helper readonly-lock` (uid 65534), as in
//! `tests/readonly_peer.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use shmstore::{Error, Shm};
use shmstore_tests::{
    assert_killed, helper, is_root, lock_as_reader, release_reader, Backend, Counter, Place,
    TempDir, PATIENCE,
};

/// How an abandoned region came to be.
#[derive(Debug, Clone, Copy)]
enum Abandoned {
    /// An empty object, as a creator that died before sizing it leaves.
    Empty,
    /// A header in state "initialising": the creator was killed in its `init`.
    DiedInInit,
}

/// Builds `tests/shims/at_rename.c` into a shared object in `dir` with `cc -shared -fPIC`.
fn build_shim(dir: &TempDir) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("shims/at_rename.c");
    let out = dir.join("at_rename.so");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("cannot run cc (install a C compiler): {e}"));
    assert!(status.success(), "cc failed to build {}", src.display());
    out
}

/// Makes an abandoned region of this user's at `place`, with mode 0644 (uid 65534 may read).
fn abandon(place: &Place, how: Abandoned) {
    use std::os::unix::fs::PermissionsExt;
    let path = place.path().unwrap();
    match how {
        Abandoned::Empty => drop(std::fs::File::create(&path).unwrap()),
        Abandoned::DiedInInit => {
            let mut creator = helper!("create-and-die-in-init", place);
            creator.expect("in-init");
            creator.kill();
        }
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

/// The hidden temporary names next to the region's (`.NAME.shmstore-…`): what a repairer
/// killed between naming its new region and renaming it leaves. Removed when dropped, so
/// that a failing test leaves nothing behind either.
struct Hidden {
    dir: PathBuf,
    stem: String,
}

impl Hidden {
    fn of(place: &Place) -> Hidden {
        let path = place.path().unwrap();
        Hidden {
            dir: path.parent().unwrap().to_path_buf(),
            stem: format!(".{}.shmstore-", path.file_name().unwrap().to_string_lossy()),
        }
    }

    fn list(&self) -> Vec<PathBuf> {
        std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(&self.stem))
            .map(|e| e.path())
            .collect()
    }
}

impl Drop for Hidden {
    fn drop(&mut self) {
        for path in self.list() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Waits until the process `pid` is stopped (state `T` in `/proc/PID/stat`).
fn wait_until_stopped(pid: u32) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The state follows the command name, which ends with the last ')'.
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next());
        if state == Some("T") {
            return;
        }
        assert!(Instant::now() < deadline, "pid {pid} never stopped");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `open_or_create` as the test's own repairer does it: a `Counter` of 9, mode 0644.
fn repair(place: &Place) -> shmstore::Result<Shm<Counter>> {
    Shm::<Counter>::options()
        .mode(0o644)
        .open_timeout(PATIENCE)
        .open_or_create(place.location(), || Counter::at(9))
}

/// The region `shm` is the one under the name, for every opener.
fn is_the_named_region(place: &Place, shm: &Shm<Counter>, what: &str) {
    let again = Shm::<Counter>::options()
        .open_timeout(Duration::from_secs(3))
        .open(place.location())
        .unwrap_or_else(|e| panic!("{what}: the name holds no region: {e}"));
    *again.lock().unwrap() = Counter::at(10);
    assert_eq!(
        shm.read(),
        Counter::at(10),
        "{what}: the repaired region is not the one under the name"
    );
}

/// Runs `case` once per way a region can be abandoned, each on a fresh place of `backend`
/// with the hostile reader holding its locks on it (released after `case`), with the repair
/// shim built: `case(what, place, hidden, shim)`, `what` naming the case in messages. Needs
/// root (the reader drops to uid 65534); skipped otherwise.
fn each_abandoned_region_beside_a_reader(
    backend: Backend,
    tag: &str,
    case: impl Fn(&str, &Place, &Hidden, &Path),
) {
    if !is_root() {
        eprintln!("skipped: setuid needs root");
        return;
    }
    let shims = TempDir::new("repair-shim");
    let shim = build_shim(&shims);
    for how in [Abandoned::Empty, Abandoned::DiedInInit] {
        let place = Place::new(backend, tag);
        let hidden = Hidden::of(&place);
        abandon(&place, how);
        let reader = lock_as_reader!(&place, "sh");
        case(&format!("{backend:?} {how:?}"), &place, &hidden, &shim);
        release_reader(reader);
    }
}

/// Bug: a stopped repairer's late rename hid the region another repairer had swapped in.
///
/// Repairer A claims the repair and stops right before its rename; repairer B (this process)
/// comes to the same abandoned object meanwhile. Then A renames its new region in and is
/// killed before it initialises it. B must end with the region under the name. The old code
/// let B swap its own region in while A was stopped, and A's late swap then hid B's region
/// (split brain: B wrote a region nobody could find).
fn regression_split_brain_when_a_stopped_repairer_renamed_late(backend: Backend) {
    each_abandoned_region_beside_a_reader(backend, "repair-race", |what, place, hidden, shim| {
        let a = helper!("repair-at-rename", shim.display(), place, "stop-kill");
        wait_until_stopped(a.pid().as_raw() as u32);

        let (done, result) = mpsc::channel();
        let b = std::thread::scope(|scope| {
            scope.spawn(|| {
                let _ = done.send(repair(place));
            });
            // B either finishes while A is stopped (the old code) or waits for A's claim
            // (it never finishes before A goes on): either way A goes on after this.
            let early = result.recv_timeout(Duration::from_secs(1)).ok();
            let _ = kill(a.pid(), Signal::SIGCONT);
            let (status, lines) = a.finish();
            assert_killed(status, &lines);
            early.unwrap_or_else(|| result.recv().expect("B's result"))
        });
        let shm = b.unwrap_or_else(|e| panic!("{what}: B: {e}"));
        is_the_named_region(place, &shm, what);
        assert_eq!(hidden.list(), Vec::<PathBuf>::new(), "{what}: left behind");
    });
}

/// A repairer killed after it claimed the repair and before its rename leaves the abandoned
/// object under the name with a dead claimant: the next repairer takes the claim over and
/// repairs it, beside the reader's lock.
fn a_repair_claimed_by_a_killed_repairer_is_taken_over(backend: Backend) {
    each_abandoned_region_beside_a_reader(backend, "repair-claim", |what, place, hidden, shim| {
        let a = helper!("repair-at-rename", shim.display(), place, "kill");
        let (status, lines) = a.finish();
        assert_killed(status, &lines);
        // Still abandoned: `open` says so, and does not wait for a dead repairer.
        let opened = Shm::<Counter>::open(place.location()).map(drop);
        assert!(
            matches!(opened, Err(Error::Incomplete { .. })),
            "{what}: {opened:?}"
        );

        let shm = repair(place).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(shm.read(), Counter::at(9));
        is_the_named_region(place, &shm, what);
        // The killed repairer's new region, named but never renamed, is all it left.
        assert!(hidden.list().len() <= 1, "{what}: {:?}", hidden.list());
    });
}

// ---- every backend behind a descriptor (the matrix) ----

/// Why the System V backend cannot run these scenarios.
const REPAIRED_OTHERWISE: &str =
    "a System V segment is repaired otherwise: no reader lock, no rename";

shmstore_tests::for_each_backend!(
    regression_split_brain_when_a_stopped_repairer_renamed_late [sysv: REPAIRED_OTHERWISE],
    a_repair_claimed_by_a_killed_repairer_is_taken_over [sysv: REPAIRED_OTHERWISE],
);
