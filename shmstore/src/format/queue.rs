//! The queue control block (`FORMAT.md`, "Queue regions"): the first
//! [`QUEUE_CONTROL_SIZE`] bytes of a queue's payload, its mode codes and its geometry. The
//! protocol that moves the counters lives in `queue/` (and sleeping and waking in `wait`); this
//! is only where each word sits and what its bits mean.

use std::mem::size_of;
use std::sync::atomic::{AtomicU32, AtomicU64};

use super::header::{LoadAcquire, SharedBytes, SharedView};

/// `queue_mode`: one producer and one consumer, lock-free.
pub(crate) const QUEUE_SPSC: u32 = 1;
/// `queue_mode`: any number of producers and consumers, under the region's mutex.
pub(crate) const QUEUE_MPMC: u32 = 2;
/// A queue's control block (its indices and wake-up words) takes the first 256 bytes of the
/// payload; the slots follow, aligned to the element type.
pub(crate) const QUEUE_CONTROL_SIZE: usize = 256;

/// Bit 63 of `tail`: the queue was closed.
pub(crate) const CLOSED: u64 = 1 << 63;

/// Whether a queue serves one producer and one consumer, or any number of each. Fixed when the
/// queue is created and stored in its header; openers that ask for no mode follow it, and one
/// that asks for the other gets [`Error::QueueModeMismatch`](crate::Error::QueueModeMismatch)
/// (see [`ShmQueueOptions::queue_mode`](crate::ShmQueueOptions::queue_mode)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueMode {
    /// Single producer, single consumer: lock-free, the fastest. At most one live handle
    /// pushes and one pops; another gets [`Error::RoleTaken`](crate::Error::RoleTaken). A handle
    /// takes its role at its
    /// first push (or pop) and keeps it until dropped; a replacement can take over the role
    /// of a process that died.
    ///
    /// The holder's liveness is a lock on the handle's open file description, which a child
    /// created with `fork` shares: until that child execs or exits, it keeps the role too, even
    /// after its parent dies (`std::process::Command` execs at once, so this matters only for
    /// children that run on without exec). Dropping the handle releases the role at once. In a
    /// System V segment, which has no descriptor, the role is the holder's pid alone: a forked
    /// child does not share it, and a replacement takes it over once no process has that pid.
    /// The pid is recorded with the holder's PID namespace, and only a process of that
    /// namespace can tell that it is gone: from another one (another container), a dead
    /// holder's role stays taken.
    Spsc,
    /// Multiple producers, multiple consumers: every push and pop takes the region's robust
    /// mutex for the length of one copy. Any handle may push and pop.
    Mpmc,
}

impl QueueMode {
    pub(crate) fn code(self) -> u32 {
        match self {
            QueueMode::Spsc => QUEUE_SPSC,
            QueueMode::Mpmc => QUEUE_MPMC,
        }
    }

    /// The mode of a validated header's `queue_mode` (`Header::check` accepts only the two).
    pub(crate) fn from_code(code: u32) -> QueueMode {
        if code == QUEUE_SPSC {
            QueueMode::Spsc
        } else {
            QueueMode::Mpmc
        }
    }
}

/// What a queue's header fixes at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueShape {
    /// [`QUEUE_SPSC`] or [`QUEUE_MPMC`].
    pub(crate) mode: u32,
    pub(crate) capacity: usize,
    pub(crate) element_size: usize,
}

impl QueueShape {
    /// Where the slots start in the payload: after the control block, aligned for the element.
    pub(crate) const fn slots_offset(element_align: usize) -> usize {
        if element_align > QUEUE_CONTROL_SIZE {
            element_align
        } else {
            QUEUE_CONTROL_SIZE
        }
    }

    /// The payload size of such a queue; `None` if it overflows.
    pub(crate) fn payload_size(&self, element_align: usize) -> Option<usize> {
        self.capacity
            .checked_mul(self.element_size)?
            .checked_add(Self::slots_offset(element_align))
    }
}

/// One 64-byte line of the control block: a word, a second word and padding. Every field is
/// atomic, since other processes write the line.
#[repr(C, align(64))]
pub(crate) struct Line {
    pub(crate) word: AtomicU64,
    /// The SPSC role holder: see [`Owner`](super::Owner).
    pub(crate) owner: AtomicU64,
    _unused: [AtomicU32; 12],
}

/// Something a blocked side sleeps on: a futex word bumped on each wake-up, and how many
/// sleep on it.
#[repr(C, align(64))]
pub(crate) struct Event {
    pub(crate) epoch: AtomicU32,
    pub(crate) sleepers: AtomicU32,
    _unused: [AtomicU32; 14],
}

/// The control block at the start of a queue's payload (`FORMAT.md`). The producer's counter,
/// the consumer's counter and the two events each have their own cache line, so that pushing
/// and popping do not invalidate each other's lines.
#[repr(C)]
pub(crate) struct Control {
    /// `tail` (elements pushed; bit 63: closed) and the SPSC producer's pid and namespace.
    pub(crate) tail: Line,
    /// `head` (elements popped) and the SPSC consumer's pid and namespace.
    pub(crate) head: Line,
    /// Consumers sleep here while the queue is empty.
    pub(crate) not_empty: Event,
    /// Producers sleep here while the queue is full.
    pub(crate) not_full: Event,
}

const _: () = assert!(size_of::<Control>() == QUEUE_CONTROL_SIZE);

// SAFETY: `Control` is `repr(C)` and made only of `Line`s and `Event`s, themselves `repr(C)`
// and made only of integer atomics: any bits are a valid value, every access is atomic, and
// its size is exactly QUEUE_CONTROL_SIZE (asserted above), so no padding.
unsafe impl SharedView for Control {}

/// How many elements a queue holds and whether it is closed, read from the control block at
/// the start of `payload` (a mapped payload, or a copy of the control block), without any lock
/// (for [`list`](crate::list)); `None` if `payload` is too short or misaligned for it.
pub(crate) fn peek(payload: SharedBytes<'_>, capacity: usize) -> Option<(usize, bool)> {
    Some(payload.view::<Control>()?.len_and_closed(capacity))
}

impl Control {
    /// How many elements the queue holds (a snapshot, clamped to `capacity` in case a peer
    /// broke the counters) and whether it is closed.
    pub(crate) fn len_and_closed(&self, capacity: usize) -> (usize, bool) {
        // Through a read-only mapping too (`list` of a System V queue): see `LoadAcquire`.
        let head = self.head.word.load_acquire();
        let tail = self.tail.word.load_acquire();
        let len = (tail & !CLOSED).saturating_sub(head).min(capacity as u64) as usize;
        (len, tail & CLOSED != 0)
    }
}

/// The slot index of a queue's oldest element, read from the control block at the start of
/// `payload` (mapped or copied) without any lock; `None` if the queue is empty (or its
/// counters make no sense), or `payload` is too short or misaligned for a control block.
pub(crate) fn front_slot(payload: SharedBytes<'_>, capacity: usize) -> Option<usize> {
    let c = payload.view::<Control>()?;
    // Through a read-only mapping too (`inspect`): see `LoadAcquire`.
    let head = c.head.word.load_acquire();
    let tail = c.tail.word.load_acquire() & !CLOSED;
    if tail <= head || tail - head > capacity as u64 {
        return None;
    }
    Some((head % capacity as u64) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    /// The control block offsets FORMAT.md documents.
    #[test]
    fn control_offsets_match_format_md() {
        assert_eq!(offset_of!(Control, tail), 0);
        assert_eq!(offset_of!(Control, head), 64);
        assert_eq!(offset_of!(Control, not_empty), 128);
        assert_eq!(offset_of!(Control, not_full), 192);
        assert_eq!(offset_of!(Line, owner), 8);
        assert_eq!(offset_of!(Event, sleepers), 4);
    }
}
