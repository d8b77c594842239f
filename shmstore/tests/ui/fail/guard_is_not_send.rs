// A guard holds a process-shared mutex that glibc ties to the locking thread: it must be
// unlocked by that thread, so the guard cannot move to another one.
use shmstore::Shm;

fn main() {
    let shm = Shm::<u64>::create("ui-guard-is-not-send", 0).unwrap();
    let guard = shm.lock().unwrap();
    std::thread::scope(|s| {
        s.spawn(move || drop(guard));
    });
}
