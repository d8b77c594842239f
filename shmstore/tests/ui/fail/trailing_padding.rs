use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Sample {
    a: u32,
    b: u8,
}

fn main() {}
