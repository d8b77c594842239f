//! Issue 16, item 2 (reading half): a region opened for reading through a compatible layout,
//! and the `LayoutMismatch` that lists the incompatible fields.

use shmstore::{Error, Shm, ShmType};
use shmstore_tests::region;

/// Ten `u32` fields.
#[derive(ShmType, Clone, Copy, Debug, PartialEq, Default)]
#[repr(C)]
#[shm(name = "Wide")]
struct Ints {
    f0: u32,
    f1: u32,
    f2: u32,
    f3: u32,
    f4: u32,
    f5: u32,
    f6: u32,
    f7: u32,
    f8: u32,
    f9: u32,
}

/// The same ten fields, each an `f32`: every one incompatible.
#[derive(ShmType, Clone, Copy, Debug, PartialEq, Default)]
#[repr(C)]
#[shm(name = "Wide")]
struct Floats {
    f0: f32,
    f1: f32,
    f2: f32,
    f3: f32,
    f4: f32,
    f5: f32,
    f6: f32,
    f7: f32,
    f8: f32,
    f9: f32,
}

#[test]
fn a_layout_mismatch_lists_at_most_eight_incompatible_fields_and_how_many_more() {
    let (name, _cleanup) = region("proj-cap");
    let _shm = Shm::create(&name, Ints::default()).unwrap();
    let e = Shm::<Floats>::open(&name).expect_err("integers are not floats");
    let Error::LayoutMismatch { differences, .. } = &e else {
        panic!("expected LayoutMismatch, got {e:?}");
    };
    assert_eq!(differences.len(), 9, "{differences:?}");
    for (i, line) in differences.iter().take(8).enumerate() {
        assert!(
            line.starts_with(&format!("field `f{i}`: u32 in the region, f32 here: an integer")),
            "{line}"
        );
    }
    assert_eq!(differences[8], "and 2 more incompatible fields");
    let text = e.to_string();
    assert!(text.contains("Changing a region's type"), "{text}");
    let e = Shm::<Floats>::open_reader(&name).expect_err("not for reading either");
    assert!(matches!(e, Error::LayoutMismatch { .. }), "{e:?}");
}
