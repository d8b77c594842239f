use core::mem::{align_of, offset_of, size_of};
use shmstore::ShmType;

mod base {
    use shmstore::ShmType;
    #[derive(ShmType, Clone, Copy)]
    #[repr(C)]
    pub struct Pos {
        pub x: f32,
        pub y: f32,
    }
}

mod reordered {
    use shmstore::ShmType;
    #[derive(ShmType, Clone, Copy)]
    #[repr(C)]
    pub struct Pos {
        pub y: f32,
        pub x: f32,
    }
}

mod renamed {
    use shmstore::ShmType;
    #[derive(ShmType, Clone, Copy)]
    #[repr(C)]
    pub struct Pos {
        pub x: f32,
        pub z: f32,
    }
}

mod retyped {
    use shmstore::ShmType;
    #[derive(ShmType, Clone, Copy)]
    #[repr(C)]
    pub struct Pos {
        pub x: f32,
        pub y: i32,
    }
}

mod same {
    use shmstore::ShmType;
    #[derive(ShmType, Clone, Copy)]
    #[repr(C)]
    pub struct Pos {
        pub x: f32,
        pub y: f32,
    }
}

fn main() {
    let base = base::Pos::LAYOUT.fingerprint();
    assert_ne!(reordered::Pos::LAYOUT.fingerprint(), base);
    assert_ne!(renamed::Pos::LAYOUT.fingerprint(), base);
    assert_ne!(retyped::Pos::LAYOUT.fingerprint(), base);
    // The same definition elsewhere has the same fingerprint: it is computed from the layout,
    // not from the module path.
    assert_eq!(same::Pos::LAYOUT.fingerprint(), base);
    // Known at compile time.
    const BASE: u64 = base::Pos::LAYOUT.fingerprint();
    assert_eq!(BASE, base);
    assert_eq!(size_of::<same::Pos>(), 8);
    assert_eq!(offset_of!(same::Pos, y), 4);
    assert_eq!(align_of::<same::Pos>(), 4);
}
