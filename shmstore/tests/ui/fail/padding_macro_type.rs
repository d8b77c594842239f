use shmstore::ShmType;

macro_rules! word {
    () => {
        u64
    };
}

// The field type comes out of a macro: the padding after `tag` is still found.
#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Sample {
    tag: u8,
    word: word!(),
}

fn main() {}
