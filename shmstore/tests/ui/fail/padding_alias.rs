use shmstore::ShmType;

type Small = u16;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct S {
    a: Small,
    b: u64,
    c: u8,
}

fn main() {}
