use shmstore::ShmType;

// Only a zero-length array: the struct has a field but no bytes.
#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Empty {
    nothing: [u8; 0],
}

fn main() {}
