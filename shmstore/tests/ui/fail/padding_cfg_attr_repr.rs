use shmstore::ShmType;

// `cfg_attr` gives the struct `repr(C)`; the padding is found as with a plain `repr(C)`.
#[derive(ShmType, Clone, Copy)]
#[cfg_attr(all(), repr(C))]
struct Sample {
    kind: u8,
    len: u32,
}

fn main() {}
