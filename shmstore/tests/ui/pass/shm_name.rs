use core::mem::{align_of, offset_of, size_of};
use shmstore::ShmType;

mod v1 {
    use shmstore::ShmType;

    #[derive(ShmType, Clone, Copy)]
    #[repr(C)]
    #[shm(name = "app::Limits")]
    pub struct Limits {
        pub rate: u32,
        pub burst: u32,
    }
}

mod v2 {
    use shmstore::ShmType;

    // Renamed and moved, but its stored name is pinned: the layouts still match.
    #[derive(ShmType, Clone, Copy)]
    #[repr(C)]
    #[shm(name = "app::Limits")]
    pub struct RateLimits {
        pub rate: u32,
        pub burst: u32,
    }
}

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
struct Limits {
    rate: u32,
    burst: u32,
}

fn main() {
    assert_eq!(v1::Limits::LAYOUT.name(), "app::Limits");
    assert_eq!(v2::RateLimits::LAYOUT.name(), "app::Limits");
    assert_eq!(
        v1::Limits::LAYOUT.fingerprint(),
        v2::RateLimits::LAYOUT.fingerprint()
    );
    // The name is part of the fingerprint.
    assert_eq!(Limits::LAYOUT.name(), "Limits");
    assert_ne!(
        Limits::LAYOUT.fingerprint(),
        v1::Limits::LAYOUT.fingerprint()
    );
    assert_eq!(size_of::<Limits>(), v1::Limits::LAYOUT.size());
    let _ = (
        v1::Limits { rate: 1, burst: 2 },
        v2::RateLimits { rate: 1, burst: 2 },
    );
    let _ = offset_of!(Limits, burst);
    let _ = align_of::<Limits>();
}
