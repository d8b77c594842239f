//! `try_lock`, `lock_timeout` and `lock` against a holder in another process, in another thread
//! and in the same thread.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::mpsc;
use std::sync::TryLockError;
use std::time::Duration;

use shmstore::Shm;
use shmstore_tests::{helper, region, wait_until_blocked, Pair, OLD};

fn would_block<G>(r: std::sync::TryLockResult<G>) -> bool {
    matches!(r, Err(TryLockError::WouldBlock))
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else {
        String::from("<not a string>")
    }
}

#[test]
fn try_lock_and_lock_timeout_would_block_while_another_process_holds_the_lock() {
    let (name, _cleanup) = region("busy");
    let shm = Shm::<Pair>::create(&name, OLD).unwrap();
    let mut holder = helper!("hold", name);
    holder.expect("locked");

    assert!(would_block(shm.try_lock()));
    assert!(would_block(shm.lock_timeout(Duration::from_millis(50))));
    // The same from another handle in another thread.
    std::thread::scope(|s| {
        s.spawn(|| {
            let other = Shm::<Pair>::open(&name).unwrap();
            assert!(would_block(other.try_lock()));
            assert!(would_block(other.lock_timeout(Duration::from_millis(50))));
        })
        .join()
        .unwrap();
    });

    // lock() waits for the holder, then succeeds.
    std::thread::scope(|s| {
        let (tid_tx, tid_rx) = mpsc::channel();
        let shm = &shm;
        let waiter = s.spawn(move || {
            tid_tx.send(nix::unistd::gettid()).unwrap();
            *shm.lock().unwrap()
        });
        let tid = tid_rx.recv().unwrap();
        let blocked = catch_unwind(|| {
            wait_until_blocked(&Path::new("/proc/self/task").join(tid.to_string()))
        });
        holder.send("release");
        assert_eq!(holder.line(), "released");
        assert_eq!(waiter.join().unwrap(), OLD);
        blocked.unwrap();
    });
    assert_eq!(holder.finish_ok(), Vec::<String>::new());

    assert!(shm.try_lock().is_ok());
    assert!(shm.lock_timeout(Duration::from_millis(50)).is_ok());
}

#[test]
fn try_lock_would_block_while_another_thread_of_this_process_holds_the_lock() {
    let (name, _cleanup) = region("busy-thread");
    let shm = Shm::<Pair>::create(&name, OLD).unwrap();
    let (locked_tx, locked_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let shm = &shm;
        s.spawn(move || {
            let _g = shm.lock().unwrap();
            locked_tx.send(()).unwrap();
            let _ = release_rx.recv();
        });
        locked_rx.recv().unwrap();
        let result = (
            would_block(shm.try_lock()),
            would_block(shm.lock_timeout(Duration::from_millis(50))),
        );
        release_tx.send(()).unwrap();
        assert_eq!(result, (true, true));
    });
    assert!(shm.try_lock().is_ok());
}

#[test]
fn the_holding_thread_gets_would_block_from_try_lock_and_a_panic_naming_the_region_from_lock() {
    let (name, _cleanup) = region("relock");
    let shm = Shm::<Pair>::create(&name, OLD).unwrap();
    let other = Shm::<Pair>::open(&name).unwrap();

    let mut g = shm.lock().unwrap();
    g.a = 10;
    assert!(would_block(shm.try_lock()));
    assert!(would_block(other.try_lock()));

    for (what, attempt) in [
        (
            "lock()",
            Box::new(|| drop(shm.lock())) as Box<dyn Fn() + '_>,
        ),
        (
            "lock_timeout()",
            Box::new(|| drop(shm.lock_timeout(Duration::from_millis(50)))),
        ),
        ("lock() on a second handle", Box::new(|| drop(other.lock()))),
    ] {
        let payload = catch_unwind(AssertUnwindSafe(attempt))
            .expect_err(&format!("{what} from the holding thread must panic"));
        let msg = panic_message(&*payload);
        assert!(
            msg.contains(&name) && msg.contains("deadlock"),
            "{what}: {msg}"
        );
    }

    // The guard is intact and still commits.
    g.b = 20;
    drop(g);
    assert_eq!(shm.read(), Pair { a: 10, b: 20 });
    assert!(shm.try_lock().is_ok());
    assert!(other.try_lock().is_ok());
}

#[test]
fn read_from_the_thread_whose_guard_is_writing() {
    // Default mode: the last committed value.
    let (name, _cleanup) = region("read-own-write");
    let shm = Shm::<Pair>::create(&name, OLD).unwrap();
    let mut g = shm.lock().unwrap();
    g.a = 10;
    assert_eq!(shm.read(), OLD);
    drop(g);
    assert_eq!(shm.read(), Pair { a: 10, b: 2 });

    // In place: it would wait for itself, so it panics, naming the region.
    let (name, _cleanup) = region("read-own-write-inplace");
    let shm = Shm::<Pair>::options()
        .in_place(true)
        .create(&name, OLD)
        .unwrap();
    let g = shm.lock().unwrap();
    assert_eq!(
        shm.read(),
        OLD,
        "a guard that only read does not block read()"
    );
    let mut g = g;
    g.a = 10;
    let payload = catch_unwind(AssertUnwindSafe(|| shm.read()))
        .expect_err("read() while this thread's guard writes must panic");
    let msg = panic_message(&*payload);
    assert!(msg.contains(&name), "{msg}");
    drop(g);
    assert_eq!(shm.read(), Pair { a: 10, b: 2 });
    assert!(!shm.is_poisoned());
}

#[test]
fn debug_of_an_in_place_region_this_thread_is_writing_prints_locked_instead_of_panicking() {
    let (name, _cleanup) = region("debug-own-write-inplace");
    let shm = Shm::<Pair>::options()
        .in_place(true)
        .create(&name, OLD)
        .unwrap();
    let other = Shm::<Pair>::open(&name).unwrap();
    let value_of = |shm: &Shm<Pair>| {
        let text = catch_unwind(AssertUnwindSafe(|| format!("{shm:?}")))
            .unwrap_or_else(|p| panic!("Debug panicked: {}", panic_message(&*p)));
        assert!(text.contains(&name), "{text}");
        let (_, value) = text.split_once("value: ").expect(&text);
        value.to_string()
    };
    let version = shm.version();
    assert_eq!(value_of(&shm), "Pair { a: 1, b: 2 } }");
    assert_eq!(
        shm.version(),
        version,
        "Debug took the free lock and wrote nothing"
    );

    // This thread writes in place: through this handle and through a second one.
    let mut g = shm.lock().unwrap();
    g.a = 10;
    assert_eq!(value_of(&shm), "<locked> }");
    assert_eq!(value_of(&other), "<locked> }");
    drop(g);
    assert_eq!(value_of(&shm), "Pair { a: 10, b: 2 } }");

    // Another thread writes in place: `<locked>` at once, rather than waiting for it.
    let (locked_tx, locked_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let writer = &other;
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut g = writer.lock().unwrap();
            g.b = 20;
            locked_tx.send(()).unwrap();
            // Released when the main thread drops the sender, even if it panics.
            let _ = release_rx.recv();
        });
        let _release = release_tx;
        locked_rx.recv().unwrap();
        assert_eq!(value_of(&shm), "<locked> }");
    });
    assert_eq!(value_of(&shm), "Pair { a: 10, b: 20 } }");
    assert!(shm.try_lock().is_ok());
    assert!(!shm.is_poisoned());

    // The default mode shows the committed value while this thread writes.
    let (name, _cleanup) = region("debug-own-write");
    let shm = Shm::<Pair>::create(&name, OLD).unwrap();
    let mut g = shm.lock().unwrap();
    g.a = 10;
    assert!(format!("{shm:?}").ends_with("value: Pair { a: 1, b: 2 } }"));
    drop(g);
}

/// A process makes the region's mutex unrecoverable (its holder died; the next owner unlocked
/// it without `pthread_mutex_consistent`). Then every locker of two other processes, running
/// at the same time, gets the typed answer "unrecoverable" from `lock()`, `try_lock()` and
/// `lock_timeout()` alike. Before the fix only the first locker did: glibc's trylock left its
/// thread id in the lock word, so later lockers were "busy" and `lock()` waited for ever.
#[test]
fn every_locker_of_every_process_gets_the_unrecoverable_error() {
    let (name, _cleanup) = region("unrecoverable");
    drop(Shm::<Pair>::create(&name, OLD).unwrap());
    let mut holder = helper!("hold-and-die", name, "none");
    holder.expect("written");
    holder.kill();
    helper!("make-unrecoverable", name).expect("unrecoverable");

    let lockers = [
        helper!("lock-every-way", name),
        helper!("lock-every-way", name),
    ];
    for (n, mut locker) in lockers.into_iter().enumerate() {
        for way in ["lock", "try_lock", "lock_timeout"] {
            let line = locker.line();
            assert!(
                line.starts_with(&format!("{way} panic "))
                    && line.contains("region `")
                    && line.contains("unrecoverable")
                    && line.contains("create it again"),
                "locker {n}, {way}: {line}"
            );
        }
        locker.finish_ok();
    }
}
