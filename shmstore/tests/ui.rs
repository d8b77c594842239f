//! Compile tests for `#[derive(ShmType)]`, and for the thread-safety markers of the handles
//! (`ShmGuard` is not `Send`, `ShmQueue` is not `Sync`): every case is one file, built fully.
//!
//! `pass/` cases must build and run (each asserts something about `T::LAYOUT`); `fail/` cases
//! must fail with exactly the `.stderr` beside them, which shows what a user sees. One case per
//! file: when an earlier compiler pass fails, later ones (such as the constant evaluation behind
//! the padding proofs) report nothing for that file.
//!
//! Run with `CARGO_TARGET_DIR=/tmp/target-ui cargo test -p shmstore --test ui`. Regenerate the
//! snapshots with `TRYBUILD=overwrite` in front of that command, then read every changed
//! `.stderr`: it must point at the offending field or `repr` token and say how to fix it.
//!
//! # Built, not only checked
//!
//! trybuild compiles the cases of one `TestCases` together, with `cargo build` when the set has
//! at least one `pass` case and with `cargo check` otherwise (`trybuild/src/cargo.rs`:
//! `if project.has_pass { "build" } else { "check" }`). Both kinds are registered on the same
//! `TestCases` below, so the `fail` cases are built fully too. Do not split them into two
//! `TestCases`: the `fail` set alone would only be checked. Every refusal of the derive is a
//! parse error, a type-checking error or the evaluation of a `const _` item, all of which
//! `cargo check` reports as well, so the snapshots also show what a user sees under `check`.

#[test]
fn derive_ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
