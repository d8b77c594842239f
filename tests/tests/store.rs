//! `Store`: short names under a prefix, listing and removing one namespace only.

use shmstore::{Error, Shm, Store};
use shmstore_tests::{unique_name, Counter, Place};

#[test]
fn prefixes_and_short_names_follow_the_name_rules() {
    for bad in ["", "a/b", "..", "sp ace", &"p".repeat(199)] {
        assert!(
            matches!(Store::new(bad), Err(Error::InvalidName { .. })),
            "prefix {bad:?}"
        );
    }
    let store = Store::new("gateway").unwrap();
    assert_eq!(store.prefix(), "gateway");
    assert_eq!(store.name_of("limits").unwrap(), "gateway.limits");
    // "gateway." is 8 bytes: 192 more make exactly 200, 193 one too many.
    assert!(store.name_of(&"s".repeat(192)).is_ok());
    for bad in ["", "a/b", "..", &"s".repeat(193)] {
        assert!(
            matches!(store.name_of(bad), Err(Error::InvalidName { .. })),
            "short name {bad:?}"
        );
    }
    // 198 bytes of prefix leave room for a one-byte short name, and no more.
    let longest = Store::new(&"p".repeat(198)).unwrap();
    assert_eq!(longest.name_of("x").unwrap().len(), 200);
    assert!(longest.name_of("xy").is_err());
}

#[test]
fn a_store_lists_and_removes_its_own_namespace_only() {
    let prefix = unique_name("store");
    // A neighbour whose prefix extends ours must not be taken for part of it.
    let neighbour_prefix = format!("{prefix}x");
    let mut cleanup = Vec::new();
    for name in ["a", "b", "foreign"] {
        cleanup.push(Place::adopt_name(&format!("{prefix}.{name}")));
    }
    cleanup.push(Place::adopt_name(&format!("{neighbour_prefix}.c")));

    let store = Store::new(&prefix).unwrap();
    let neighbour = Store::new(&neighbour_prefix).unwrap();
    let a = store.create::<Counter>("a", Counter::at(1)).unwrap();
    let b = store
        .open_or_create::<Counter>("b", || Counter::at(2))
        .unwrap();
    let c = neighbour.create::<Counter>("c", Counter::at(3)).unwrap();
    // An unfinished object in the namespace: not listed, but removed with it.
    std::fs::write(format!("/dev/shm/{prefix}.foreign"), b"").unwrap();

    let names: Vec<_> = store.list().unwrap().into_iter().map(|r| r.name).collect();
    assert_eq!(names, [format!("{prefix}.a"), format!("{prefix}.b")]);
    assert_eq!(
        store.open_reader::<Counter>("b").unwrap().read(),
        Counter::at(2)
    );
    assert_eq!(
        Shm::<Counter>::open(format!("{prefix}.a")).unwrap().read(),
        Counter::at(1)
    );

    assert_eq!(store.remove_all().unwrap(), 3);
    assert!(store.list().unwrap().is_empty());
    assert!(matches!(
        store.open::<Counter>("a"),
        Err(Error::NotFound { .. })
    ));
    // Handles still work; the neighbour is untouched.
    assert_eq!(a.read(), Counter::at(1));
    assert_eq!(b.read(), Counter::at(2));
    assert_eq!(neighbour.list().unwrap().len(), 1);
    assert_eq!(neighbour.open::<Counter>("c").unwrap().read(), c.read());
    assert_eq!(neighbour.remove_all().unwrap(), 1);
}
