// Generic structs derive `ShmType` with `#[repr(C, packed)]`: no padding for any argument.
use core::mem::size_of;
use shmstore::value::{FixedStr, Flag};
use shmstore::ShmType;

#[derive(ShmType, Clone, Copy)]
#[repr(C, packed)]
struct Named<const N: usize> {
    name: FixedStr<N>,
    enabled: Flag,
}

#[derive(ShmType, Clone, Copy)]
#[repr(C, packed(1))]
struct Tagged<T: Copy, const N: usize>
where
    T: Send,
{
    tag: u8,
    values: [T; N],
}

fn main() {
    assert_eq!(Named::<5>::LAYOUT.size(), 10);
    assert_eq!(Named::<5>::LAYOUT.fields()[1].offset(), 9);
    assert_ne!(Named::<5>::LAYOUT.fingerprint(), Named::<6>::LAYOUT.fingerprint());
    assert_eq!(Tagged::<u64, 3>::LAYOUT.size(), size_of::<Tagged<u64, 3>>());
    assert_eq!(Tagged::<u64, 3>::LAYOUT.size(), 25);
    assert_eq!(Tagged::<u64, 3>::LAYOUT.fields()[1].offset(), 1);
    let mut named: Named<8> = shmstore::zeroed();
    named.name.set("eight").unwrap();
    assert_eq!(named.name, "eight");
}
