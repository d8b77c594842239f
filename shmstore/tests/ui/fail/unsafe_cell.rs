use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Sample {
    value: core::cell::UnsafeCell<u64>,
}

fn main() {}
