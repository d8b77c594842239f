use shmstore::ShmEnum;

#[derive(ShmEnum, Clone, Copy)]
#[repr(usize)]
enum Level {
    Low,
    High,
}

fn main() {}
