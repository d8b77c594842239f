use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(u8)]
struct Sample {
    a: u8,
}

fn main() {}
