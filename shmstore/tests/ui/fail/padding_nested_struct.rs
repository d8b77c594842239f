use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Inner {
    a: u64,
    b: u64,
}

// `Inner` is 8-aligned, so 7 bytes of padding follow `tag`.
#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Outer {
    tag: u8,
    inner: Inner,
}

fn main() {}
