//! The FORMAT.md constants the command decodes and writes into C headers. The library keeps
//! its own copies private; FORMAT.md is the contract both follow, and a test below checks that
//! these agree with the library's (exposed, hidden, as `shmstore::__format`).

/// `flags` bit 0: one payload copy, seqlock, poisoning.
pub const FLAG_IN_PLACE: u32 = 1 << 0;
/// `flags` bit 1: every publish wakes futex sleepers.
pub const FLAG_NOTIFY_READERS: u32 = 1 << 1;
/// `state`: the creator is still initialising the region.
pub const STATE_INITIALISING: u32 = 1;
/// `state`: the region is complete.
pub const STATE_READY: u32 = 2;
/// `kind`: a single value.
pub const KIND_VALUE: u32 = 1;
/// `kind`: a queue.
pub const KIND_QUEUE: u32 = 2;
/// `queue_mode`: single producer, single consumer.
pub const QUEUE_SPSC: u32 = 1;
/// `queue_mode`: multi-producer, multi-consumer.
pub const QUEUE_MPMC: u32 = 2;
/// A queue's control block precedes its slots.
pub const QUEUE_CONTROL_SIZE: u64 = 256;

/// The boot id as `/proc/sys/kernel/random/boot_id` prints it (8-4-4-4-12 hex digits).
pub fn boot_id_text(id: &[u8; 16]) -> String {
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// `state` in words.
pub fn state_text(state: u32) -> &'static str {
    match state {
        STATE_INITIALISING => "initialising",
        STATE_READY => "ready",
        _ => "unknown",
    }
}

/// `kind` in words.
pub fn kind_text(kind: u32) -> &'static str {
    match kind {
        KIND_VALUE => "value",
        KIND_QUEUE => "queue",
        _ => "unknown",
    }
}

/// `queue_mode` in words.
pub fn queue_mode_text(mode: u32) -> &'static str {
    match mode {
        0 => "none",
        QUEUE_SPSC => "spsc",
        QUEUE_MPMC => "mpmc",
        _ => "unknown",
    }
}

/// `flags` decoded: `in_place: yes, notify_readers: no`, and any unknown bits.
pub fn flags_text(flags: u32) -> String {
    let yes = |bit: u32| if flags & bit != 0 { "yes" } else { "no" };
    let mut text = format!(
        "in_place: {}, notify_readers: {}",
        yes(FLAG_IN_PLACE),
        yes(FLAG_NOTIFY_READERS)
    );
    let unknown = flags & !(FLAG_IN_PLACE | FLAG_NOTIFY_READERS);
    if unknown != 0 {
        text.push_str(&format!(", unknown bits {unknown:#x}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_constants_agree_with_the_library() {
        use shmstore::__format as lib;
        assert_eq!(FLAG_IN_PLACE, lib::FLAG_IN_PLACE);
        assert_eq!(FLAG_NOTIFY_READERS, lib::FLAG_NOTIFY_READERS);
        assert_eq!(STATE_INITIALISING, lib::STATE_INITIALISING);
        assert_eq!(STATE_READY, lib::STATE_READY);
        assert_eq!(KIND_VALUE, lib::KIND_VALUE);
        assert_eq!(KIND_QUEUE, lib::KIND_QUEUE);
        assert_eq!(QUEUE_SPSC, lib::QUEUE_SPSC);
        assert_eq!(QUEUE_MPMC, lib::QUEUE_MPMC);
        assert_eq!(
            Ok(QUEUE_CONTROL_SIZE),
            u64::try_from(lib::QUEUE_CONTROL_SIZE)
        );
    }

    #[test]
    fn boot_ids_print_like_the_kernel_prints_them() {
        let id = [
            0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0, 1, 2, 3, 4, 5, 6, 7,
        ];
        assert_eq!(boot_id_text(&id), "01234567-89ab-cdef-0001-020304050607");
    }

    #[test]
    fn flags_say_each_mode_and_unknown_bits() {
        assert_eq!(flags_text(0), "in_place: no, notify_readers: no");
        assert_eq!(
            flags_text(FLAG_IN_PLACE | 8),
            "in_place: yes, notify_readers: no, unknown bits 0x8"
        );
    }
}
