use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(align(16))]
struct Sample {
    a: [u8; 16],
}

fn main() {}
