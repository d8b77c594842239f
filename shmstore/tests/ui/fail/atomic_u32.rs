use shmstore::ShmType;

use std::sync::atomic::AtomicU32;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Sample {
    counter: AtomicU32,
}

fn main() {}
