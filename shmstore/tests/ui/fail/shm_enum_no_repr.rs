use shmstore::ShmEnum;

#[derive(ShmEnum, Clone, Copy)]
enum Level {
    Low,
    High,
}

fn main() {}
