use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(packed(2))]
struct Sample {
    a: u16,
    b: u32,
}

fn main() {}
