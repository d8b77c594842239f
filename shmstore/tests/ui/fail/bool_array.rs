use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Sample {
    grid: [[bool; 4]; 4],
}

fn main() {}
