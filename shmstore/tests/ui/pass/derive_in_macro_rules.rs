use core::mem::{offset_of, size_of};
use shmstore::ShmType;

macro_rules! record {
    ($(#[$attr:meta])* $name:ident { $($field:ident: $ty:ty),* $(,)? }) => {
        #[derive(ShmType, Clone, Copy)]
        #[repr(C)]
        $(#[$attr])*
        struct $name {
            $($field: $ty),*
        }
    };
}

record!(Point { x: f32, y: f32 });
record!(
    #[shm(name = "shapes::Line")]
    Line {
        from: Point,
        to: Point,
        width: [u8; 4]
    }
);

fn main() {
    assert_eq!(Point::LAYOUT.size(), 8);
    assert_eq!(Line::LAYOUT.name(), "shapes::Line");
    assert_eq!(Line::LAYOUT.fields()[2].name(), "width");
    assert_eq!(Line::LAYOUT.fields()[2].offset(), offset_of!(Line, width));
    assert_eq!(Line::LAYOUT.size(), size_of::<Line>());
}
