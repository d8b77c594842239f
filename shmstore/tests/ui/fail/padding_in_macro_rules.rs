use shmstore::ShmType;

macro_rules! record {
    ($name:ident { $($field:ident: $ty:ty),* }) => {
        #[derive(ShmType, Clone, Copy)]
        #[repr(C)]
        struct $name {
            $($field: $ty),*
        }
    };
}

record!(Sample {
    small: u8,
    big: u64
});

fn main() {}
