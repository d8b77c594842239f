//! A byte channel's payload (`FORMAT.md`, "Byte channels"): the queue control block, a
//! settings line, then a ring of length-prefixed records. The protocol that moves the
//! counters lives in `queue/channel.rs`; this is where each word sits, what a record header
//! means, and the one parser every reader of a record goes through ([`parse_front`]), which
//! never trusts a length it reads.

use std::sync::atomic::AtomicU64;

use crate::layout::{Field, ShmType, TypeLayout};

use super::queue::QUEUE_CONTROL_SIZE;

/// The element type recorded in a channel's header: an 8-byte unit of the ring. Its own name
/// keeps `ShmQueue<u64, N>` (or any other queue) from opening a channel, and a channel from
/// opening a queue ([`Error::LayoutMismatch`](crate::Error::LayoutMismatch)).
#[derive(Clone, Copy)]
#[repr(transparent)]
pub(crate) struct ChannelUnit {
    _bytes: u64,
}

// SAFETY: `ChannelUnit` is `repr(transparent)` over a `u64`: every bit pattern valid, no
// padding, no pointer, no drop glue.
unsafe impl bytemuck::Zeroable for ChannelUnit {}
// SAFETY: as for `Zeroable` just above.
unsafe impl bytemuck::Pod for ChannelUnit {}

// SAFETY: `Pod` holds (above); size and alignment are 8 as the layout says (asserted below),
// the one field is a `u64` at offset 0 (`repr(transparent)`).
unsafe impl ShmType for ChannelUnit {
    const LAYOUT: TypeLayout = TypeLayout::structure(
        "shmstore::ChannelUnit",
        8,
        8,
        &[Field::new("bytes", 0, &u64::LAYOUT)],
    );
}

const _: () = assert!(size_of::<ChannelUnit>() == 8 && align_of::<ChannelUnit>() == 8);

/// The size of a ring unit, and the alignment of every record.
pub(crate) const CHANNEL_UNIT: usize = 8;
/// Where the settings line sits in the payload: right after the queue control block.
pub(crate) const SETTINGS_OFFSET: usize = QUEUE_CONTROL_SIZE;
/// The settings line's size; the ring follows it.
pub(crate) const SETTINGS_SIZE: usize = 64;
/// Where the ring starts in the payload.
pub(crate) const RING_OFFSET: usize = SETTINGS_OFFSET + SETTINGS_SIZE;
/// A record header: the message length (u32, little-endian as the host) and a tag (u32).
pub(crate) const RECORD_HEADER: usize = 8;
/// The tag of a record that carries a message.
pub(crate) const TAG_MESSAGE: u32 = 0x4d53_4731; // "1GSM" little-endian: arbitrary, not 0
/// The tag of a skip record: the rest of the ring up to its end is unused, the next record
/// starts at ring offset 0. Its length field is 0.
pub(crate) const TAG_SKIP: u32 = 0x5049_4b53; // "SKIP"

/// The settings line: fixed at creation, read once by every opener and validated.
#[repr(C, align(64))]
pub(crate) struct Settings {
    /// The largest message, in bytes.
    pub(crate) max_message: AtomicU64,
    /// The ring's size in bytes (redundant with the header's capacity: both are checked).
    pub(crate) ring: AtomicU64,
    _unused: [AtomicU64; 6],
}

const _: () = assert!(size_of::<Settings>() == SETTINGS_SIZE);

// SAFETY: `Settings` is `repr(C)`, made only of `AtomicU64`s (any bits valid, every access
// atomic), 64 bytes with no padding (asserted above).
unsafe impl super::SharedView for Settings {}

/// The bytes a record of a `len`-byte message takes in the ring: its header and the message,
/// rounded up to [`CHANNEL_UNIT`]; `None` if that overflows.
pub(crate) const fn record_size(len: usize) -> Option<usize> {
    match len.checked_add(RECORD_HEADER + CHANNEL_UNIT - 1) {
        Some(n) => Some(n / CHANNEL_UNIT * CHANNEL_UNIT),
        None => None,
    }
}

/// The header's queue capacity (in units) of a channel whose ring holds `ring` bytes.
pub(crate) const fn units_for(ring: usize) -> usize {
    (SETTINGS_SIZE + ring) / CHANNEL_UNIT
}

/// The ring size of a channel whose header says `units`; `None` if it leaves no ring.
pub(crate) fn ring_for(units: usize) -> Option<usize> {
    units
        .checked_mul(CHANNEL_UNIT)?
        .checked_sub(SETTINGS_SIZE)
        .filter(|&ring| ring > 0)
}

/// Whether `max_message` fits a ring of `ring` bytes: two of its records must fit, so that a
/// record that does not fit before the ring's end (and is preceded by a skip record) always
/// fits in an empty ring.
pub(crate) fn max_message_fits(max_message: usize, ring: usize) -> bool {
    max_message > 0
        && max_message <= u32::MAX as usize
        && record_size(max_message).is_some_and(|record| record.saturating_mul(2) <= ring)
}

/// Where the next record goes: the record's ring offset, whether a skip record precedes it
/// (at `tail`'s offset), and the bytes `tail` advances by. `None` if there is no room.
pub(crate) fn place(ring: u64, head: u64, tail: u64, len: usize) -> Option<Placement> {
    let record = record_size(len)? as u64;
    let used = tail.checked_sub(head)?;
    let free = ring.checked_sub(used)?;
    let offset = tail % ring;
    let contiguous = ring - offset;
    let (skip, at, total) = if record <= contiguous {
        (false, offset, record)
    } else {
        (true, 0, contiguous + record)
    };
    (total <= free).then_some(Placement {
        offset: at as usize,
        skip_at: skip.then_some(offset as usize),
        advance: total,
    })
}

/// Where a send writes: see [`place`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Placement {
    /// The ring offset of the record's header.
    pub(crate) offset: usize,
    /// `Some(offset)`: a skip record goes there first.
    pub(crate) skip_at: Option<usize>,
    /// How far `tail` moves when the record is published.
    pub(crate) advance: u64,
}

/// The front record, as [`parse_front`] found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Front {
    /// The ring offset of the message's first byte.
    pub(crate) data: usize,
    /// The message length.
    pub(crate) len: usize,
    /// How far `head` moves when the record is released (a skip record before it included).
    pub(crate) advance: u64,
}

/// Reads the record at `head`, given the published `tail` (without the closed bit), the ring
/// size, the largest message and `header_at(offset)`, which returns the 8-byte record header
/// at a ring offset (the caller reads it from the ring). `Ok(None)` when the ring is empty.
/// Every length is checked against the counters, the ring and `max_message` before anything
/// is read through it: a peer that wrote garbage gets an `Err` with what is wrong, never an
/// out-of-bounds read.
pub(crate) fn parse_front(
    ring: u64,
    max_message: usize,
    head: u64,
    tail: u64,
    mut header_at: impl FnMut(usize) -> u64,
) -> Result<Option<Front>, String> {
    let used = match tail.checked_sub(head) {
        Some(used) if used <= ring => used,
        _ => {
            return Err(format!(
                "its counters say {tail} bytes sent and {head} received, which a ring of \
                 {ring} bytes cannot hold"
            ))
        }
    };
    if used == 0 {
        return Ok(None);
    }
    if head % CHANNEL_UNIT as u64 != 0 || tail % CHANNEL_UNIT as u64 != 0 {
        return Err(format!(
            "its counters ({head} received, {tail} sent) are not multiples of {CHANNEL_UNIT}"
        ));
    }
    let mut offset = (head % ring) as usize;
    let mut skipped = 0u64;
    let mut word = header_at(offset);
    if (word >> 32) as u32 == TAG_SKIP {
        skipped = ring - offset as u64;
        if skipped >= used {
            return Err(format!(
                "a skip record at ring offset {offset} covers {skipped} bytes, but only {used} \
                 are published"
            ));
        }
        offset = 0;
        word = header_at(0);
    }
    let tag = (word >> 32) as u32;
    let len = (word & 0xffff_ffff) as usize;
    if tag != TAG_MESSAGE {
        return Err(format!(
            "the record at ring offset {offset} has tag {tag:#010x}, neither a message nor a skip"
        ));
    }
    if len > max_message {
        return Err(format!(
            "the record at ring offset {offset} says {len} bytes, more than the largest \
             message ({max_message})"
        ));
    }
    // `len <= max_message <= u32::MAX`: no overflow.
    let record = record_size(len).unwrap_or(usize::MAX) as u64;
    if offset as u64 + record > ring || skipped + record > used {
        return Err(format!(
            "the record at ring offset {offset} ({len} bytes) runs past the {} published bytes \
             or the ring's end",
            used - skipped
        ));
    }
    Ok(Some(Front {
        data: offset + RECORD_HEADER,
        len,
        advance: skipped + record,
    }))
}

/// Whether a queue region whose elements are of type `type_name` (its descriptor's) is a
/// byte channel.
pub(crate) fn is_channel_type(type_name: &str) -> bool {
    type_name == ChannelUnit::LAYOUT.type_name()
}

/// What `list` and `inspect` count a queue's capacity and length in: a byte channel's ring
/// bytes (from the header's `units`), a queue's elements (`units` itself).
pub(crate) fn counted_capacity(type_name: &str, units: usize) -> usize {
    if is_channel_type(type_name) {
        ring_for(units).unwrap_or(0)
    } else {
        units
    }
}

/// The header word of a record: `len` in the low half, `tag` in the high half.
pub(crate) const fn header_word(len: u32, tag: u32) -> u64 {
    (tag as u64) << 32 | len as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_units_with_a_header() {
        assert_eq!(record_size(0), Some(8));
        assert_eq!(record_size(1), Some(16));
        assert_eq!(record_size(8), Some(16));
        assert_eq!(record_size(9), Some(24));
        assert_eq!(record_size(usize::MAX), None);
    }

    #[test]
    fn a_record_that_does_not_fit_before_the_end_wraps_after_a_skip() {
        // A 64-byte ring, 40 used from 16: tail at 56, a 16-byte record fits before the end?
        // 8 bytes left: no, so skip 8 and write at 0 (16 more): 24 <= 24 free.
        assert_eq!(
            place(64, 16, 56, 8),
            Some(Placement {
                offset: 0,
                skip_at: Some(56),
                advance: 24
            })
        );
        assert_eq!(place(64, 8, 56, 8), None);
    }

    #[test]
    fn garbage_is_an_error_never_a_read_out_of_bounds() {
        let ring = 64;
        // A length past the largest message.
        let bad = parse_front(ring, 16, 0, 24, |_| header_word(1000, TAG_MESSAGE));
        assert!(bad.is_err());
        // A length past what is published.
        let bad = parse_front(ring, 32, 0, 16, |_| header_word(20, TAG_MESSAGE));
        assert!(bad.is_err());
        // Counters further apart than the ring.
        assert!(parse_front(ring, 16, 0, 72, |_| 0).is_err());
        // A skip that covers everything published.
        assert!(parse_front(ring, 16, 48, 64, |_| header_word(0, TAG_SKIP)).is_err());
        // An unknown tag.
        assert!(parse_front(ring, 16, 0, 16, |_| 0).is_err());
        // Good records.
        assert_eq!(
            parse_front(ring, 16, 0, 16, |_| header_word(5, TAG_MESSAGE)),
            Ok(Some(Front {
                data: 8,
                len: 5,
                advance: 16
            }))
        );
        assert_eq!(
            parse_front(ring, 16, 56, 88, |at| if at == 56 {
                header_word(0, TAG_SKIP)
            } else {
                header_word(9, TAG_MESSAGE)
            }),
            Ok(Some(Front {
                data: 8,
                len: 9,
                advance: 32
            }))
        );
    }
}
