use shmstore::ShmType;

#[derive(ShmType, Copy)]
#[repr(C)]
struct Sample {
    a: u32,
}

fn main() {}
