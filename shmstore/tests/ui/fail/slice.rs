use shmstore::ShmType;

#[derive(ShmType)]
#[repr(C)]
struct Sample {
    len: u32,
    bytes: [u8],
}

fn main() {}
