//! `shmstore_cli::fuzzing::render_arbitrary_descriptor`: the command's `inspect`, `watch` and
//! `header` on a region whose descriptor is arbitrary bytes; the generated C is checked by
//! `check_c_header` (and compiled by the corpus replay, `shmstore-cli/tests/fuzz_corpus.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = shmstore_cli::fuzzing::render_arbitrary_descriptor(data);
});
