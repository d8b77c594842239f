//! Lock-free snapshot reads, published versions and waiting for a change.
//!
//! # Reading
//!
//! A reader copies the payload with relaxed atomic loads ([`copy_atomic`]) between two loads
//! of the version, and keeps the copy only if the version did not move (a seqlock read; in the
//! default mode the version also picks which of the two copies to read, see [`crate::lock`]).
//!
//! Why atomic loads: the writer may be storing into the bytes being copied (that is what the
//! version check detects). A plain `memcpy` racing with a write is a data race, which Rust
//! treats as undefined behaviour in the reading process even if the result is discarded;
//! relaxed atomic loads cannot race in that sense, may observe any mix of old and new bytes,
//! and the version check throws such a mix away. The reader never performs a non-atomic read
//! of bytes a writer may be storing into. The writer stores through its guard with ordinary
//! writes: when the writer is a thread of the reader's own process, Rust's memory model still
//! calls that overlap a data race, even though the bytes read are discarded; the same holds for
//! every seqlock written in Rust today, and nothing a compiler can do with it changes the
//! validated result. Across processes, the model does not reach the other side at all.
//!
//! The copy is a loop of relaxed `u64` loads (plain `mov`s on x86-64, faster here than
//! `atomic-memcpy`, DESIGN §7), and on x86-64 with AVX, from 256 bytes on, inline assembly
//! with 32-byte loads whose effect is that of relaxed byte loads: `memcpy`'s speed (module
//! `atomic_copy` argues why it is sound).
//!
//! # Never starving, never spinning unbounded
//!
//! A writer that commits back to back can move the version during every copy of a large value,
//! and a robust mutex is not fair: a writer that unlocks and locks again always beats a reader
//! that was woken to take it. So after [`LOCK_FREE_ATTEMPTS`] failed attempts a writable handle
//! *asks for help*: it increments `read_requests` in the header, and a writer about to lock that
//! sees an unserved request spins (at most 10 µs, once per request) before it locks. Meanwhile
//! the reader alternates `try_lock` — copying under the lock when it gets it (its guard never
//! writes, so it can neither poison nor roll back anything, and a reader killed there leaves
//! nothing to repair) — and lock-free attempts, for up to [`HELP_WINDOW`]. After that it keeps
//! trying with `try_lock` and sleeps on the version between attempts. It never blocks on the
//! lock, so in the default mode a reader still never waits for a writer that holds the lock:
//! while the lock is held and the version does not move, the lock-free read succeeds. The same
//! `try_lock` recovers an `in_place` writer that died with the version odd. Writers wait for
//! readers only in this bounded way and the one below for large values, and only when a
//! reader could not otherwise make progress.
//!
//! A read-only handle cannot lock or write the header: after its attempts it sleeps on the
//! version in slices of at most 50 µs between attempts, which bounds its spinning; an
//! `in_place` region whose writer died leaves it waiting until a writable handle repairs it
//! (bounded by `read_timeout`).
//!
//! For a payload of [`HELP_READERS_FROM`] bytes or more neither is enough: each copy stays
//! stable only from one version change to the next (the working copy during a commit, the
//! second copy during a write), a back-to-back writer of 1 MiB changes the version every few
//! tens of microseconds, a reader copying with atomic loads is slower than the writer's
//! `memcpy`, and the lock is almost never free; no attempt ever completes. A futex needs no
//! write access, so such a reader, read-only or not, asks with one: it sleeps on
//! `read_requests` (without changing it) in slices of [`ASK_SLICE`], trying a lock-free copy
//! (and, when writable, `try_lock`) between them. A writer, holding the lock before the first
//! write of a guard and at most once per [`LOOK_EVERY_BYTES`] committed, wakes that word; the
//! kernel says how many slept there. If any did, the writer keeps holding the lock with the
//! version even — both copies stable — until as many `FUTEX_WAKE`s on `reads_served` told it
//! the readers are done, or [`HOLD_AT_MOST`] passed. Holding is rationed for the region, not per
//! writer or handle: after a hold of `d`, no writer holds again for `4 d` (the header's
//! `help_resumes_at`, see [`HOLD_SHARE`]). So readers that ask and never answer cost the
//! region's writers together at most a fifth of the lock's time, in stalls of at most
//! [`HOLD_AT_MOST`] (the README's threat model says so). Small payloads never pay for any of
//! it: the writer's test is one comparison of the payload size.
//!
//! Waiting for a change (the version's eventcount) is in `wait`.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{fence, AtomicU64};
use std::time::{Duration, Instant};

use crate::atomic_copy::copy_atomic;
use crate::error::{Error, Result};
use crate::format::LoadAcquire;
use crate::lock::Wait;
use crate::region::Region;
use crate::sys::futex;
use crate::sys::mutex::LockFailure;
use crate::sys::process::{self, thread_token};
use crate::wait::{time_left, TimedOut};

/// Lock-free copies tried before a writable handle falls back to `try_lock`.
const LOCK_FREE_ATTEMPTS: u32 = 3;
/// How long a reader of an `in_place` region keeps failing lock-free before it asks writers
/// for help.
const HELP_AFTER: Duration = Duration::from_micros(1);
/// How long a starving reader keeps trying with writers backing off before it goes back to
/// the slower retry loop.
const HELP_WINDOW: Duration = Duration::from_micros(100);
/// Failed attempts after which a reader sleeps between attempts instead of spinning.
const ATTEMPTS_BEFORE_SLEEP: u32 = 64;
/// The longest a reader sleeps between attempts once it stopped spinning: long enough to let
/// a busy writer run, short enough that a read-only handle (which cannot ask writers for help)
/// is not held up for long by a writer that is already done.
const RETRY_SLEEP: Duration = Duration::from_micros(50);
/// Payloads from this size on take long enough to copy that back-to-back commits can starve a
/// reader, so their writers look for readers asking for help. Below it a copy costs little
/// more than a commit's unlock and lock, and writers never look.
pub(crate) const HELP_READERS_FROM: usize = 16 << 10;
/// Bytes a writer commits between two looks for readers asking for help: about one
/// `FUTEX_WAKE` per MiB copied by commits, a cost of the order of 1 %.
const LOOK_EVERY_BYTES: usize = 1 << 20;
/// How long a starving reader sleeps asking for help before it tries a copy again.
const ASK_SLICE: Duration = Duration::from_millis(1);
/// The longest a writer keeps the value stable for the readers it woke. Readers say when they
/// are done, so this only matters for one that never does (killed, or hostile); it is generous
/// because a reader on a loaded machine, or in an unoptimised build, copies 1 MiB in
/// milliseconds.
const HOLD_AT_MOST: Duration = Duration::from_millis(50);
/// Holding is rationed for the region as a whole, not per handle: after a hold of `d`, no
/// writer of the region holds again before `(HOLD_SHARE - 1) d` has passed (the header's
/// `help_resumes_at`, which only the lock holder touches). However many writers and handles
/// there are and however readers behave, holds take at most 1 / HOLD_SHARE of the lock's time,
/// in stalls of at most [`HOLD_AT_MOST`].
const HOLD_SHARE: u32 = 5;

/// The version the API reports (`version()`, `wait_for_change`, the `shmstore` command) for a
/// raw version word: the number of versions published since the region was created.
///
/// The word moves by two per publish: odd when a holder begins writing, even again when it
/// commits (or a locker rolls the write back, or poisons an in-place region) (FORMAT.md). Half
/// of it, rounded down, counts the publishes completed whatever its parity: a region never
/// written is at version 0, and every commit adds exactly one, so a reader that sees version
/// 3 and then 5 knows that exactly one commit came between the two. A write under way (an
/// odd word) does not count until it is published.
#[inline]
pub(crate) const fn version_from_word(word: u64) -> u64 {
    word >> 1
}

impl Region {
    /// The last published version, as the API counts them (see [`version_from_word`]).
    #[inline]
    pub(crate) fn published_version(&self) -> u64 {
        // Read-only handles load it too: see `LoadAcquire`.
        version_from_word(self.header().version.load_acquire())
    }

    /// The copy readers use at `version`: the working copy when it is even, the second copy
    /// when it is odd, none (wait) when it is odd in place.
    #[inline]
    fn readable_copy(&self, version: u64) -> Option<*const u8> {
        if version & 1 == 0 {
            Some(self.working_copy())
        } else {
            self.second_copy().map(<*mut u8>::cast_const)
        }
    }

    /// A consistent copy of the payload into `out`, without blocking on the lock. `size` is the
    /// payload size, passed by the typed caller as `size_of::<T>()` so the copy is unrolled.
    ///
    /// # Safety
    ///
    /// `out` must be valid for writes of `size` bytes, and `size` must be the payload size.
    #[inline]
    pub(crate) unsafe fn snapshot_into(
        &self,
        out: *mut u8,
        size: usize,
        deadline: Option<Instant>,
    ) -> Result<(), TimedOut> {
        debug_assert_eq!(size, self.info().layout.payload_size);
        let version = &self.header().version;
        // Relaxed and a fence, for read-only mappings (see `LoadAcquire`): the same code as
        // an acquire load on x86-64, so the writable fast path pays nothing.
        let before = version.load_acquire();
        if let Some(source) = self.readable_copy(before) {
            // SAFETY: `source` is a payload copy: `size` bytes inside the mapping, aligned to
            // at least 64; `out` is valid for `size` bytes (caller).
            unsafe { copy_atomic(source, out, size) };
            fence(Acquire);
            if version.load(Relaxed) == before {
                return Ok(());
            }
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { self.snapshot_slow(out, size, deadline) }
    }

    /// # Safety
    ///
    /// As [`snapshot_into`](Self::snapshot_into).
    #[cold]
    #[inline(never)]
    unsafe fn snapshot_slow(
        &self,
        out: *mut u8,
        size: usize,
        deadline: Option<Instant>,
    ) -> Result<(), TimedOut> {
        let version = &self.header().version;
        let mut failures = 1u32;
        let mut started: Option<Instant> = None;
        let mut helped = false;
        let ask_writers = size >= HELP_READERS_FROM;
        let mut asked = false;
        loop {
            let before = version.load_acquire();
            if before & 1 == 1 && self.in_place() && self.holder.load(Relaxed) == thread_token() {
                self.panic_reading_own_write();
            }
            if let Some(source) = self.readable_copy(before) {
                // SAFETY: as in `snapshot_into`.
                if unsafe { copy_validated(source, out, size, version, before) } {
                    if asked {
                        // A writer may be holding the value stable for us: let it go on.
                        futex::wake_all(&self.header().reads_served);
                    }
                    return Ok(());
                }
            }
            failures += 1;
            if ask_writers && failures >= LOCK_FREE_ATTEMPTS {
                // A writable handle tries the lock first: free, it copies under it; held by a
                // dead writer, it repairs the region.
                // SAFETY: the caller's contract, passed on; the region is writable.
                if self.writable() && unsafe { self.copy_under_lock(out, size) } {
                    if asked {
                        futex::wake_all(&self.header().reads_served);
                    }
                    return Ok(());
                }
                asked = true;
                let slice = time_left(deadline)?.map_or(ASK_SLICE, |left| left.min(ASK_SLICE));
                self.ask_writers_for_help(slice);
                continue;
            }
            if !helped && failures >= LOCK_FREE_ATTEMPTS && self.writable() {
                // In place, a failure can cost no copy at all (the version is odd): ask only
                // once the attempts have also taken a while. In the default mode each failure
                // was a copy attempt already.
                let waited_enough = !self.in_place()
                    || started.get_or_insert_with(Instant::now).elapsed() >= HELP_AFTER;
                if waited_enough {
                    helped = true;
                    // SAFETY: the caller's contract, passed on.
                    if unsafe { self.request_help(out, size) } {
                        return Ok(());
                    }
                }
            } else if helped {
                // SAFETY: the caller's contract, passed on.
                if unsafe { self.copy_under_lock(out, size) } {
                    return Ok(());
                }
            }
            if failures < ATTEMPTS_BEFORE_SLEEP {
                std::hint::spin_loop();
                continue;
            }
            let slice = time_left(deadline)?.map_or(RETRY_SLEEP, |left| left.min(RETRY_SLEEP));
            futex::wait_low_half(version, before as u32, Some(slice));
        }
    }

    #[cold]
    fn panic_reading_own_write(&self) -> ! {
        panic!(
            "read() on in-place region `{}` from the thread whose guard is writing it would wait \
             for itself; read through the guard instead",
            self.name()
        )
    }

    /// A starving reader's request for help: sleeps on `read_requests`, without changing it,
    /// for at most `slice`. A writer that looks wakes it with the value held stable.
    fn ask_writers_for_help(&self, slice: Duration) {
        let word = &self.header().read_requests;
        futex::wait(word, word.load(Relaxed), Some(slice));
    }

    /// Called by a writer holding the lock, before the first write of a guard (the version is
    /// even, both copies hold the committed value): at most once per [`LOOK_EVERY_BYTES`]
    /// committed, wakes readers asking for help and holds the value stable until they say they
    /// are done or the hold runs out (see the module docs).
    #[cold]
    #[inline(never)]
    pub(crate) fn help_starving_readers(&self) {
        let mut committed_since = match self.reader_help.try_lock() {
            Ok(committed_since) => committed_since,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            // Only the lock holder gets here, so this cannot happen; never wait for it.
            Err(std::sync::TryLockError::WouldBlock) => return,
        };
        if !time_to_look(&mut committed_since, self.info().layout.payload_size) {
            return;
        }
        let h = self.header();
        // Only the lock holder reads or writes `help_resumes_at`: plain relaxed accesses.
        if !hold_allowed(process::monotonic_ns(), h.help_resumes_at.load(Relaxed)) {
            return;
        }
        let asking = futex::wake_all_counting(&h.read_requests);
        if asking == 0 {
            return;
        }
        let now = Instant::now();
        let deadline = now + HOLD_AT_MOST;
        for _ in 0..asking {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            // Any wake, a timeout or a change of `reads_served` (a writable reader finishing
            // its own request) counts as one reader done: the loop stays bounded either way.
            futex::wait(&h.reads_served, h.reads_served.load(Relaxed), Some(left));
        }
        let held = now.elapsed();
        h.help_resumes_at
            .store(resumes_after(process::monotonic_ns(), held), Relaxed);
    }

    /// Asks writers to back off (`read_requests`, see lock.rs) and, for up to [`HELP_WINDOW`],
    /// alternates `try_lock` copies and lock-free copies. `true` once `out` holds a value.
    ///
    /// # Safety
    ///
    /// As [`snapshot_into`](Self::snapshot_into); the region is writable.
    unsafe fn request_help(&self, out: *mut u8, size: usize) -> bool {
        let h = self.header();
        h.read_requests.fetch_add(1, Relaxed);
        // Served however this ends, unwinding included, so writers stop backing off.
        let _served = Served(self);
        let version = &h.version;
        let start = Instant::now();
        let mut tries = 0u32;
        loop {
            // SAFETY: the caller's contract, passed on.
            if unsafe { self.copy_under_lock(out, size) } {
                return true;
            }
            let before = version.load(Acquire);
            if let Some(source) = self.readable_copy(before) {
                // SAFETY: as in `snapshot_into`.
                if unsafe { copy_validated(source, out, size, version, before) } {
                    return true;
                }
            }
            tries += 1;
            if tries % 16 == 0 && start.elapsed() >= HELP_WINDOW {
                return false;
            }
            std::hint::spin_loop();
        }
    }

    /// The fallback: `try_lock`, copy the committed value, unlock. `false` if the lock is
    /// taken (or unusable), so the caller goes on lock-free.
    ///
    /// # Safety
    ///
    /// As [`snapshot_into`](Self::snapshot_into); the region is writable.
    unsafe fn copy_under_lock(&self, out: *mut u8, size: usize) -> bool {
        match self.acquire(Wait::No) {
            Ok(_) => {}
            // This thread holds the lock through another handle and is writing in place: the
            // version stays odd until it releases, which it cannot do while it waits here.
            Err(LockFailure::Deadlock)
                if self.in_place() && self.header().version.load(Relaxed) & 1 == 1 =>
            {
                self.panic_reading_own_write()
            }
            Err(_) => return false,
        }
        // Holding the lock, after `acquire` repaired anything a dead holder left: nobody
        // writes, and the working copy is the committed value.
        // SAFETY: as in `snapshot_into`.
        unsafe { copy_atomic(self.working_copy(), out, size) };
        // SAFETY: acquired above by this thread; nothing was written; `size` is the payload
        // size (caller).
        unsafe { self.release(false, size) };
        true
    }
}

/// The error of a read-only snapshot that found no consistent value within `timeout`.
pub(crate) fn read_timed_out(name: &str, timeout: Duration) -> Error {
    Error::Timeout {
        name: name.to_string(),
        waiting_for: "a consistent value (an in-place write in progress, writers committing \
                      faster than the value can be copied, or a dead in-place writer that no \
                      writable handle has repaired yet)",
        after: timeout,
    }
}

/// Counts a commit of `bytes` in a handle's `committed_since` (the payload bytes committed
/// through it since it last looked for readers: [`Region::help_starving_readers`]); `true` when
/// a [`LOOK_EVERY_BYTES`] was committed since the last look.
fn time_to_look(committed_since: &mut usize, bytes: usize) -> bool {
    *committed_since = committed_since.saturating_add(bytes);
    if *committed_since < LOOK_EVERY_BYTES {
        return false;
    }
    *committed_since = 0;
    true
}

/// Whether the region's holding budget allows a hold at `now` (ns of `CLOCK_MONOTONIC`), given
/// its `help_resumes_at`. A value further ahead than any hold could have set comes from
/// another clock (a forged header, or a file region from before a reboot that was not reset):
/// it is ignored rather than obeyed for days.
fn hold_allowed(now: u64, resumes_at: u64) -> bool {
    let furthest = u64::try_from(HOLD_AT_MOST.as_nanos() * u128::from(HOLD_SHARE)).unwrap_or(0);
    now >= resumes_at || resumes_at - now > furthest
}

/// The `help_resumes_at` after a hold that ended at `ended` (ns) and lasted `held`.
fn resumes_after(ended: u64, held: Duration) -> u64 {
    let rest = held.saturating_mul(HOLD_SHARE - 1);
    ended.saturating_add(u64::try_from(rest.as_nanos()).unwrap_or(u64::MAX))
}

/// Counts a read request as served when dropped.
struct Served<'a>(&'a Region);

impl Drop for Served<'_> {
    fn drop(&mut self) {
        self.0.header().reads_served.fetch_add(1, Release);
    }
}

/// A seqlock copy that gives up as soon as the version moves: `true` if `dst` holds a copy made
/// entirely at version `before`. The slow path uses it so that a failed attempt on a large value
/// costs a chunk, not the whole value.
///
/// # Safety
///
/// As [`copy_atomic`], for `src`, `dst` and `len`.
unsafe fn copy_validated(
    src: *const u8,
    dst: *mut u8,
    len: usize,
    version: &AtomicU64,
    before: u64,
) -> bool {
    const CHUNK: usize = 512;
    let mut done = 0;
    while done < len {
        let n = CHUNK.min(len - done);
        // SAFETY: `done < len`: within the caller's `len` source bytes.
        let from = unsafe { src.add(done) };
        // SAFETY: as above, within the `len` destination bytes.
        let to = unsafe { dst.add(done) };
        // SAFETY: `done + n ≤ len`, so both ranges stay within the caller's `len` bytes, and
        // `from` stays 8-byte aligned (CHUNK is a multiple of 8); the rest is the caller's.
        unsafe { copy_atomic(from, to, n) };
        done += n;
        fence(Acquire);
        if version.load(Relaxed) != before {
            return false;
        }
    }
    true
}

/// Reads the region into `out`, however long it takes.
#[inline]
pub(crate) fn snapshot_to<T: bytemuck::Pod>(region: &Region, out: &mut T) {
    // SAFETY: `out` is a valid `T`, so `size_of::<T>()` writable bytes, which is the payload
    // size (the region was validated for `T`); any bytes written are a valid `T` (`Pod`).
    let done = unsafe {
        region.snapshot_into((out as *mut T).cast::<u8>(), std::mem::size_of::<T>(), None)
    };
    if done.is_err() {
        unreachable!("a read without a deadline cannot time out");
    }
}

/// A `T` read from the region, however long it takes.
#[inline]
pub(crate) fn snapshot<T: bytemuck::Pod>(region: &Region) -> T {
    match snapshot_until(region, None) {
        Ok(value) => value,
        Err(TimedOut) => unreachable!("a read without a deadline cannot time out"),
    }
}

/// A `T` read from the region; `Err` only when `deadline` passes first (an `in_place` write
/// that lasts, a dead `in_place` writer a read-only handle cannot repair, or writers that
/// commit faster than the value can be copied for the whole time).
#[inline]
pub(crate) fn snapshot_until<T: bytemuck::Pod>(
    region: &Region,
    deadline: Option<Instant>,
) -> Result<T, TimedOut> {
    let mut out = std::mem::MaybeUninit::<T>::uninit();
    // SAFETY: `out` has room for `size_of::<T>()` bytes, which is the payload size (the region
    // was validated for `T`).
    unsafe {
        region.snapshot_into(
            out.as_mut_ptr().cast::<u8>(),
            std::mem::size_of::<T>(),
            deadline,
        )?
    };
    // SAFETY: every byte was written by the copy, and `T: Pod` accepts any bytes.
    Ok(unsafe { out.assume_init() })
}

/// The region's value as bytes (whatever its stored type), read into `out` (resized to the
/// payload size): what a projection reads from. `Err` only when `deadline` passes first.
pub(crate) fn snapshot_bytes_until(
    region: &Region,
    out: &mut Vec<u8>,
    deadline: Option<Instant>,
) -> Result<(), TimedOut> {
    let size = region.info().layout.payload_size;
    out.resize(size, 0);
    // SAFETY: `out` holds exactly `size` writable bytes, and `size` is the payload size.
    unsafe { region.snapshot_into(out.as_mut_ptr(), size, deadline) }
}

/// [`snapshot_until`] `timeout` from now, with the public error: the typed handles'
/// `read_timeout`.
pub(crate) fn snapshot_within<T: bytemuck::Pod>(region: &Region, timeout: Duration) -> Result<T> {
    // A timeout too large to represent as a deadline means no deadline.
    snapshot_until(region, Instant::now().checked_add(timeout))
        .map_err(|TimedOut| read_timed_out(region.name(), timeout))
}

#[cfg(test)]
mod tests {
    //! The reading paths, each with its test (states, counts and returned values; deadlines
    //! only bound a failure, they are never what a test measures):
    //!
    //! - retry under a moving version, one request per read →
    //!   `reads_under_a_back_to_back_writer_are_consistent`
    //! - a failed attempt gives up at the first moved chunk →
    //!   `regression_a_failed_copy_of_a_large_value_went_on_to_the_end`
    //! - try_lock after LOCK_FREE_ATTEMPTS: repairs a dead writer →
    //!   `a_writable_reader_repairs_a_dead_in_place_writer_under_try_lock`
    //! - starvation: the reader asks for help, once, served →
    //!   `a_starving_reader_asks_once_and_gets_the_committed_value`
    //! - timeouts: writable, read-only and large-value readers →
    //!   `a_reader_with_a_deadline_behind_a_stuck_writer_times_out`
    //! - read of one's own in-place write through another handle →
    //!   `regression_an_in_place_read_through_a_second_handle_of_the_writer_hung`
    //! - the hold budget in the header, for every handle →
    //!   `regression_a_fresh_handle_held_for_readers_again_within_the_budget`
    //! - the hold budget's arithmetic → the three tests that follow these

    use std::sync::atomic::Ordering::SeqCst;
    use std::sync::mpsc;
    use std::sync::Arc;

    use super::*;
    use crate::layout::ShmType;
    use crate::region::scratch_handles;
    use crate::sys::object::Access;

    type Value = [u64; 32];
    /// A payload of HELP_READERS_FROM bytes: its writers look for readers asking for help.
    type Large = [u64; HELP_READERS_FROM / 8];

    /// Generous: only a broken path gets near it, and then the test fails instead of hanging.
    const HANG: Duration = Duration::from_secs(20);

    fn deadline() -> Option<Instant> {
        Some(Instant::now() + HANG)
    }

    /// Takes the lock and opens the latch, then writes `word` into every word of the working
    /// copy.
    fn lock_and_write(region: &Region, word: u64) {
        region.acquire(Wait::Forever).expect("lock");
        region.begin_write();
        write(region, word);
    }

    fn write(region: &Region, word: u64) {
        let words = region.info().layout.payload_size / 8;
        for i in 0..words {
            // SAFETY: `i < words`: within the working copy's `payload_size` bytes.
            let at = unsafe { region.working_copy().cast::<u64>().add(i) };
            // SAFETY: the caller holds the lock with the latch open, so this thread is the
            // only writer of the working copy; `at` is 8-aligned (the copy is 64-aligned).
            unsafe { at.write_volatile(word) };
        }
    }

    /// Commits and unlocks (see `lock_and_write`).
    fn commit(region: &Region) {
        let size = region.info().layout.payload_size;
        // SAFETY: held by this thread (`lock_and_write`), written; `size` is the payload size.
        unsafe { region.release(true, size) };
    }

    fn all_equal(value: &[u64]) -> bool {
        value.iter().all(|w| *w == value[0])
    }

    /// A holder that stays mid-write on its own thread until told to commit `word`.
    struct StuckWriter {
        commit: mpsc::Sender<u64>,
        thread: std::thread::JoinHandle<()>,
    }

    impl StuckWriter {
        fn start(region: &Arc<Region>) -> StuckWriter {
            let (locked, is_locked) = mpsc::channel();
            let (tell, to_commit) = mpsc::channel();
            let region = Arc::clone(region);
            let thread = std::thread::spawn(move || {
                lock_and_write(&region, 1);
                locked.send(()).unwrap();
                let word = to_commit.recv().unwrap_or(2);
                write(&region, word);
                commit(&region);
            });
            is_locked.recv().unwrap();
            StuckWriter {
                commit: tell,
                thread,
            }
        }

        fn finish(self, word: u64) {
            self.commit.send(word).unwrap();
            self.thread.join().unwrap();
        }
    }

    /// Sets its flag when dropped, also while the test unwinds, so that helper threads that
    /// wait for it end.
    struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);

    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, SeqCst);
        }
    }

    /// Runs `read` on its own thread: `None` if it did not return within [`HANG`].
    fn within_hang<R: Send + 'static>(read: impl FnOnce() -> R + Send + 'static) -> Option<R> {
        let (done, result) = mpsc::channel();
        std::thread::spawn(move || done.send(read()));
        result.recv_timeout(HANG).ok()
    }

    /// A writer committing back to back moves the version under the reader: every read still
    /// returns one committed value, values never go back, and a read asks for help at most once.
    /// (4 KiB, so that a copy and a write overlap often: a missing version check shows.)
    #[test]
    fn reads_under_a_back_to_back_writer_are_consistent() {
        type Mid = [u64; 512];
        let region = scratch_handles("retry", &Mid::LAYOUT, false, Access::ReadWrite).0;
        let h = region.header();
        let stop = std::sync::atomic::AtomicBool::new(false);
        let mut reads = 0;
        std::thread::scope(|scope| {
            let _stop = StopOnDrop(&stop);
            scope.spawn(|| {
                let mut word = 0;
                while !stop.load(SeqCst) {
                    word += 1;
                    lock_and_write(&region, word);
                    commit(&region);
                }
            });
            // Reads for as long as the writer makes its first 3000 commits.
            let (mut last, by) = (0, Instant::now() + HANG);
            while last < 3000 && Instant::now() < by {
                let value: Mid = snapshot_until(&region, deadline()).expect("a read timed out");
                reads += 1;
                assert!(all_equal(&value), "a torn read: {:?}", &value[..]);
                assert!(value[0] >= last, "went back from {last} to {}", value[0]);
                last = value[0];
            }
        });
        let asked = h.read_requests.load(SeqCst);
        assert!(asked <= reads, "{asked} requests for {reads} reads");
        assert_eq!(
            h.reads_served.load(SeqCst),
            asked,
            "a request left unserved"
        );
    }

    /// Bug: a failed attempt copied the whole value before it looked at the version again, so
    /// a reader of a large value under a busy writer never finished one (commit f2e1d21). A
    /// failed attempt now stops at the first chunk after the version moved.
    #[test]
    fn regression_a_failed_copy_of_a_large_value_went_on_to_the_end() {
        let source = vec![7u64; 1024];
        let mut out = vec![0u64; 1024];
        let version = AtomicU64::new(4);
        // SAFETY: both buffers hold 8 KiB, 8-aligned, and do not overlap.
        let copied = unsafe {
            copy_validated(
                source.as_ptr().cast(),
                out.as_mut_ptr().cast(),
                8192,
                &version,
                2,
            )
        };
        assert!(!copied);
        let done = out.iter().filter(|w| **w == 7).count();
        assert_eq!(
            done,
            512 / 8,
            "copied past the first chunk after the version moved"
        );
        // SAFETY: as above.
        let copied = unsafe {
            copy_validated(
                source.as_ptr().cast(),
                out.as_mut_ptr().cast(),
                8192,
                &version,
                4,
            )
        };
        assert!(copied && out == source);
    }

    /// In place, a writer that died mid-write leaves the version odd: lock-free attempts
    /// cannot succeed, so after LOCK_FREE_ATTEMPTS a writable reader asks once and takes the
    /// lock with `try_lock`, which repairs (poisons) the region; it returns the value as left.
    #[test]
    fn a_writable_reader_repairs_a_dead_in_place_writer_under_try_lock() {
        let region = scratch_handles("dead-in-place", &Value::LAYOUT, true, Access::ReadWrite).0;
        let start = region.header().version.load(SeqCst);
        std::thread::scope(|scope| {
            scope.spawn(|| lock_and_write(&region, 9)).join().unwrap();
        });
        assert_eq!(region.header().version.load(SeqCst), start + 1);
        let value: Value = snapshot_until(&region, deadline()).expect("never repaired");
        assert_eq!(value, [9; 32]);
        assert!(region.poisoned());
        assert_eq!(region.header().version.load(SeqCst), start + 2);
        let h = region.header();
        assert_eq!(
            (h.read_requests.load(SeqCst), h.reads_served.load(SeqCst)),
            (1, 1)
        );
    }

    /// A reader that keeps failing (a live writer stays mid-write in place) asks writers for
    /// help once, and gets the value the writer commits, whole.
    #[test]
    fn a_starving_reader_asks_once_and_gets_the_committed_value() {
        let (region, reader) = scratch_handles("starving", &Value::LAYOUT, true, Access::ReadWrite);
        let (region, reader) = (Arc::new(region), Arc::new(reader));
        let writer = StuckWriter::start(&region);
        let read = {
            let reader = Arc::clone(&reader);
            std::thread::spawn(move || snapshot_until::<Value>(&reader, deadline()))
        };
        let h = region.header();
        let asked_by = Instant::now() + HANG;
        while h.read_requests.load(SeqCst) == 0 && Instant::now() < asked_by {
            std::thread::yield_now();
        }
        assert_eq!(
            h.read_requests.load(SeqCst),
            1,
            "the reader never asked for help"
        );
        writer.finish(5);
        assert_eq!(read.join().unwrap(), Ok([5; 32]));
        assert_eq!(h.read_requests.load(SeqCst), 1, "asked more than once");
        assert_eq!(h.reads_served.load(SeqCst), 1, "the request was not served");
    }

    /// A deadline bounds every reader behind a writer stuck mid-write in place: a writable
    /// handle (whose try_lock keeps failing), a read-only one (which cannot lock) and a reader
    /// of a large value (which sleeps asking for help). Each returns `TimedOut`, not a hang.
    #[test]
    fn a_reader_with_a_deadline_behind_a_stuck_writer_times_out() {
        let soon = || Some(Instant::now() + Duration::from_millis(30));
        for access in [Access::ReadWrite, Access::ReadOnly] {
            let (region, reader) = scratch_handles("stuck-writer", &Value::LAYOUT, true, access);
            let (region, reader) = (Arc::new(region), Arc::new(reader));
            let writer = StuckWriter::start(&region);
            let read = within_hang(move || snapshot_until::<Value>(&reader, soon()));
            writer.finish(2);
            assert_eq!(read, Some(Err(TimedOut)), "{access:?}");
        }
        let (region, reader) =
            scratch_handles("stuck-large", &Large::LAYOUT, true, Access::ReadWrite);
        let (region, reader) = (Arc::new(region), Arc::new(reader));
        let writer = StuckWriter::start(&region);
        let read = within_hang(move || snapshot_until::<Large>(&reader, soon()).map(|_| ()));
        writer.finish(2);
        assert_eq!(read, Some(Err(TimedOut)), "large value");
    }

    /// Bug: an in-place `read()` on the thread writing through another handle waited for
    /// itself for ever (commit 74db7f6): `try_lock` keeps `EDEADLK` apart, and that read
    /// panics naming the region.
    #[test]
    fn regression_an_in_place_read_through_a_second_handle_of_the_writer_hung() {
        let (writing, reading) =
            scratch_handles("own-write", &Value::LAYOUT, true, Access::ReadWrite);
        let (writing, reading) = (Arc::new(writing), Arc::new(reading));
        let read = within_hang(move || {
            lock_and_write(&writing, 3);
            let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                snapshot_until::<Value>(&reading, Some(Instant::now() + HANG))
            }));
            commit(&writing);
            read.map_err(|panic| panic.downcast_ref::<String>().cloned())
        });
        let Some(Err(Some(message))) = read else {
            panic!("the read did not panic: {read:?}");
        };
        assert!(message.contains("would wait for itself"), "{message}");
    }

    /// Bug: the budget for holding the value for readers was per handle and a new handle
    /// started with a full one, so a reader that asked and never answered stalled every fresh
    /// writer handle (commit aacfcfc). The budget is the header's `help_resumes_at`: after a
    /// hold of `d`, no writer holds again, through any handle, for `4 d`.
    #[test]
    fn regression_a_fresh_handle_held_for_readers_again_within_the_budget() {
        let (one, two) = scratch_handles("hold-budget", &Large::LAYOUT, false, Access::ReadWrite);
        let h = one.header();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let _stop = StopOnDrop(&stop);
            // A reader that asks for help and never answers: every hold runs its full length.
            let asking = scope.spawn(|| {
                while !stop.load(SeqCst) {
                    two.ask_writers_for_help(Duration::from_millis(100));
                }
            });
            let look = |region: &Region| {
                region.acquire(Wait::Forever).expect("lock");
                // Due to look: a MiB committed through this handle.
                *region.reader_help.lock().unwrap() = LOOK_EVERY_BYTES;
                region.help_starving_readers();
                // SAFETY: acquired above; nothing written; the region's own payload size.
                unsafe { region.release(false, region.info().layout.payload_size) };
            };
            let (mut before, mut after) = (0, 0);
            let held_by = Instant::now() + HANG;
            while h.help_resumes_at.load(SeqCst) == 0 && Instant::now() < held_by {
                before = process::monotonic_ns();
                look(&one);
                after = process::monotonic_ns();
                std::thread::sleep(Duration::from_millis(1));
            }
            let resumes_at = h.help_resumes_at.load(SeqCst);
            assert_ne!(resumes_at, 0, "the writer never held for the asking reader");
            // Nobody answered: the hold lasted HOLD_AT_MOST at least, and then the budget
            // forbids four times as long.
            let at_least = u64::try_from((HOLD_AT_MOST * HOLD_SHARE).as_nanos()).unwrap();
            assert!(
                resumes_at >= before + at_least,
                "{resumes_at} < {before} + {at_least}"
            );
            assert!(
                resumes_at <= after + 4 * (after - before),
                "{resumes_at} {before} {after}"
            );
            // Within the budget no writer holds, through this handle or a fresh one.
            for region in [&one, &two, &one, &two] {
                std::thread::sleep(Duration::from_millis(2));
                if process::monotonic_ns() >= resumes_at {
                    break;
                }
                look(region);
                assert_eq!(h.help_resumes_at.load(SeqCst), resumes_at, "held again");
            }
            stop.store(true, SeqCst);
            while !asking.is_finished() {
                futex::wake_all(&h.read_requests);
                std::thread::yield_now();
            }
        });
    }

    /// The threat model's bound: readers that ask for ever and never answer (every hold runs
    /// its full length) make the writers of a region, however many, hold for at most a fifth
    /// of the time, in stalls of at most HOLD_AT_MOST; a new handle gets no budget of its own.
    #[test]
    fn readers_that_never_answer_cost_all_writers_at_most_a_fifth_of_the_time() {
        let commit = 100_000u64; // ns
        let hold = u64::try_from(HOLD_AT_MOST.as_nanos()).unwrap();
        let start = 1_000_000_000u64;
        let mut now = start;
        let mut resumes_at = 0u64;
        let mut held = 0u64;
        // Ten writers taking turns, each through a fresh handle every time (the worst case
        // for a per-handle budget).
        while now - start < 60_000_000_000 {
            for _writer in 0..10 {
                let mut fresh = 0;
                if time_to_look(&mut fresh, 1 << 20) && hold_allowed(now, resumes_at) {
                    now += hold;
                    held += hold;
                    resumes_at = resumes_after(now, HOLD_AT_MOST);
                }
                now += commit;
            }
        }
        let total = now - start;
        assert!(held > 0, "never held");
        assert!(
            held <= total / u64::from(HOLD_SHARE) + hold,
            "held {held} ns of {total} ns"
        );
    }

    /// A `help_resumes_at` from another clock (far ahead) does not stop help for long.
    #[test]
    fn a_resume_time_from_another_clock_is_ignored() {
        assert!(!hold_allowed(1_000, 1_000 + 1_000_000));
        assert!(hold_allowed(1_000, u64::MAX));
        assert!(hold_allowed(2_000, 1_000));
    }

    /// Small commits look once per LOOK_EVERY_BYTES, not on every write.
    #[test]
    fn writers_look_once_per_mib_committed() {
        let mut committed_since = 0;
        let looks = (0..1024)
            .filter(|_| time_to_look(&mut committed_since, 16 << 10))
            .count();
        assert_eq!(looks, 1024 * (16 << 10) / LOOK_EVERY_BYTES);
    }
}
