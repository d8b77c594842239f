//! `shmstore::fuzzing::channel_records` on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shmstore::fuzzing::channel_records(data));
