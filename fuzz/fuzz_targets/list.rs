//! `shmstore::fuzzing::list_arbitrary_objects` on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shmstore::fuzzing::list_arbitrary_objects(data));
