use shmstore::ShmType;

#[derive(ShmType)]
#[repr(C)]
struct S {
    a: u32,
}

fn main() {}
