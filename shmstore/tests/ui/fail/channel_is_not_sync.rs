// A channel handle keeps the SPSC roles it holds privately, as a queue handle does, so two
// threads cannot share one: each opens its own. The only error must say so, naming
// `Cell<…OpenOneHandlePerThread>`.
use shmstore::ShmChannel;

fn main() {
    let channel = ShmChannel::options().create("ui-channel-is-not-sync").unwrap();
    std::thread::scope(|s| {
        s.spawn(|| channel.try_send(b"hello"));
    });
}
