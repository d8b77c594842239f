use shmstore::value::FixedVec;
use shmstore::ShmType;

// A 1-byte element's header counts to 255.
#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Buffer {
    bytes: FixedVec<u8, 300>,
}

fn main() {
    let _ = Buffer::LAYOUT;
}
