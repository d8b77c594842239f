use shmstore::ShmType;

// A raw identifier names the same attribute: `r#repr` is `repr`, `r#Rust` is `Rust`.
#[derive(ShmType, Clone, Copy)]
#[r#repr(r#Rust)]
struct Sample {
    a: u32,
}

fn main() {}
