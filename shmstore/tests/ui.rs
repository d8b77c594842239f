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
//!
//! # One compiler's text
//!
//! The `.stderr` files hold the exact messages of one rustc, [`EXPECTED_RUSTC`]; another
//! release words or points its messages differently, and the comparison would fail without
//! anything being wrong. So the `fail` cases run only on that release, and on any other the
//! test prints why it skipped them. The `pass` cases compare no text: they run on every
//! toolchain. Moving to a new rustc means regenerating the snapshots with it (above), reading
//! the diff, and changing [`EXPECTED_RUSTC`] in the same commit.

use std::process::Command;

/// The rustc release whose messages the `fail/*.stderr` files hold (`rustc --version`'s
/// second word).
const EXPECTED_RUSTC: &str = "1.95.0";

/// The release of the rustc that trybuild will run: the `rustc` on the `PATH`, as cargo
/// (through rustup's `RUSTUP_TOOLCHAIN`, which this process inherits) resolves it.
fn rustc_release() -> Option<String> {
    let out = Command::new("rustc").arg("--version").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    text.split_whitespace().nth(1).map(str::to_owned)
}

#[test]
fn derive_ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    match rustc_release() {
        Some(release) if release == EXPECTED_RUSTC => t.compile_fail("tests/ui/fail/*.rs"),
        other => println!(
            "skipped: the compile-fail cases (tests/ui/fail) expect the messages of rustc \
             {EXPECTED_RUSTC}; this is rustc {}, so only the pass cases run. Run them all with \
             `cargo +{EXPECTED_RUSTC} test -p shmstore --test ui`.",
            other.as_deref().unwrap_or("of unknown release")
        ),
    }
}
