//! Issue 16, red team: what a hostile peer with write access, an unlucky operator and racing
//! writers can do to a region that changes type (README, "Changing a region's type";
//! FORMAT.md, "Migration").

use std::os::unix::fs::FileExt;
use std::sync::mpsc;
use std::time::Duration;

use shmstore::value::FixedStr;
use shmstore::{Error, Shm};
use shmstore_tests::config_versions::{ConfigV1, ConfigV2, LevelV1};
use shmstore_tests::config_versions_plus::ConfigV1Plus;
use shmstore_tests::{region, Backend, Place};

/// Where the header's `lifecycle` word is (FORMAT.md, "Header").
const LIFECYCLE_OFFSET: u64 = 156;

fn v1(workers: u32) -> ConfigV1 {
    ConfigV1 {
        workers,
        timeout_ms: 500,
        service: FixedStr::new("gateway").expect("fits"),
        level: LevelV1::Warn.into(),
        _pad: [0; 3],
    }
}

/// Writes `word` into the `lifecycle` word of the object `/dev/shm/<name>` refers to, as a peer
/// with write access can.
fn forge_lifecycle(name: &str, word: u32) {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(shmstore_tests::shm_path(name))
        .expect("open the object");
    file.write_all_at(&word.to_ne_bytes(), LIFECYCLE_OFFSET)
        .expect("forge lifecycle");
}

/// How many descriptors this process has open.
fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("fd dir").count()
}

/// Runs `work` on another thread and fails the test if it has not returned within a minute (a
/// hang would otherwise hang the test run).
fn finishes<R: Send + 'static>(what: &str, work: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)));
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Ok(value)) => value,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("{what} did not return"),
    }
}

/// A peer stores `LIFECYCLE_MOVED` (2) in a region whose name still refers to it: no
/// migration happened, so the handles must go on with it. Before the fix every operation
/// "followed" the name to the same object again and again, mapping it once more each time
/// (a descriptor and a mapping per turn) until `open` failed for want of descriptors: `lock`
/// panicked and the process was left without descriptors.
#[test]
fn a_forged_moved_word_on_a_region_its_name_still_refers_to_is_not_followed() {
    let (name, _cleanup) = region("red-forged-moved");
    let writer = Shm::<u64>::create(&name, 1).expect("create");
    let reader = Shm::<u64>::open_reader(&name).expect("reader");
    let before = open_descriptors();
    forge_lifecycle(&name, 2);
    let (writer, reader) = finishes("operations on a forged MOVED region", move || {
        assert_eq!(reader.read(), 1);
        assert_eq!(writer.read(), 1);
        *writer.lock().expect("lock") = 2;
        assert_eq!(reader.read(), 2);
        assert!(!reader.is_removed().expect("look"));
        let version = reader.version();
        assert_eq!(
            reader
                .wait_for_change(version, Some(Duration::from_millis(10)))
                .map_err(|e| shmstore_tests::variant(&e)),
            Err("Timeout"),
            "nothing changed: the wait times out, it is not a move"
        );
        (writer, reader)
    });
    assert!(
        open_descriptors() <= before + 1,
        "no region was mapped again: {before} descriptors before, {} after",
        open_descriptors()
    );
    assert_eq!(Shm::<u64>::open_reader(&name).expect("open").read(), 2);
    drop((writer, reader));
}

/// Garbage in `lifecycle` (no state of the protocol) and `MIGRATING` with no migrator: the
/// name decides, and it still refers to the region, so every operation works on it.
#[test]
fn a_garbage_or_stale_migrating_word_leaves_the_region_current() {
    for word in [1u32, 7, u32::MAX] {
        let (name, _cleanup) = region("red-forged-garbage");
        let writer = Shm::<u64>::create(&name, 1).expect("create");
        let reader = Shm::<u64>::open_reader(&name).expect("reader");
        forge_lifecycle(&name, word);
        let (writer, reader) = finishes("operations on a forged lifecycle", move || {
            *writer.lock().expect("lock") = 2;
            assert_eq!(reader.read(), 2);
            assert!(!writer.is_removed().expect("look"));
            (writer, reader)
        });
        drop((writer, reader));
    }
}
