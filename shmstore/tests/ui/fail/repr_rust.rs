use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(Rust)]
struct Sample {
    a: u32,
    b: u32,
}

fn main() {}
