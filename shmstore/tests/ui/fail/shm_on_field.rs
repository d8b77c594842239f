use shmstore::ShmType;

// `shm` is the derive's attribute, so the compiler accepts it anywhere in the struct;
// the derive refuses it where it would be silently ignored.
#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Sample {
    #[shm(name = "alpha")]
    a: u32,
}

fn main() {}
