use shmstore::ShmType;

// `packed(2)` caps alignment at 2: `b` moves to offset 2, leaving one byte of padding.
#[derive(ShmType, Clone, Copy)]
#[repr(C, packed(2))]
struct Sample {
    a: u8,
    b: u32,
}

fn main() {}
