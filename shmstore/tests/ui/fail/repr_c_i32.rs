use shmstore::ShmType;

// An integer representation next to `C` is still an enum representation.
#[derive(ShmType, Clone, Copy)]
#[repr(C, i32)]
struct Sample {
    a: i32,
}

fn main() {}
