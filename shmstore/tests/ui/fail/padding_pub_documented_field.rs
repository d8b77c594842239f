use shmstore::ShmType;

// The error points at the field's name, not at its attributes or visibility.
#[derive(ShmType, Clone, Copy)]
#[repr(C)]
pub struct Sample {
    /// The kind of record.
    pub kind: u8,
    /// Its length in bytes.
    #[allow(unused)]
    pub(crate) length: u32,
}

fn main() {}
