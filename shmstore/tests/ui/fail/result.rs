use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Sample {
    outcome: Result<u32, i32>,
}

fn main() {}
