use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
union Bits {
    int: u32,
    float: f32,
}

fn main() {}
