use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Sample {
    a: u32,
    nothing: (),
}

fn main() {}
