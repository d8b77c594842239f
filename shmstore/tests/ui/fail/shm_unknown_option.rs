use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
#[shm(rename = "Other")]
struct Sample {
    a: u32,
}

fn main() {}
