use core::mem::{align_of, offset_of};
use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(transparent)]
struct Meters(f64);

// A zero-length array is a zero-sized, 1-aligned field that `repr(transparent)` allows beside
// the real one, before or after it.
#[derive(ShmType, Clone, Copy)]
#[repr(transparent)]
struct Tagged([u8; 0], u32);

fn main() {
    assert_eq!(Meters::LAYOUT.size(), 8);
    assert_eq!(Meters::LAYOUT.align(), align_of::<f64>());
    assert_eq!(Tagged::LAYOUT.size(), 4);
    assert_eq!(Tagged::LAYOUT.fields()[0].offset(), offset_of!(Tagged, 0));
    assert_eq!(Tagged::LAYOUT.fields()[1].offset(), offset_of!(Tagged, 1));
}
