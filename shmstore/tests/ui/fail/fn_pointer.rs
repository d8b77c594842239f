use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Sample {
    callback: extern "C" fn(u32) -> u32,
}

fn main() {}
