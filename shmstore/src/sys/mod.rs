//! The operating-system layer: the only code in the crate that calls libc or nix.
//!
//! Everything above this module reads as plain Rust over four small surfaces:
//! [`object`] (named shared-memory objects, their metadata, advisory locks and mappings),
//! [`mutex`] (the robust process-shared pthread mutex), [`futex`] (sleeping on a 32-bit word in
//! shared memory) and [`process`] (pids, uids, threads).

pub(crate) mod futex;
pub(crate) mod mutex;
pub(crate) mod object;
pub(crate) mod process;
