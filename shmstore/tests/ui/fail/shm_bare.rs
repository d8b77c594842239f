use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
#[shm]
struct Sample {
    a: u32,
}

fn main() {}
