use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[r#repr(packed)]
struct S {
    r#type: u8,
}

fn main() {}
