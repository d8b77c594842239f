use shmstore::ShmType;

// `align(16)` rounds the 8-byte struct up to 16 bytes: 8 bytes of padding at the end.
#[derive(ShmType, Clone, Copy)]
#[repr(C, align(16))]
struct Sample {
    a: u64,
}

fn main() {}
