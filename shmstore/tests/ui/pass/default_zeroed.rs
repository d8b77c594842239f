// `#[shm(default_zeroed)]` gives `Default` as all zeroes, even for arrays `#[derive(Default)]`
// refuses, and for generic structs.
use shmstore::value::{FixedStr, FixedVec, Opt};
use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C)]
#[shm(default_zeroed)]
struct Big {
    samples: [u32; 1000],
    name: FixedStr<60>,
    ports: FixedVec<u16, 15>,
    limit: Opt<u64>,
}

#[derive(ShmType, Clone, Copy)]
#[repr(transparent)]
#[shm(default_zeroed, name = "Wrapped")]
struct Wrapper<T>(T);

fn main() {
    let big = Big::default();
    assert!(big.samples.iter().all(|&s| s == 0));
    assert_eq!(big.name, "");
    assert!(big.ports.is_empty());
    assert_eq!(big.limit.get(), None);
    let wrapped: Wrapper<[u64; 100]> = Default::default();
    assert_eq!(wrapped.0[99], 0);
    assert_eq!(Wrapper::<u8>::LAYOUT.name(), "Wrapped");
}
