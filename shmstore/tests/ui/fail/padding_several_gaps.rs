use shmstore::ShmType;

// One error per gap, each at the field after it.
#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Sample {
    a: u8,
    b: u16,
    c: u8,
    d: u32,
}

fn main() {}
