use shmstore::ShmType;

// The `_pad` field is configured out, which opens a 3-byte gap before `len`.
#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Sample {
    kind: u8,
    #[cfg(any())]
    _pad: [u8; 3],
    len: u32,
}

fn main() {}
