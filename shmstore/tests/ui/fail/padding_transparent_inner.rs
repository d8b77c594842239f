use shmstore::ShmType;

// A transparent wrapper has its field's layout; the padding inside `Inner` is reported there.
#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Inner {
    a: u64,
    b: u8,
}

#[derive(ShmType, Clone, Copy)]
#[repr(transparent)]
struct Outer(Inner);

fn main() {}
