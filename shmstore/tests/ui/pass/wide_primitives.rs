use core::mem::{align_of, offset_of, size_of};
use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Wide {
    a: i128,
    b: u128,
    c: f64,
    d: f32,
    e: i32,
    f: [i16; 4],
    g: [u8; 8],
}

fn main() {
    let layout = Wide::LAYOUT;
    assert_eq!(layout.size(), size_of::<Wide>());
    assert_eq!(layout.align(), align_of::<u128>());
    let names: Vec<_> = layout
        .fields()
        .iter()
        .map(|f| f.layout().type_name())
        .collect();
    assert_eq!(
        names,
        ["i128", "u128", "f64", "f32", "i32", "[i16; 4]", "[u8; 8]"]
    );
    assert_eq!(layout.fields()[1].offset(), offset_of!(Wide, b));
    assert_eq!(layout.fields()[5].offset(), offset_of!(Wide, f));
    assert_eq!(layout.fields()[6].offset(), offset_of!(Wide, g));
}
