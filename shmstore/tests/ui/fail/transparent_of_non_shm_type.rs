use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(transparent)]
struct Wrapper<T>(T);

// The wrapper is `ShmType` only when its argument is.
#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Sample {
    flag: Wrapper<bool>,
}

fn main() {}
