use core::mem::{offset_of, size_of};
use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Wheel {
    pressure: f32,
    rpm: u32,
}

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Car {
    wheels: [Wheel; 4],
    odometer: u64,
}

fn main() {
    let layout = Car::LAYOUT;
    assert_eq!(layout.size(), size_of::<Car>());
    assert_eq!(layout.fields()[1].offset(), offset_of!(Car, odometer));
    let wheels = layout.fields()[0].layout();
    assert_eq!(wheels.size(), size_of::<[Wheel; 4]>());
    assert_eq!(wheels.type_name(), "[Wheel; 4]");
    // One row per field of the element, with a dimension: not one per element.
    let leaves = layout.leaves();
    assert_eq!(leaves.len(), 3);
    assert_eq!(leaves[0].path, "wheels[].pressure");
    assert_eq!(leaves[0].offset, 0);
    assert_eq!(
        leaves[1].dims,
        [shmstore::layout::Dim { count: 4, stride: size_of::<Wheel>() }]
    );
    assert_eq!(leaves[1].offset, offset_of!(Wheel, rpm));
    assert_eq!(leaves[2].path, "odometer");
    assert!(leaves[2].dims.is_empty());
}
