use core::mem::{align_of, offset_of, size_of};
use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(transparent)]
struct Wrapper<T>(T);

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Point {
    x: i32,
    y: i32,
}

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Uses {
    count: Wrapper<u32>,
    at: Wrapper<Point>,
    nested: Wrapper<Wrapper<[u16; 2]>>,
}

fn main() {
    assert_eq!(Wrapper::<u32>::LAYOUT.size(), 4);
    assert_eq!(Wrapper::<u32>::LAYOUT.name(), "Wrapper");
    assert_eq!(Wrapper::<u32>::LAYOUT.fields()[0].layout().name(), "u32");
    assert_eq!(Wrapper::<Point>::LAYOUT.size(), size_of::<Point>());
    assert_eq!(Wrapper::<Point>::LAYOUT.align(), align_of::<Point>());
    assert_eq!(
        Wrapper::<Point>::LAYOUT.fields()[0].layout().fingerprint(),
        Point::LAYOUT.fingerprint()
    );
    // Different arguments, different layouts.
    assert_ne!(
        Wrapper::<u32>::LAYOUT.fingerprint(),
        Wrapper::<i32>::LAYOUT.fingerprint()
    );
    assert_eq!(Uses::LAYOUT.fields()[1].offset(), offset_of!(Uses, at));
    assert_eq!(Uses::LAYOUT.fields()[2].offset(), offset_of!(Uses, nested));
    assert_eq!(Uses::LAYOUT.size(), size_of::<Uses>());
}
