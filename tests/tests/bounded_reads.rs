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

/// A reader that asks writers for help and never answers, as a hostile process with read
/// access only could: it maps the region read-only and sleeps on `read_requests` (FORMAT.md,
/// offset 148) again and again, counting how often a writer wakes it. Each wake starts a
/// hold of up to 50 ms.
struct NeverAnswers {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<u32>>,
}

impl NeverAnswers {
    fn start(name: &str) -> NeverAnswers {
        use std::os::fd::AsFd;
        let file = std::fs::File::open(format!("/dev/shm/{name}")).expect("open read-only");
        let len = std::num::NonZeroUsize::new(4096).expect("nonzero");
        // SAFETY: a fresh shared read-only mapping of the object's first page (the object is
        // larger); nothing in this process writes through it, and it is unmapped below.
        let base = unsafe {
            nix::sys::mman::mmap(
                None,
                len,
                nix::sys::mman::ProtFlags::PROT_READ,
                nix::sys::mman::MapFlags::MAP_SHARED,
                file.as_fd(),
                0,
            )
        }
        .expect("mmap");
        let address = base.as_ptr() as usize;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let word = (address + 148) as *const u32;
            let mut woken = 0;
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                // SAFETY: `word` is 4-byte aligned inside the mapping, which lives until this
                // thread is joined; a volatile read of shared memory nobody writes here.
                let current = unsafe { word.read_volatile() };
                let timeout = nix::libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 20_000_000,
                };
                // SAFETY: FUTEX_WAIT (shared) only reads the word at `word` and `timeout`.
                let rc = unsafe {
                    nix::libc::syscall(
                        nix::libc::SYS_futex,
                        word,
                        nix::libc::FUTEX_WAIT,
                        current,
                        &timeout as *const nix::libc::timespec,
                    )
                };
                if rc == 0 {
                    woken += 1;
                }
            }
            let base = std::ptr::NonNull::new(address as *mut std::ffi::c_void).expect("mapped");
            // SAFETY: the mapping made above, no longer used.
            let _ = unsafe { nix::sys::mman::munmap(base, 4096) };
            woken
        });
        NeverAnswers {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops it; how many times writers woke it.
    fn woken(mut self) -> u32 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread
            .take()
            .expect("joined once")
            .join()
            .expect("the sleeper panicked")
    }
}

/// The help readers get is rationed for the whole region, not per writer handle: 20 writes of
/// a 1 MiB value, each through a fresh handle, beside a reader that never answers, hold for it
/// at most a fifth of the time (about one 50 ms hold per 250 ms). Before, every new handle
/// brought a budget of its own, and every one of the 20 writes stalled 50 ms for it.
#[test]
fn a_reader_that_never_answers_gets_holds_rationed_for_the_whole_region() {
    let _one = ONE_WRITER_AT_A_TIME
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let (name, _cleanup) = region("never-answers");
    on_big_stack(|| {
        let first = Shm::<BigPage>::options()
            .create_with(&name, |page| page.set_ends(0))
            .expect("create");
        let sleeper = NeverAnswers::start(&name);
        std::thread::sleep(Duration::from_millis(20)); // let it fall asleep: fewer wakes, not more
        let started = std::time::Instant::now();
        for n in 1..=20u64 {
            let shm = Shm::<BigPage>::open(&name).expect("open");
            shm.lock().expect("lock").set_ends(n);
        }
        let elapsed = started.elapsed();
        let woken = sleeper.woken();
        assert_eq!(first.lock().expect("lock").ends(), Some(20));
        // One hold of at most 50 ms, then none for four times its length.
        let allowed = 1 + elapsed.as_millis() / 200;
        assert!(
            u128::from(woken) <= allowed,
            "writers held for the silent reader {woken} times in {elapsed:?} (at most {allowed})"
        );
    });
}
