use core::mem::offset_of;
use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(transparent)]
struct Bytes<const N: usize>([u8; N]);

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Message {
    len: u32,
    text: Bytes<60>,
}

fn main() {
    assert_eq!(Bytes::<16>::LAYOUT.size(), 16);
    assert_ne!(
        Bytes::<16>::LAYOUT.fingerprint(),
        Bytes::<17>::LAYOUT.fingerprint()
    );
    assert_eq!(Message::LAYOUT.size(), 64);
    assert_eq!(
        Message::LAYOUT.fields()[1].offset(),
        offset_of!(Message, text)
    );
}
