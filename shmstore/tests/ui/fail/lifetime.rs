use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct View<'a> {
    bytes: &'a [u8; 4],
}

fn main() {}
