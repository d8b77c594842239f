use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Guard {
    id: u32,
}

impl Drop for Guard {
    fn drop(&mut self) {}
}

fn main() {}
