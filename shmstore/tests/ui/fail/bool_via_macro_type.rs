use shmstore::ShmType;

macro_rules! record {
    ($ty:ty) => {
        #[derive(ShmType, Clone, Copy)]
        #[repr(C)]
        struct Sample {
            value: $ty,
        }
    };
}

record!(bool);

fn main() {}
