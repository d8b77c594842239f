use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Sample {
    name: [u8; 3],
    count: u32,
}

fn main() {}
