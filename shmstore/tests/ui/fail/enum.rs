use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(u8)]
enum Mode {
    Off,
    On,
}

fn main() {}
