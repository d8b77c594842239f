use core::mem::offset_of;
use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C, packed)]
struct Wire {
    kind: u8,
    length: u32,
    stamp: u64,
}

#[derive(ShmType, Clone, Copy)]
#[repr(C, packed(2))]
struct Half {
    a: u16,
    b: u32,
    c: u16,
}

fn main() {
    assert_eq!(Wire::LAYOUT.size(), 13);
    assert_eq!(Wire::LAYOUT.align(), 1);
    assert_eq!(Wire::LAYOUT.fields()[1].offset(), offset_of!(Wire, length));
    assert_eq!(Wire::LAYOUT.fields()[2].offset(), 5);
    assert_eq!(Half::LAYOUT.size(), 8);
    assert_eq!(Half::LAYOUT.align(), 2);
    assert_eq!(Half::LAYOUT.fields()[2].offset(), offset_of!(Half, c));
}
