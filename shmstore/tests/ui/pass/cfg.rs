use core::mem::{align_of, offset_of, size_of};
use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[cfg_attr(all(), repr(C))]
#[cfg_attr(any(), repr(packed))]
struct Sample {
    a: u32,
    #[cfg(any())]
    removed: u8,
    #[cfg(all())]
    kept: u32,
}

fn main() {
    assert_eq!(Sample::LAYOUT.size(), 8);
    assert_eq!(Sample::LAYOUT.align(), 4);
    let names: Vec<_> = Sample::LAYOUT.fields().iter().map(|f| f.name()).collect();
    assert_eq!(names, ["a", "kept"]);
    assert_eq!(
        Sample::LAYOUT.fields()[1].offset(),
        offset_of!(Sample, kept)
    );
    assert_eq!(size_of::<Sample>(), 8);
    assert_eq!(align_of::<Sample>(), 4);
}
