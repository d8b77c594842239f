//! Issue 16, item 2 (reading half): a region opened for reading through a compatible layout,
//! and the `LayoutMismatch` that lists the incompatible fields.

use std::time::Duration;

use shmstore::{Error, Shm, ShmType};
use shmstore_tests::config_versions::{ConfigFloatWorkers, ConfigV1, ConfigV2, LevelV1, LevelV2};
use shmstore_tests::{helper, region, Backend, Place};

/// The release-2 view of what `config-v1-writer` commits at `n`: the shared fields widened,
/// `retries` zero.
fn v2_at(n: u32) -> (u32, u32, u64, String, Option<LevelV2>) {
    let level = [LevelV2::Error, LevelV2::Warn, LevelV2::Info][n as usize % 3];
    (
        n,
        0,
        u64::from(u32::MAX - n),
        format!("svc-{n}"),
        Some(level),
    )
}

fn seen(c: &ConfigV2) -> (u32, u32, u64, String, Option<LevelV2>) {
    (
        c.workers,
        c.retries,
        c.timeout_ms,
        c.service.as_str().expect("text").to_string(),
        c.level.get().ok(),
    )
}

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
            line.starts_with(&format!(
                "field `f{i}`: u32 in the region, f32 here: an integer"
            )),
            "{line}"
        );
    }
    assert_eq!(differences[8], "and 2 more incompatible fields");
    let text = e.to_string();
    assert!(text.contains("Changing a region's type"), "{text}");
    let e = Shm::<Floats>::open_reader(&name).expect_err("not for reading either");
    assert!(matches!(e, Error::LayoutMismatch { .. }), "{e:?}");
}

shmstore_tests::for_each_backend!(
    a_newer_reader_reads_an_older_writer_s_region_through_its_own_type
);

/// A release-1 process creates and commits; a release-2 reader in this process opens the
/// region through `open_reader`, reads the shared fields (widened ones converted), zero for
/// the added field (each backend), wakes on each commit and never sees a torn value.
fn a_newer_reader_reads_an_older_writer_s_region_through_its_own_type(backend: Backend) {
    let place = Place::new(backend, "proj-v1-writer");
    let name = &place;
    let steps = 5;
    let mut writer = helper!("config-v1-writer", name, steps);
    assert_eq!(writer.line(), "created");
    let reader = Shm::<ConfigV2>::open_reader(name).expect("compatible for reading");
    assert!(reader.is_projected());
    assert_eq!(seen(&reader.read()), v2_at(0));
    let mut version = reader.version();
    for n in 1..=steps {
        writer.send("go");
        assert_eq!(writer.line(), format!("committed {n}"));
        version = reader
            .wait_for_change(version, Some(Duration::from_secs(30)))
            .expect("woken by the commit");
        assert_eq!(version, u64::from(n));
        assert_eq!(seen(&reader.read()), v2_at(n));
        let mut into = reader.read();
        into.retries = 99;
        reader.read_into(&mut into);
        assert_eq!(seen(&into), v2_at(n));
        let timed = reader.read_timeout(Duration::from_secs(30)).expect("read");
        assert_eq!(seen(&timed), v2_at(n));
    }
    writer.send("go");
    assert_eq!(writer.line(), "running");
    // Back-to-back commits: every projected snapshot is one committed value.
    let mut last = 0;
    for _ in 0..20_000 {
        let value = reader.read();
        let n = value.workers;
        assert_eq!(seen(&value), v2_at(n), "torn");
        assert!(n >= last, "went back from {last} to {n}");
        last = n;
    }
    // Writing through the other layout migrates the region (tests/tests/migration.rs); a
    // type that shares no field with it is still refused.
    writer.kill();
}

/// The identical type keeps the direct path; an older reader of a newer region, and a reader
/// whose field changed type, are refused naming the fields.
#[test]
fn incompatible_readers_are_refused_naming_the_fields() {
    let (name, _cleanup) = region("proj-v2-region");
    let mut creator = helper!("config-v2-create", name);
    assert_eq!(creator.line(), "created");
    let direct = Shm::<ConfigV2>::open_reader(&name).expect("its own type");
    assert!(!direct.is_projected());
    assert_eq!(direct.read().retries, 3);
    let e = Shm::<ConfigV1>::open_reader(&name).expect_err("v2 narrowed to v1");
    let Error::LayoutMismatch { differences, .. } = &e else {
        panic!("expected LayoutMismatch, got {e:?}");
    };
    let all = differences.join("\n");
    for field in [
        "field `timeout_ms`: u64 in the region, u32 here: narrowing",
        "field `service`",
        "field `level`",
    ] {
        assert!(all.contains(field), "{field} missing from {all}");
    }
    assert!(
        !all.contains("`workers`") && !all.contains("`retries`"),
        "{all}"
    );
    creator.kill();

    let (name, _cleanup) = region("proj-float");
    let mut writer = helper!("config-v1-writer", name, 0);
    // Never sent its go: it holds the value it created.
    assert_eq!(writer.line(), "created");
    let e = Shm::<ConfigFloatWorkers>::open_reader(&name).expect_err("workers changed type");
    let Error::LayoutMismatch { differences, .. } = &e else {
        panic!("expected LayoutMismatch, got {e:?}");
    };
    assert_eq!(differences.len(), 1, "{differences:?}");
    assert!(
        differences[0].starts_with("field `workers`: u32 in the region, f32 here"),
        "{differences:?}"
    );
    writer.kill();
}

/// The reverse direction where the rules allow it: a release-1 reader of a region whose type
/// has one more field reads the shared fields and does not see the other.
#[test]
fn an_older_reader_reads_a_region_with_a_field_it_lacks() {
    let (name, _cleanup) = region("proj-v1-plus");
    let mut creator = helper!("config-v1-plus-create", name);
    assert_eq!(creator.line(), "created");
    let reader = Shm::<ConfigV1>::open_reader(&name).expect("retries is kept");
    assert!(reader.is_projected());
    let seen = reader.read();
    assert_eq!(
        (
            seen.workers,
            seen.timeout_ms,
            seen.service.as_str().unwrap()
        ),
        (6, 700, "svc-plus")
    );
    assert_eq!(seen.level.get().ok(), Some(LevelV1::Warn));
    creator.kill();
}

/// Two `u32`s.
#[derive(ShmType, Clone, Copy, Debug, PartialEq, Default)]
#[repr(C)]
#[shm(name = "Two")]
struct Two {
    a: u32,
    b: u32,
}

/// The same two and one more: a compatible reader of `Two`.
#[derive(ShmType, Clone, Copy, Debug, PartialEq, Default)]
#[repr(C)]
#[shm(name = "Two")]
struct Three {
    a: u32,
    b: u32,
    c: u32,
}

/// A stored field table whose row for `b` points past the value (forged) is refused as
/// corrupt when a compatible type would project it, never read out of bounds.
#[test]
fn a_forged_row_outside_the_value_refuses_the_projection_as_corrupt() {
    use std::os::unix::fs::FileExt;
    let (name, _cleanup) = region("proj-forged");
    let _shm = Shm::create(&name, Two { a: 1, b: 2 }).unwrap();
    assert_eq!(
        Shm::<Three>::open_reader(&name).unwrap().read(),
        Three { a: 1, b: 2, c: 0 }
    );
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(shmstore_tests::shm_path(&name))
        .unwrap();
    let mut descriptor = vec![0u8; 64];
    file.read_exact_at(&mut descriptor, 256).unwrap();
    // The row of `b`: its path's length and text, its primitive, then its offset.
    let row = descriptor
        .windows(5)
        .position(|w| w == [1, 0, 0, 0, b'b'])
        .expect("the row of b");
    file.write_all_at(&1000u64.to_ne_bytes(), 256 + row as u64 + 5 + 4)
        .unwrap();
    let e = Shm::<Three>::open_reader(&name).expect_err("b lies outside the value");
    assert!(
        matches!(&e, Error::Corrupt { reason, .. } if reason.contains("`b` lies outside")),
        "{e:?}"
    );
}
