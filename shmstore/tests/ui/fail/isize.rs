use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Sample {
    delta: core::primitive::isize,
}

fn main() {}
