// A queue handle keeps private copies of the counters (what makes SPSC lock-free), so two
// threads cannot share one handle: each opens its own. The first error must say so, naming
// `Cell<…OpenOneHandlePerThread>`.
use shmstore::ShmQueue;

fn main() {
    let queue = ShmQueue::<u64, 8>::create("ui-queue-is-not-sync").unwrap();
    std::thread::scope(|s| {
        s.spawn(|| queue.try_push(1));
    });
}
