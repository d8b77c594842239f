use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
struct Sample {
    a: u32,
    b: u32,
}

fn main() {}
