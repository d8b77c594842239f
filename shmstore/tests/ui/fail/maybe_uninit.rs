use shmstore::ShmType;

use std::mem::MaybeUninit;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Sample {
    value: MaybeUninit<u64>,
}

fn main() {}
