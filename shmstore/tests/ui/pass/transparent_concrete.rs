use core::mem::{align_of, offset_of};
use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(transparent)]
struct Meters(f64);

fn main() {
    assert_eq!(Meters::LAYOUT.size(), 8);
    assert_eq!(Meters::LAYOUT.align(), align_of::<f64>());
    assert_eq!(Meters::LAYOUT.fields()[0].offset(), offset_of!(Meters, 0));
}
