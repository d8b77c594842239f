use shmstore::ShmType;

#[derive(Clone, Copy)]
#[repr(C)]
struct Plain {
    a: u32,
}

// `Plain` has the right shape but does not derive `ShmType`.
#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Sample {
    plain: Plain,
}

fn main() {}
