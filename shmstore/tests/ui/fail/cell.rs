use shmstore::ShmType;

use std::cell::Cell;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Sample {
    hits: Cell<u32>,
}

fn main() {}
