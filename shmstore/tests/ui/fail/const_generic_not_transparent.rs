use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Buffer<const N: usize> {
    len: u32,
    bytes: [u8; N],
}

fn main() {}
