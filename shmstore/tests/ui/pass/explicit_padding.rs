use core::mem::{offset_of, size_of};
use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Header {
    kind: u8,
    _pad: [u8; 3],
    length: u32,
    flags: u16,
    _pad_end: [u8; 6],
    stamp: u64,
}

fn main() {
    assert_eq!(Header::LAYOUT.size(), size_of::<Header>());
    assert_eq!(Header::LAYOUT.size(), 24);
    let fields = Header::LAYOUT.fields();
    assert_eq!(fields[1].name(), "_pad");
    assert_eq!(fields[2].offset(), offset_of!(Header, length));
    assert_eq!(fields[2].offset(), 4);
    assert_eq!(fields[5].offset(), offset_of!(Header, stamp));
}
