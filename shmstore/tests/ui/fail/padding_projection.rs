use shmstore::ShmType;

trait Storage {
    type Word;
}

struct Wide;

impl Storage for Wide {
    type Word = u64;
}

// `<Wide as Storage>::Word` is `u64`: the tokens do not say so, the compiler does.
#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Sample {
    flags: u16,
    word: <Wide as Storage>::Word,
}

fn main() {}
