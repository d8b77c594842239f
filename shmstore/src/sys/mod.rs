//! The operating-system layer: the only code in the crate that calls libc or nix.
//!
//! Everything above this module reads as plain Rust over five small surfaces:
//! [`object`] (shared-memory objects and files, their metadata, advisory locks and mappings),
//! [`sysv`] (System V segments),
//! [`mutex`] (the robust process-shared pthread mutex), [`futex`] (sleeping on a 32-bit word in
//! shared memory) and [`process`] (pids, uids, threads).

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod child;
pub(crate) mod eventfd;
pub(crate) mod futex;
pub(crate) mod mutex;
pub(crate) mod object;
pub(crate) mod process;
pub(crate) mod sysv;
