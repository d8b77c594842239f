//! Regressions from reviewing the open protocol and the read path against hostile or racing
//! neighbours.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::Duration;

use shmstore::{Error, Shm};
use shmstore_tests::{region, Counter};

/// Runs `f` on a thread and fails (rather than hangs) if it does not finish in time.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(f());
    });
    result
        .recv_timeout(limit)
        .expect("the call blocked: it should have returned at once")
}

/// Bug: a FIFO under a region name blocked `open_reader` and every `list()`.
///
/// A FIFO planted under a region name used to block `open_reader` (a read-only `open` of a FIFO
/// waits for a writer) and, anywhere in /dev/shm, every `list()`.
#[test]
fn regression_a_fifo_under_a_region_name_blocked_open_reader_and_list() {
    let (name, _cleanup) = region("fifo");
    nix::unistd::mkfifo(
        format!("/dev/shm/{name}").as_str(),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let reader_name = name.clone();
    let opened = within(Duration::from_secs(10), move || {
        Shm::<Counter>::open_reader(&reader_name).map(|_| ())
    });
    assert!(
        matches!(&opened, Err(Error::Corrupt { reason, .. }) if reason.contains("regular file")),
        "{opened:?}"
    );
    let listed = within(Duration::from_secs(10), shmstore::list).unwrap();
    assert!(listed.iter().all(|r| r.name != name));
    let creator_name = name.clone();
    let created = within(Duration::from_secs(10), move || {
        Shm::<Counter>::open_or_create(&creator_name, || Counter::at(1)).map(|_| ())
    });
    assert!(matches!(created, Err(Error::Corrupt { .. })), "{created:?}");
}

/// Bug: an in-place `read()` through a second handle of the writing thread waited for itself
/// forever.
///
/// An in-place `read()` on the thread that is writing through *another* handle used to wait
/// for itself forever; like a read through the writing handle, it panics naming the region.
#[test]
fn regression_in_place_read_through_a_second_handle_of_the_writer_hung() {
    let (name, _cleanup) = region("second-handle");
    let writer = Shm::<Counter>::options()
        .in_place(true)
        .create(&name, Counter::at(1))
        .unwrap();
    let other = Shm::<Counter>::open(&name).unwrap();
    let (writer, message) = within(Duration::from_secs(10), move || {
        // One thread: it writes through `writer` and reads through `other`.
        let mut guard = writer.lock().unwrap();
        guard.count = 2;
        let outcome = catch_unwind(AssertUnwindSafe(|| other.read()));
        drop(guard);
        let message = match outcome {
            Ok(value) => format!("no panic: read {value:?}"),
            Err(p) => p.downcast_ref::<String>().cloned().unwrap_or_default(),
        };
        (writer, message)
    });
    assert!(
        message.contains("would wait for itself") && message.contains(&name),
        "{message}"
    );
    // Released: the write is published.
    assert_eq!(
        writer.read(),
        Counter {
            count: 2,
            mirror: 1
        }
    );
}

/// Bug: racing `open_or_create` on an empty object now and then reported `Corrupt`.
///
/// Racing `open_or_create` on an empty object: one of them initialises it in place while the
/// others look at a header being written. They used to report `Corrupt` now and then; a header
/// under its (re)initialiser's `flock` is never judged.
#[test]
fn regression_racing_openers_of_an_empty_object_reported_corrupt() {
    for round in 0..60 {
        let (name, _cleanup) = region(&format!("blank-race-{round}"));
        std::fs::write(format!("/dev/shm/{name}"), b"").unwrap();
        let results: Vec<_> = (0..6)
            .map(|_| {
                let name = name.clone();
                std::thread::spawn(move || {
                    Shm::<Counter>::open_or_create(&name, || Counter::at(5))
                        .map(|shm| shm.read().count)
                })
            })
            .collect();
        for r in results {
            match r.join().unwrap() {
                Ok(count) => assert_eq!(count, 5),
                Err(e) => panic!("round {round}: {e}"),
            }
        }
    }
}
