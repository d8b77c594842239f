use shmstore::ShmType;

use std::marker::PhantomData;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Sample {
    a: u32,
    marker: PhantomData<u32>,
}

fn main() {}
