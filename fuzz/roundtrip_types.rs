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

/// An enum for `Values`.
#[derive(shmstore::ShmEnum, Clone, Copy, Debug, PartialEq)]
#[repr(i16)]
pub enum Level {
    Low = -1,
    Mid,
    High = 300,
}

/// Every value type of `shmstore::value` (issue 15), which any bytes must read without a panic.
#[derive(shmstore::ShmType, Clone, Copy, Debug)]
#[repr(C)]
pub struct Values {
    pub at: shmstore::value::Timestamp,
    pub wide: shmstore::value::FixedVec<u64, 3>,
    pub limit: shmstore::value::Opt<u32>,
    pub ports: shmstore::value::FixedVec<u16, 5>,
    pub level: shmstore::value::EnumField<Level>,
    pub name: shmstore::value::FixedStr<12>,
    pub bytes: shmstore::value::FixedVec<u8, 7>,
    pub on: shmstore::value::Flag,
    pub off: shmstore::value::Flag,
}

/// `data` (cut or zero-filled to the size) read as `Values` through every accessor, then each
/// field written back and read again: no accessor panics, and a write always reads back.
pub fn read_values(data: &[u8]) {
    let mut values: Values = shmstore::zeroed();
    let size = core::mem::size_of::<Values>();
    let n = data.len().min(size);
    // SAFETY: `Values` is `ShmType`, so `Pod`: no padding, and every bit pattern is a valid
    // value, so its first `n <= size` bytes may be overwritten with any bytes; the pointer comes
    // from a live `&mut`, valid and unaliased for `size` bytes while `bytes` lives.
    let bytes =
        unsafe { std::slice::from_raw_parts_mut((&mut values as *mut Values).cast::<u8>(), size) };
    bytes[..n].copy_from_slice(&data[..n]);
    let _ = format!("{values:?} {} {}", values.name, values.level);
    let _ = (
        values.name.as_str(),
        values.name.as_bytes(),
        values.level.get(),
    );
    let _ = (
        values.ports.as_slice(),
        values.ports.len(),
        values.wide.iter().map(|i| i.count()),
    );
    let _ = (
        values.limit.get(),
        values.on.get(),
        std::time::SystemTime::from(values.at),
    );
    let text = values.name.to_string();
    let fitting = text
        .char_indices()
        .map(|(i, c)| i + c.len_utf8())
        .take_while(|&end| end <= 12)
        .last();
    let text = &text[..fitting.unwrap_or(0)];
    values.name.set(text).expect("fits");
    assert_eq!(values.name.as_str(), Ok(text));
    values.ports.clear();
    values.ports.extend_from_slice(&[1, 2]).expect("room");
    assert_eq!(values.ports.as_slice(), Ok(&[1u16, 2][..]));
    values.level.set(Level::High);
    assert_eq!(values.level.get(), Ok(Level::High));
    values.limit.set(None);
    assert_eq!(values.limit.get(), None);
}

/// Runs `shmstore::fuzzing::roundtrip` for every type above, each on the same input.
pub fn roundtrip_all(data: &[u8]) {
    read_values(data);
    shmstore::fuzzing::roundtrip::<Values>(data);
    shmstore::fuzzing::roundtrip::<Robot>(data);
    shmstore::fuzzing::roundtrip::<Packed>(data);
    shmstore::fuzzing::roundtrip::<Aligned>(data);
    shmstore::fuzzing::roundtrip::<[Wheel; 3]>(data);
}
