use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Sample {
    values: Vec<u32>,
}

fn main() {}
