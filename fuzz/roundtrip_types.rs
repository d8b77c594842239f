// Derived types for the `roundtrip` target, exercising the derive's layouts. Shared with the
// corpus replay test (`shmstore/tests/fuzz_corpus.rs`) through `include!`.

/// A leaf struct.
#[derive(shmstore::ShmType, Clone, Copy)]
#[repr(C)]
pub struct Wheel {
    pub pressure: f32,
    pub rpm: u32,
}

/// Nested structs and an array of structs.
#[derive(shmstore::ShmType, Clone, Copy)]
#[repr(C)]
pub struct Robot {
    pub id: u64,
    pub wheels: [Wheel; 4],
    pub pose: [[f64; 3]; 2],
    pub flags: [u8; 8],
}

/// Packed: fields at unaligned offsets, no padding by construction.
#[derive(shmstore::ShmType, Clone, Copy)]
#[repr(C, packed)]
pub struct Packed {
    pub tag: u8,
    pub value: u64,
    pub small: u16,
    pub wide: i128,
}

/// Over-aligned: 16-byte alignment, filled exactly so that no padding remains.
#[derive(shmstore::ShmType, Clone, Copy)]
#[repr(C, align(16))]
pub struct Aligned {
    pub a: u128,
    pub b: [u32; 4],
    pub c: [Wheel; 2],
}

/// Runs `shmstore::fuzzing::roundtrip` for every type above, each on the same input.
pub fn roundtrip_all(data: &[u8]) {
    shmstore::fuzzing::roundtrip::<Robot>(data);
    shmstore::fuzzing::roundtrip::<Packed>(data);
    shmstore::fuzzing::roundtrip::<Aligned>(data);
    shmstore::fuzzing::roundtrip::<[Wheel; 3]>(data);
}
