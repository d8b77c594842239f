use core::mem::{align_of, offset_of, size_of};
use shmstore::ShmType;

type Meters = f64;
type Id = u32;
type Ids = [Id; 2];

mod direct {
    use shmstore::ShmType;

    #[derive(ShmType, Clone, Copy)]
    #[repr(C)]
    pub struct Reading {
        pub distance: f64,
        pub ids: [u32; 2],
    }
}

mod aliased {
    use shmstore::ShmType;

    #[derive(ShmType, Clone, Copy)]
    #[repr(C)]
    pub struct Reading {
        pub distance: super::Meters,
        pub ids: super::Ids,
    }
}

mod retyped {
    use shmstore::ShmType;

    #[derive(ShmType, Clone, Copy)]
    #[repr(C)]
    pub struct Reading {
        pub distance: f64,
        pub ids: [i32; 2],
    }
}

fn main() {
    type Alias = direct::Reading;
    assert_eq!(
        Alias::LAYOUT.fingerprint(),
        direct::Reading::LAYOUT.fingerprint()
    );
    assert_eq!(
        aliased::Reading::LAYOUT.fingerprint(),
        direct::Reading::LAYOUT.fingerprint()
    );
    assert_eq!(aliased::Reading::LAYOUT.fields()[0].layout().name(), "f64");
    assert_ne!(
        retyped::Reading::LAYOUT.fingerprint(),
        direct::Reading::LAYOUT.fingerprint()
    );
    assert_eq!(size_of::<aliased::Reading>(), 16);
    assert_eq!(offset_of!(aliased::Reading, ids), 8);
    assert_eq!(align_of::<aliased::Reading>(), 8);
}
