use core::mem::{align_of, offset_of, size_of};
use shmstore::ShmType;

trait Storage {
    type Word;
}

struct Wide;
struct Narrow;

impl Storage for Wide {
    type Word = u64;
}

impl Storage for Narrow {
    type Word = u16;
}

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Sample {
    wide: <Wide as Storage>::Word,
    narrow: <Narrow as Storage>::Word,
    _pad: [u8; 6],
}

fn main() {
    assert_eq!(Sample::LAYOUT.size(), size_of::<Sample>());
    assert_eq!(Sample::LAYOUT.size(), 16);
    assert_eq!(Sample::LAYOUT.fields()[0].layout().name(), "u64");
    assert_eq!(Sample::LAYOUT.fields()[1].layout().name(), "u16");
    assert_eq!(
        Sample::LAYOUT.fields()[1].offset(),
        offset_of!(Sample, narrow)
    );
    assert_eq!(Sample::LAYOUT.align(), align_of::<u64>());
}
