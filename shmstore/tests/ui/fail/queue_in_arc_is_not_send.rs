// The case: an `Arc<ShmQueue>` handed to another thread. The first error must tell the
// user to open one handle per thread, naming `Cell<…OpenOneHandlePerThread>`.
use std::sync::Arc;

use shmstore::ShmQueue;

fn main() {
    let queue = Arc::new(ShmQueue::<u64, 8>::create("ui-queue-in-arc").unwrap());
    let producer = Arc::clone(&queue);
    std::thread::spawn(move || producer.push(1));
}
