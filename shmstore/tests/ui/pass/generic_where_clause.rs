use core::mem::{align_of, offset_of, size_of};
use shmstore::ShmType;

trait Unit {
    const NAME: &'static str;
}

#[derive(ShmType, Clone, Copy)]
#[repr(transparent)]
struct Quantity<T>(T)
where
    T: Copy;

impl Unit for Quantity<f64> {
    const NAME: &'static str = "m";
}

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Reading {
    value: Quantity<f64>,
    count: Quantity<[u32; 2]>,
}

fn main() {
    assert_eq!(<Quantity<f64> as Unit>::NAME, "m");
    assert_eq!(Reading::LAYOUT.size(), 16);
    assert_eq!(
        Reading::LAYOUT.fields()[1].offset(),
        offset_of!(Reading, count)
    );
    assert_eq!(Quantity::<f64>::LAYOUT.align(), align_of::<f64>());
    assert_eq!(size_of::<Reading>(), 16);
}
