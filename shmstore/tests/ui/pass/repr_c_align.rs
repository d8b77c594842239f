use core::mem::align_of;
use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C, align(64))]
struct CacheLine {
    words: [u64; 8],
}

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Lines {
    a: CacheLine,
    b: CacheLine,
}

fn main() {
    assert_eq!(CacheLine::LAYOUT.size(), 64);
    assert_eq!(CacheLine::LAYOUT.align(), 64);
    assert_eq!(CacheLine::LAYOUT.align(), align_of::<CacheLine>());
    assert_eq!(Lines::LAYOUT.fields()[1].offset(), 64);
    assert_eq!(Lines::LAYOUT.align(), 64);
}
