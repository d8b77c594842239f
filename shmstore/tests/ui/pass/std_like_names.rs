use core::mem::{align_of, offset_of, size_of};
use shmstore::ShmType;

// A user's own structs may share names with standard types that cannot be shared; the derive
// asks the compiler rather than guessing from the name.
mod shapes {
    use shmstore::ShmType;

    #[derive(ShmType, Clone, Copy)]
    #[repr(C)]
    pub struct Box {
        pub min: [f32; 2],
        pub max: [f32; 2],
    }

    #[derive(ShmType, Clone, Copy)]
    #[repr(C)]
    pub struct Cell {
        pub row: u16,
        pub col: u16,
    }

    #[derive(ShmType, Clone, Copy)]
    #[repr(transparent)]
    pub struct Option<T>(pub T);
}

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Board {
    bounds: shapes::Box,
    cursor: shapes::Cell,
    limit: shapes::Option<u32>,
}

fn main() {
    assert_eq!(Board::LAYOUT.size(), size_of::<Board>());
    assert_eq!(Board::LAYOUT.size(), 24);
    assert_eq!(Board::LAYOUT.fields()[0].layout().name(), "Box");
    assert_eq!(Board::LAYOUT.fields()[2].offset(), offset_of!(Board, limit));
    assert_eq!(align_of::<Board>(), 4);
}
