use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Limits {
    version: u64,
    rate_per_s: u32,
    burst: u32,
    name: [u8; 32],
}

fn main() {
    assert_eq!(Limits::LAYOUT.size(), 48);
}
