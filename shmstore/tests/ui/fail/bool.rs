use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Sample {
    a: u8,
    enabled: bool,
}

fn main() {}
