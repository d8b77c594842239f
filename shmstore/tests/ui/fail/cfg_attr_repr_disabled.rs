use shmstore::ShmType;

// The `repr` is configured out, so the struct has none.
#[derive(ShmType, Clone, Copy)]
#[cfg_attr(any(), repr(C))]
struct Sample {
    a: u32,
    b: u32,
}

fn main() {}
