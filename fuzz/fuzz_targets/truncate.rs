//! `shmstore::fuzzing::truncate_while_operating` on arbitrary bytes: a peer truncating and
//! rewriting a region while a forked child uses it, judged by the child's exit status.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| shmstore::fuzzing::truncate_while_operating(data));
