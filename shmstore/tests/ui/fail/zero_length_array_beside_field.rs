use shmstore::ShmType;

// `repr(transparent)` allows a zero-sized field beside the real one, but a zero-length array
// has no bytes to share: the field is refused.
#[derive(ShmType, Clone, Copy)]
#[repr(transparent)]
struct Tagged([u8; 0], u32);

fn main() {}
