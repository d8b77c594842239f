// The derive's output names only `::shmstore::…` paths, so it compiles without the prelude
// and with local items that share names with what it uses (including constants with
// names a proof might bind, one of them used in a field type).
#![no_implicit_prelude]

#[allow(dead_code, non_camel_case_types, non_upper_case_globals)]
mod shadows {
    pub struct usize;
    pub struct Copy;
    pub struct Sync;
    pub struct Pod;
    pub struct Zeroable;
    pub struct Message;
    pub struct Field;
    pub struct TypeLayout;
    pub fn size_of() {}
    pub const GAP: ::core::primitive::usize = 4;
    pub const gap: u8 = 0;
    pub const message: u8 = 0;
    pub fn must_be_copy() {}
    pub mod core {}
    pub mod bytemuck {}
    pub mod shmstore {}
}

#[allow(unused_imports)]
use shadows::*;

use ::shmstore::ShmType;

#[derive(ShmType, ::core::clone::Clone, ::core::marker::Copy)]
#[repr(C)]
struct Point {
    x: f32,
    y: f32,
}

#[derive(ShmType, ::core::clone::Clone, ::core::marker::Copy)]
#[repr(C, align(8))]
#[shm(name = "hygiene::Path")]
struct Path {
    points: [Point; 3],
    count: u32,
    _pad: [u8; GAP],
}

#[derive(ShmType, ::core::clone::Clone, ::core::marker::Copy)]
#[repr(transparent)]
struct Wrapper<T>(T);

fn main() {
    ::core::assert_eq!(
        <Path as ShmType>::LAYOUT.size(),
        ::core::mem::size_of::<Path>()
    );
    ::core::assert_eq!(<Path as ShmType>::LAYOUT.name(), "hygiene::Path");
    ::core::assert_eq!(
        <Path as ShmType>::LAYOUT.fields()[1].offset(),
        ::core::mem::offset_of!(Path, count)
    );
    ::core::assert_eq!(<Wrapper<Point> as ShmType>::LAYOUT.size(), 8);
}
