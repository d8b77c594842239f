// `(u64)` is a parenthesized type, which the derive must see through.
#![allow(unused_parens)]

use core::mem::{align_of, offset_of, size_of};
use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Sample {
    a: core::primitive::u32,
    b: ::std::primitive::f32,
    c: (u64),
}

fn main() {
    assert_eq!(Sample::LAYOUT.fields()[0].layout().name(), "u32");
    assert_eq!(Sample::LAYOUT.fields()[1].layout().name(), "f32");
    assert_eq!(Sample::LAYOUT.fields()[2].offset(), offset_of!(Sample, c));
    assert_eq!(Sample::LAYOUT.size(), size_of::<Sample>());
    assert_eq!(Sample::LAYOUT.align(), align_of::<u64>());
}
