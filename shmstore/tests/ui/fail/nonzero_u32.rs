use shmstore::ShmType;

use std::num::NonZeroU32;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Sample {
    id: NonZeroU32,
}

fn main() {}
