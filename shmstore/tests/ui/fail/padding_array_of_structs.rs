use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Point {
    x: f64,
    y: f64,
}

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Path {
    len: u32,
    points: [Point; 4],
}

fn main() {}
