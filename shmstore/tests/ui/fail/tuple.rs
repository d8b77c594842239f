use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Sample {
    pair: (u32, u32),
}

fn main() {}
