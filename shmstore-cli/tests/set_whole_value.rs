//! `shmstore set NAME =VALUE` changes a value that has no fields (a counter `u64`, an array),
//! which `inspect` shows as `value = …`: FIELD=VALUE with no field has no other way to name
//! it.

mod common;

use common::*;
use shmstore::Shm;

#[test]
fn set_with_an_empty_field_changes_a_value_without_fields() {
    let (name, _cleanup) = region("set-whole");
    let counter = Shm::<u64>::create(&name, 1).unwrap();
    run(&["set", &name, "=42"]).ok();
    assert_eq!(counter.read(), 42);
    assert_eq!(run(&["get", &name, ""]).ok().stdout, "42\n");

    let (name, _cleanup) = region("set-whole-array");
    let ports = Shm::<[u16; 3]>::create(&name, [0; 3]).unwrap();
    run(&["set", &name, "=[8080, 8081, 8082]"]).ok();
    assert_eq!(ports.read(), [8080, 8081, 8082]);

    // A struct has fields: an empty path there is refused by the library, naming them.
    let (name, _cleanup) = region("set-whole-struct");
    let _sample = Shm::<Sample>::create(&name, sample()).unwrap();
    let ran = run(&["set", &name, "=1"]);
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    assert!(ran.stderr.contains("counter"), "{}", ran.stderr);
}
