use core::mem::offset_of;
use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Rgba(u8, u8, u8, u8);

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Pixel(u32, Rgba);

fn main() {
    let names: Vec<_> = Rgba::LAYOUT.fields().iter().map(|f| f.name()).collect();
    assert_eq!(names, ["0", "1", "2", "3"]);
    assert_eq!(Rgba::LAYOUT.size(), 4);
    assert_eq!(Pixel::LAYOUT.fields()[1].offset(), offset_of!(Pixel, 1));
    assert_eq!(Pixel::LAYOUT.fields()[1].layout().name(), "Rgba");
}
