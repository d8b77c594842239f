//! Every wait of a read can be bounded (issue 13, point 12): a read-only handle copies a 1 MiB
//! value while another process commits it back to back (the writer holds the value stable for
//! readers that ask, see shmstore/src/snapshot.rs), and `Shm::read_timeout` gives up on an
//! `in_place` region whose writer was stopped in the middle of a write.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use shmstore::{Error, Shm};
use shmstore_tests::{helper, region, BigPage, Counter, Helper};

/// How many reads each test makes under the writer.
const READS: usize = 5;
/// The bound every one of them must meet: generous against the microseconds a read takes
/// with writers' help, and against a loaded machine.
const BOUND: Duration = Duration::from_millis(200);

/// Held by each test that runs a back-to-back writer: two of them at once would compete for the
/// processors of a small machine with each other rather than with the protocol under test.
static ONE_WRITER_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `f` on a thread with a stack large enough for a few 1 MiB values by value.
fn on_big_stack<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn_scoped(s, f)
            .expect("spawn")
            .join()
            .expect("the reading thread panicked")
    })
}

/// Starts a `big-page-writer` on the region and waits until it has committed a few values.
fn start_writer(shm: &Shm<BigPage>) -> Helper {
    let mut writer = helper!("big-page-writer", shm.name());
    writer.expect("started");
    let v0 = shm.version();
    while shm.version() < v0 + 8 {
        std::thread::yield_now();
    }
    writer
}

/// Stops a `big-page-writer` and returns how many values it committed.
fn stop_writer(mut writer: Helper) -> u64 {
    writer.send("stop");
    let lines = writer.finish_ok();
    let fields: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(fields[0], "done", "{lines:?}");
    fields[1].parse().expect("a count")
}

/// READS reads of a 1 MiB value, each bounded by BOUND, while a child commits it back to back
/// (two words per write, so that its versions move every few microseconds): every one returns
/// a whole value (its ends agree), none times out. Before readers could ask writers for help,
/// the read-only reads timed out every time.
fn reads_progress_under_a_back_to_back_writer(in_place: bool, read_only: bool) {
    let tag = match (in_place, read_only) {
        (false, true) => "bounded-ro",
        (true, true) => "bounded-ro-inplace",
        (false, false) => "bounded-rw",
        (true, false) => "bounded-rw-inplace",
    };
    let _alone = ONE_WRITER_AT_A_TIME
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let (name, _cleanup) = region(tag);
    let shm = Shm::<BigPage>::options()
        .in_place(in_place)
        .create_with(&name, |_| ())
        .unwrap();
    let reader = Shm::<BigPage>::open_reader(&name).unwrap();
    let writer = start_writer(&shm);
    let results = on_big_stack(|| {
        (0..READS)
            .map(|_| {
                let start = std::time::Instant::now();
                let read = if read_only {
                    reader.read_timeout(BOUND)
                } else {
                    shm.read_timeout(BOUND)
                };
                eprintln!("{tag}: read in {:?}", start.elapsed());
                read.map(|page| page.ends())
            })
            .collect::<Vec<_>>()
    });
    let writes = stop_writer(writer);
    eprintln!("{tag}: the writer committed {writes} values meanwhile");
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Ok(Some(_)) => {}
            Ok(None) => panic!("{tag}: read {i} returned a torn value (its ends differ)"),
            Err(e) => panic!("{tag}: read {i} of {READS} failed: {e}"),
        }
    }
}

#[test]
fn a_read_only_handle_reads_a_mib_value_under_a_back_to_back_writer() {
    reads_progress_under_a_back_to_back_writer(false, true);
}

#[test]
fn a_read_only_handle_reads_a_mib_in_place_value_under_a_back_to_back_writer() {
    reads_progress_under_a_back_to_back_writer(true, true);
}

#[test]
fn a_writable_handle_reads_a_mib_value_under_a_back_to_back_writer() {
    reads_progress_under_a_back_to_back_writer(false, false);
}

#[test]
fn a_writable_handle_reads_a_mib_in_place_value_under_a_back_to_back_writer() {
    reads_progress_under_a_back_to_back_writer(true, false);
}

/// A child locks an `in_place` `Counter`, writes it (the version is odd) and is stopped with
/// SIGSTOP there: `read_timeout` through a writable and through a read-only handle gives up
/// with `Error::Timeout`; after SIGCONT and the child's release, both read the value.
#[test]
fn read_timeout_gives_up_on_a_stopped_in_place_writer() {
    let (name, _cleanup) = region("bounded-stopped");
    let shm = Shm::<Counter>::options()
        .in_place(true)
        .create(&name, Counter::at(1))
        .unwrap();
    let reader = Shm::<Counter>::open_reader(&name).unwrap();
    let mut writer = helper!("write-and-hold", name, 7);
    writer.expect("holding");
    kill(writer.pid(), Signal::SIGSTOP).expect("SIGSTOP");
    let wait = Duration::from_millis(50);
    let from_shm = shm.read_timeout(wait);
    let from_reader = reader.read_timeout(wait);
    kill(writer.pid(), Signal::SIGCONT).expect("SIGCONT");
    assert!(
        matches!(from_shm, Err(Error::Timeout { after, .. }) if after == wait),
        "Shm::read_timeout: {from_shm:?}"
    );
    assert!(
        matches!(from_reader, Err(Error::Timeout { after, .. }) if after == wait),
        "ShmReader::read_timeout: {from_reader:?}"
    );
    writer.send("go");
    writer.expect("released");
    assert_eq!(shm.read_timeout(wait).unwrap(), Counter::at(7));
    assert_eq!(reader.read_timeout(wait).unwrap(), Counter::at(7));
    writer.finish_ok();
}
