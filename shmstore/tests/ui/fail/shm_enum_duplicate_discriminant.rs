use shmstore::ShmEnum;

#[derive(ShmEnum, Clone, Copy)]
#[repr(u8)]
enum Level {
    Low = 1,
    Mid = 2,
    High = 1,
}

fn main() {}
