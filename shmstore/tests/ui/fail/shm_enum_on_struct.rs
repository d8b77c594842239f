use shmstore::ShmEnum;

#[derive(ShmEnum, Clone, Copy)]
#[repr(C)]
struct Level {
    raw: u8,
}

fn main() {}
