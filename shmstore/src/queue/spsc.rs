//! The SPSC side of [`ShmQueue`]: one producer owns `tail`, one consumer owns `head`, and
//! neither takes a lock. Each role is claimed in shared memory and held with a byte lock (or,
//! in a System V segment, a pid): see "Protocol" in the `queue` module docs and [`claim_role`].

use std::mem::MaybeUninit;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Relaxed, SeqCst};

use crate::error::{Error, Result};
use crate::format::{Line, Owner, CLOSED};
use crate::layout::ShmType;
use crate::region::Region;
use crate::sys::object::ByteLock;
use crate::wait::{notify, wake_unconditionally};

use super::{Popped, Pushed, ShmQueue};

/// The byte of the object whose lock is the SPSC producer role.
pub(super) const PRODUCER_BYTE: u64 = 0;
/// The byte of the object whose lock is the SPSC consumer role.
pub(super) const CONSUMER_BYTE: u64 = 1;
/// How many spin-loop hints a blocking SPSC pop waits before it looks at `tail` again while
/// elements are streaming in (its last look found more than one). Each look takes the line
/// `tail` lives on away from the producer, whose next push then waits for it (its publishing
/// compare-and-swap drains its store buffer): looking once per element caps a streaming queue
/// at one cross-core line transfer per element. Letting a few pushes land first makes it one
/// per batch. A queue with one element in flight at a time (ping-pong, request and reply) or
/// an idle one never waits: every look there finds at most one.
const REFRESH_PAUSES: u32 = 16;

#[derive(Clone, Copy)]
pub(super) enum Role {
    Producer,
    Consumer,
}

impl Role {
    pub(super) fn bit(self) -> u8 {
        match self {
            Role::Producer => 1,
            Role::Consumer => 2,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Role::Producer => "producer",
            Role::Consumer => "consumer",
        }
    }
}

/// Takes `role` of an SPSC queue or channel for this handle: the pid in the role's line on a
/// System V segment (which has no descriptor to lock), the role's byte lock otherwise.
/// `RoleTaken` when another live process holds it, `LockedByReader` when a reader's lock keeps
/// a dead holder's role from being taken over.
pub(super) fn take_role(region: &Region, role: Role, byte: u64, line: &Line) -> Result<()> {
    let claimed = if region.is_segment() {
        if claim_by_pid(&line.owner) {
            Claim::Taken
        } else {
            Claim::Held
        }
    } else {
        claim_role(region, byte, &line.owner)?
    };
    match claimed {
        Claim::Taken => Ok(()),
        Claim::Held => {
            // A pid recorded in another PID namespace names nobody here: not reported.
            let pid = Owner::from_word(line.owner.load(Relaxed)).pid_here();
            Err(Error::RoleTaken {
                name: region.name().to_string(),
                role: role.name(),
                holder_pid: (pid != 0).then_some(pid),
            })
        }
        Claim::ReadLocked(pid) => Err(Error::LockedByReader {
            name: region.name().to_string(),
            blocked: format!(
                "take over the {} role from its holder (pid {pid}), which is gone",
                role.name()
            ),
            byte,
            after: None,
        }),
    }
}

/// Whether a live process other than this handle holds `role` of an SPSC queue or channel:
/// `held` is the roles this handle holds, `byte` the role's liveness byte and `line` its
/// control line (its owner word).
pub(super) fn other_holds_role(
    region: &Region,
    held: u8,
    role: Role,
    byte: u64,
    line: &Line,
) -> Result<bool> {
    if held & role.bit() != 0 {
        return Ok(false);
    }
    let owner = Owner::from_word(line.owner.load(Acquire));
    if owner.pid == 0 {
        return Ok(false);
    }
    match region.byte_claimed_elsewhere(byte)? {
        // Claimed, but nobody holds the liveness lock: its holder is gone.
        Some(false) => Ok(false),
        // A write lock: another writer is taking over a dead holder's role right now.
        Some(true) if region.byte_write_claimed_elsewhere(byte)? == Some(true) => Ok(true),
        // Only read locks: the holder's liveness lock, or a reader's (a process with read
        // access may take one). As `claim_role` does, the pid decides: only a holder that is
        // certainly gone is not a live other.
        Some(true) => Ok(owner.may_be_alive()),
        // A System V queue: the pid claim (see `claim_by_pid`).
        None => Ok(owner.may_be_alive()),
    }
}

impl<T: ShmType, const N: usize> ShmQueue<T, N> {
    pub(super) fn has_other(&self, role: Role) -> Result<Option<bool>> {
        if !self.spsc {
            return Ok(None);
        }
        let (byte, line) = self.role_place(role);
        other_holds_role(&self.region, self.roles.get(), role, byte, line).map(Some)
    }

    /// The byte lock and the control line of a role.
    fn role_place(&self, role: Role) -> (u64, &Line) {
        let c = self.control();
        match role {
            Role::Producer => (PRODUCER_BYTE, &c.tail),
            Role::Consumer => (CONSUMER_BYTE, &c.head),
        }
    }

    #[inline(always)]
    pub(super) fn spsc_push(&self, value: &T) -> Result<Pushed> {
        self.claim(Role::Producer)?;
        let c = self.control();
        let tail = self.next_tail.get();
        if tail - self.seen_head.get() >= N as u64 {
            let head = c.head.word.load(Acquire);
            self.check_counters(tail, head)?;
            self.seen_head.set(head);
            if tail - head >= N as u64 {
                let closed = c.tail.word.load(Relaxed) & CLOSED != 0;
                return Ok(if closed { Pushed::Closed } else { Pushed::Full });
            }
        }
        // SAFETY: `tail - head < N`, so slot `tail % N` holds no published element and the
        // consumer does not read it until `tail` advances past it; this handle is the only
        // producer (it holds the role), so nobody else writes it.
        unsafe { self.write_slot(tail, value) };
        match c
            .tail
            .word
            .compare_exchange(tail, tail + 1, SeqCst, Relaxed)
        {
            Ok(_) => {}
            Err(now) if now == tail | CLOSED => return Ok(Pushed::Closed),
            Err(now) => {
                return Err(self.corrupt(format!(
                    "its tail moved from {tail} to {now} under its only producer"
                )))
            }
        }
        self.next_tail.set(tail + 1);
        notify(&c.not_empty, self.spsc);
        Ok(Pushed::Done)
    }

    /// Pops the front element into `out` (`Popped::Value` says it holds it): the pop's one
    /// copy of the element goes straight from its slot to the caller's place.
    #[inline(always)]
    pub(super) fn spsc_pop(&self, patient: bool, out: &mut MaybeUninit<T>) -> Result<Popped<()>> {
        self.claim(Role::Consumer)?;
        let c = self.control();
        let head = self.next_head.get();
        if head == self.seen_tail.get() {
            if patient && self.last_batch.get() > 1 {
                for _ in 0..REFRESH_PAUSES {
                    std::hint::spin_loop();
                }
            }
            let tail = c.tail.word.load(Acquire);
            self.check_counters(tail & !CLOSED, head)?;
            self.seen_tail.set(tail & !CLOSED);
            self.last_batch.set((tail & !CLOSED) - head);
            if tail & !CLOSED == head {
                return Ok(if tail & CLOSED != 0 {
                    Popped::Closed
                } else {
                    Popped::Empty
                });
            }
        }
        // SAFETY: `head < tail` (acquired above, or earlier by this handle): slot `head % N`
        // holds a complete element, which the producer does not overwrite until `head`
        // advances past it; this handle is the only consumer.
        unsafe { self.read_slot(head, out) };
        c.head.word.store(head + 1, SeqCst);
        self.next_head.set(head + 1);
        notify(&c.not_full, self.spsc);
        Ok(Popped::Value(()))
    }

    /// Takes the SPSC role at this handle's first push or pop.
    #[inline]
    pub(super) fn claim(&self, role: Role) -> Result<()> {
        if self.roles.get() & role.bit() != 0 {
            return Ok(());
        }
        self.claim_slow(role)
    }

    #[cold]
    fn claim_slow(&self, role: Role) -> Result<()> {
        let c = self.control();
        let (byte, line) = self.role_place(role);
        take_role(&self.region, role, byte, line)?;
        let tail = c.tail.word.load(Acquire) & !CLOSED;
        let head = c.head.word.load(Acquire);
        self.check_counters(tail, head)?;
        let partner_sleeps_on = match role {
            Role::Producer => {
                // Only the producer sleeps on "not full": a count left by a dead predecessor
                // would cost every pop a wake-up call.
                c.not_full.sleepers.store(0, SeqCst);
                self.next_tail.set(tail);
                self.seen_head.set(head);
                &c.not_empty
            }
            Role::Consumer => {
                c.not_empty.sleepers.store(0, SeqCst);
                self.next_head.set(head);
                self.seen_tail.set(head);
                &c.not_full
            }
        };
        self.roles.set(self.roles.get() | role.bit());
        // A predecessor killed inside a wake-up (after it cleared the partner's sleeper flag,
        // before its futex wake) left the partner asleep with no flag set, so no push or pop
        // of ours would wake it. Wake it once, flag or not: it re-checks the counters and
        // counts itself in again if it still has to sleep. One system call per role taken.
        wake_unconditionally(partner_sleeps_on, true);
        Ok(())
    }
}

impl<T: ShmType, const N: usize> Drop for ShmQueue<T, N> {
    fn drop(&mut self) {
        // Hand the roles back now. A byte lock would go with the descriptor, but not while a
        // child that another thread is spawning shares it (until that child execs); a pid claim
        // (System V) has nothing else to release it.
        for role in [Role::Producer, Role::Consumer] {
            if self.roles.get() & role.bit() == 0 {
                continue;
            }
            let (byte, line) = self.role_place(role);
            // This handle holds the role: the word is its pid (nobody takes a role over while
            // its holder's liveness lock is there). Free the word first, then the lock. A copy
            // of the handle in a child forked without exec finds another pid there and leaves
            // both alone: the lock belongs to the description it shares with its parent, whose
            // role it is.
            let me = Owner::me().word();
            let freed = line.owner.compare_exchange(me, 0, SeqCst, SeqCst).is_ok();
            if freed && !self.region.is_segment() {
                self.region.release_byte(byte);
            }
        }
    }
}

/// What one attempt to claim an SPSC role found.
pub(super) enum Claim {
    /// This handle holds the role now.
    Taken,
    /// A live handle holds it (or, in a segment, a live process has the holder's pid).
    Held,
    /// The role's recorded holder (this pid) looks gone, but a lock on its byte keeps the
    /// role from being taken over; no shmstore writer holds a lock there without the role.
    ReadLocked(u32),
}

/// How many times a claim looks again when the role changed hands under it, or a writer was
/// checking a dead holder's role at that moment (a few instructions each time) before it
/// reports the role taken.
const CLAIM_ATTEMPTS: u32 = 100;

/// Takes an SPSC role of a queue behind a descriptor; `owner` is the role's word, `byte` the byte
/// of its liveness lock.
///
/// The invariant: while the word holds a handle's pid and that handle lives, the handle holds
/// a read lock on the byte. It takes the lock before it swaps its pid in, and gives the word
/// back before it unlocks. So whoever gets the *write* lock on the byte (granted only when
/// nobody holds any lock there) knows the word's holder is gone, and nobody can claim the role
/// while it holds that lock (a claimant's read lock is refused): it swaps the dead pid for its
/// own and turns its lock into a read lock.
///
/// A process that can only read the object can take read locks, which never keep anyone from a
/// read lock: it cannot block a free role. It can keep a dead holder's role from being taken
/// over (its read lock refuses the write lock), and the kernel tells nobody whose read lock is
/// there (open-file-description locks record no owner). Then the claim reports
/// [`Claim::ReadLocked`] if the recorded pid is gone, and [`Claim::Held`] otherwise.
pub(super) fn claim_role(region: &Region, byte: u64, owner: &AtomicU64) -> Result<Claim> {
    let me = Owner::me().word();
    for _ in 0..CLAIM_ATTEMPTS {
        let holder = owner.load(SeqCst);
        if holder == 0 {
            // Refused only while a writer holds the write lock to check a dead holder's role.
            if region.try_claim_byte(byte, ByteLock::Read)? == Some(true) {
                if owner.compare_exchange(0, me, SeqCst, SeqCst).is_ok() {
                    return Ok(Claim::Taken);
                }
                // Another handle claimed it first.
                region.release_byte(byte);
            }
        } else if region.try_claim_byte(byte, ByteLock::Write)? == Some(true) {
            // No handle holds a lock on the byte: whoever the word names is gone.
            if owner.compare_exchange(holder, me, SeqCst, SeqCst).is_ok() {
                // Converting our own lock conflicts with nothing: it cannot be refused.
                region.try_claim_byte(byte, ByteLock::Read)?;
                return Ok(Claim::Taken);
            }
            // Its holder gave it back meanwhile (we read the word before it did): look again.
            region.release_byte(byte);
        } else if region.byte_write_claimed_elsewhere(byte)? == Some(false)
            && owner.load(SeqCst) == holder
        {
            // Only read locks are in the way (a writer checking the role too would hold the
            // write lock: then we look again): the holder's, or a reader's. The pid can only
            // hint which, and only when this namespace numbers it.
            let holder = Owner::from_word(holder);
            return Ok(if holder.may_be_alive() {
                Claim::Held
            } else {
                Claim::ReadLocked(holder.pid)
            });
        }
        std::thread::yield_now();
    }
    // Other writers kept changing the role or checking it: it is in use.
    Ok(Claim::Held)
}

/// Takes an SPSC role recorded only as a pid: from nobody (0) or from a process that is gone.
/// A live holder — another process, or another handle of this one — keeps it, and so does any
/// holder in another PID namespace, whose liveness this process cannot check.
pub(super) fn claim_by_pid(owner: &AtomicU64) -> bool {
    let me = Owner::me().word();
    loop {
        let word = owner.load(SeqCst);
        let holder = Owner::from_word(word);
        if holder.pid != 0 && holder.may_be_alive() {
            return false;
        }
        // Pid and namespace change together, so nobody ever pairs one holder's pid with
        // another's namespace.
        if owner.compare_exchange(word, me, SeqCst, SeqCst).is_ok() {
            return true;
        }
    }
}
