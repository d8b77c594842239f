use shmstore::ShmEnum;

#[derive(ShmEnum)]
#[repr(u8)]
enum Never {}

fn main() {}
