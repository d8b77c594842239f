//! Many processes at once: locked increments, and readers that never see half a write — all
//! with real processes. (The `open_or_create` race is in `creation.rs`.)

use std::sync::atomic::{AtomicBool, Ordering};

use shmstore::Shm;
use shmstore_tests::{helper, region, Backend, Counter, Helper, Pair, Place};

/// Writers in other processes update both fields of a `Pair` under the lock; a reader here
/// never sees them differ.
fn readers_never_see_half_a_write(in_place: bool) {
    const WRITES: u64 = 20_000;
    let (name, _cleanup) = region(if in_place { "torn-inplace" } else { "torn" });
    let shm = Shm::<Pair>::options()
        .in_place(in_place)
        .create(&name, Pair { a: 0, b: 0 })
        .unwrap();
    let mut writers: Vec<Helper> = (0..2)
        .map(|_| helper!("writer-loop", name, WRITES))
        .collect();
    for w in &mut writers {
        w.expect("started");
    }
    let mut last = 0;
    loop {
        let p = shm.read();
        assert_eq!(p.a, p.b, "half a write: {p:?}");
        assert!(p.a >= last);
        last = p.a;
        if p.a == 2 * WRITES {
            break;
        }
    }
    for w in writers {
        assert_eq!(w.finish_ok(), ["done"]);
    }
}

#[test]
fn readers_never_see_half_a_write_from_another_process() {
    readers_never_see_half_a_write(false);
}

#[test]
fn readers_never_see_half_a_write_from_another_process_in_place() {
    readers_never_see_half_a_write(true);
}

/// A writer is SIGKILLed at arbitrary points of its loop, many times: in the default mode the
/// next lock always succeeds with a complete value; in place it is complete or poisoned.
fn writer_killed_anywhere(in_place: bool) {
    const ROUNDS: u32 = 15;
    let (name, _cleanup) = region(if in_place {
        "killloop-inplace"
    } else {
        "killloop"
    });
    let shm = Shm::<Pair>::options()
        .in_place(in_place)
        .create(&name, Pair { a: 0, b: 0 })
        .unwrap();
    let mut poisoned_rounds = 0;
    for round in 0..ROUNDS {
        let mut writer = helper!("writer-loop", name, 0);
        writer.expect("started");
        // Let it run for a varying while, so the kill lands at varying points of the loop.
        std::thread::sleep(std::time::Duration::from_micros(u64::from(round % 5) * 300));
        let before = shm.version();
        writer.kill();
        let r = shm.read();
        match shm.lock() {
            Ok(g) => {
                assert_eq!(g.a, g.b, "round {round}: {:?}", *g);
                assert_eq!(r.a, r.b, "round {round}: read {r:?}");
            }
            Err(poisoned) => {
                assert!(in_place, "round {round}: the default mode never poisons");
                let mut g = poisoned.into_inner();
                // Repair: make both fields agree again.
                let m = g.a.max(g.b);
                g.a = m;
                g.b = m;
                drop(g);
                shm.clear_poison();
                poisoned_rounds += 1;
            }
        }
        assert!(shm.version() >= before);
        assert!(!shm.is_poisoned());
    }
    eprintln!("{poisoned_rounds} of {ROUNDS} kills landed mid-write");
}

#[test]
fn a_writer_killed_at_any_point_leaves_a_complete_value() {
    writer_killed_anywhere(false);
}

#[test]
fn a_writer_killed_at_any_point_in_place_leaves_a_complete_or_poisoned_value() {
    writer_killed_anywhere(true);
}

// ---- every backend (the matrix) ----

shmstore_tests::for_each_backend!(four_processes_times_20000_locked_increments_give_80000,);

/// Four processes do 20 000 locked read-modify-write increments each, all released at the
/// same moment, while this process reads: no lost update (80 000), no torn snapshot, values
/// only grow, one version per increment.
fn four_processes_times_20000_locked_increments_give_80000(backend: Backend) {
    const PROCESSES: u64 = 4;
    const INCREMENTS: u64 = 20_000;
    for in_place in [false, true] {
        let place = Place::new(backend, "inc");
        let shm = Shm::<Counter>::options()
            .in_place(in_place)
            .create(place.location(), Counter::at(0))
            .unwrap();
        let v0 = shm.version();
        let mut helpers: Vec<Helper> = (0..PROCESSES)
            .map(|_| helper!("increment", place, INCREMENTS))
            .collect();
        for h in &mut helpers {
            h.expect("ready");
        }
        for h in &mut helpers {
            h.send("go");
        }
        let done = AtomicBool::new(false);
        let reads = std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut last = 0;
                let mut reads = 0u64;
                while !done.load(Ordering::Relaxed) {
                    let c = shm.read();
                    assert_eq!(c.count, c.mirror, "torn read: {c:?}");
                    assert!(c.count >= last, "went backwards: {} after {last}", c.count);
                    last = c.count;
                    reads += 1;
                }
                reads
            });
            let finished = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                for h in helpers {
                    assert_eq!(h.finish_ok(), ["done"]);
                }
            }));
            done.store(true, Ordering::Relaxed);
            let reads = reader.join().unwrap();
            finished.unwrap();
            reads
        });
        assert!(reads > 0);
        let total = PROCESSES * INCREMENTS;
        assert_eq!(shm.read(), Counter::at(total));
        assert_eq!(*shm.lock().unwrap(), Counter::at(total));
        // Every increment published a version of its own.
        assert_eq!(shm.version(), v0 + total);
        assert!(!shm.is_poisoned());
    }
}
