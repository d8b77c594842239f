use core::mem::{offset_of, size_of};
use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Image {
    pixels: [[[u8; 3]; 4]; 2],
    gains: [[f64; 2]; 2],
}

fn main() {
    let layout = Image::LAYOUT;
    assert_eq!(layout.size(), size_of::<Image>());
    assert_eq!(layout.size(), 24 + 32);
    assert_eq!(layout.fields()[1].offset(), offset_of!(Image, gains));
    assert_eq!(layout.fields()[0].layout().type_name(), "[[[u8; 3]; 4]; 2]");
    let leaves = layout.leaves();
    assert_eq!(leaves.len(), 2);
    assert_eq!(leaves[0].count(), 24);
    assert_eq!(leaves[1].count(), 4);
    assert_ne!(
        <[[u8; 3]; 4]>::LAYOUT.fingerprint(),
        <[[u8; 4]; 3]>::LAYOUT.fingerprint()
    );
}
