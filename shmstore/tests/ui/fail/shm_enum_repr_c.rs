use shmstore::ShmEnum;

#[derive(ShmEnum, Clone, Copy)]
#[repr(C)]
enum Level {
    Low,
    High,
}

fn main() {}
