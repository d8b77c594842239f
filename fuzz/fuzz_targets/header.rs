//! `shmstore::fuzzing::check_header_bytes` on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shmstore::fuzzing::check_header_bytes(data));
