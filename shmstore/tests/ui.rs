//! Compile tests for `#[derive(ShmType)]`: every case is one file, built fully.
//!
//! `pass/` cases must build and run; `fail/` cases must fail with exactly the `.stderr` beside
//! them, which shows what a user sees. Regenerate snapshots with `TRYBUILD=overwrite` and review
//! the diff.

#[test]
fn derive_ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
