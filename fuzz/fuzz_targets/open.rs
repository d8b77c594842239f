//! `shmstore::fuzzing::open_arbitrary_object` on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shmstore::fuzzing::open_arbitrary_object(data));
