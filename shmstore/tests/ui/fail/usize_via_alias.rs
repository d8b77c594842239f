use shmstore::ShmType;

type Len = usize;

// Spelled `Len`, it is still `usize`: the `ShmType` bound refuses it.
#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Sample {
    len: Len,
}

fn main() {}
