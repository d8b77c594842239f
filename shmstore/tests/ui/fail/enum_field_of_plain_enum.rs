use shmstore::value::EnumField;
use shmstore::ShmType;

// An enum without `#[derive(ShmEnum)]` cannot be stored in an `EnumField`.
#[derive(Clone, Copy)]
#[repr(u8)]
enum Level {
    Low,
    High,
}

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Config {
    level: EnumField<Level>,
}

fn main() {}
