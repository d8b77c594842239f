use shmstore::ShmType;

#[derive(ShmType, Clone)]
#[repr(transparent)]
struct Wrapper<T>(T);

fn main() {}
