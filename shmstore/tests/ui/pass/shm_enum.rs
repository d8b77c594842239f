use shmstore::value::EnumField;
use shmstore::{ShmEnum, ShmType};

#[derive(ShmEnum, Clone, Copy, Debug, PartialEq)]
#[repr(i16)]
enum Level {
    Low = -1,
    Mid,
    r#High = 300,
}

// Not `Copy`: `ShmEnum` does not need it.
#[derive(ShmEnum, Debug, PartialEq)]
#[repr(u8)]
enum Single {
    Only,
}

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Holder {
    level: EnumField<Level>,
    single: EnumField<Single>,
    more: u8,
}

fn main() {
    assert_eq!(Level::VARIANTS, [("Low", -1), ("Mid", 0), ("High", 300)]);
    assert_eq!(Level::from_repr(0), Some(Level::Mid));
    assert_eq!(Level::High.to_repr(), 300);
    assert_eq!(Single::from_repr(0), Some(Single::Only));
    assert_eq!(Holder::LAYOUT.size(), 4);
    assert_eq!(Holder::LAYOUT.fields()[0].layout().name(), "Level");
    let mut h: Holder = shmstore::zeroed();
    h.level.set(Level::Low);
    assert_eq!(h.level.get(), Ok(Level::Low));
    assert_eq!(h.single.get(), Ok(Single::Only));
}
