use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
#[shm(name = "First")]
#[shm(name = "Second")]
struct Sample {
    a: u32,
}

fn main() {}
