//! `shmstore::fuzzing::decode_descriptor` on arbitrary bytes: as a type descriptor and as a
//! versions table.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shmstore::fuzzing::decode_descriptor(data));
