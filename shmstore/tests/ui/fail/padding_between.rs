use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Header {
    kind: u8,
    length: u32,
}

fn main() {}
