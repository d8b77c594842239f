use shmstore::ShmType;

type Flag = bool;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct S {
    a: u8,
    flag: Flag,
}

fn main() {}
