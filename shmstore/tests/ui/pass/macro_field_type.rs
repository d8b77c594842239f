use core::mem::{align_of, offset_of, size_of};
use shmstore::ShmType;

macro_rules! word {
    () => {
        u32
    };
    (wide) => {
        [u32; 2]
    };
}

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Sample {
    a: word!(),
    b: word!(),
    c: word!(wide),
}

fn main() {
    assert_eq!(Sample::LAYOUT.size(), 16);
    assert_eq!(Sample::LAYOUT.fields()[2].offset(), offset_of!(Sample, c));
    assert_eq!(Sample::LAYOUT.fields()[2].layout().type_name(), "[u32; 2]");
    assert_eq!(align_of::<Sample>(), 4);
    assert_eq!(size_of::<Sample>(), 16);
}
