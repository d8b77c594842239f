use shmstore::ShmType;

// `packed(2)` leaves padding for some arguments (`T = u8`), so a generic struct cannot use it.
#[derive(ShmType, Clone, Copy)]
#[repr(C, packed(2))]
struct Pair<T> {
    a: T,
    b: u16,
}

fn main() {}
