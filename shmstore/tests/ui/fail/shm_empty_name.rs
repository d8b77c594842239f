use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
#[shm(name = "")]
struct Sample {
    a: u32,
}

fn main() {}
