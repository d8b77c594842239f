use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Pair<T> {
    a: T,
    b: T,
}

fn main() {}
