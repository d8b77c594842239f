use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Sample {
    slots: [*const u8; 4],
}

fn main() {}
