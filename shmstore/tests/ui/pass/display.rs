use core::mem::{align_of, offset_of, size_of};
use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Pos {
    x: f32,
    y: f32,
}

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Robot {
    id: u64,
    pos: Pos,
    samples: [[u16; 2]; 2],
}

fn main() {
    let text = Robot::LAYOUT.to_string();
    assert!(
        text.starts_with("struct Robot (size 24, align 8,"),
        "{text}"
    );
    assert!(text.contains("@8 pos: Pos"), "{text}");
    assert!(text.contains("@16 samples: [[u16; 2]; 2]"), "{text}");
    assert_eq!(
        Robot::LAYOUT.fields()[2].offset(),
        offset_of!(Robot, samples)
    );
    assert_eq!(size_of::<Robot>(), 24);
    assert_eq!(align_of::<Robot>(), 8);
}
