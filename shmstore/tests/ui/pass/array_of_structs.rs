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
    let leaves = layout.leaves();
    assert_eq!(leaves.len(), 9);
    assert_eq!(leaves[6].path, "wheels[3].pressure");
    assert_eq!(leaves[6].offset, 3 * size_of::<Wheel>());
}
