//! The owner word (`FORMAT.md`): who holds an SPSC role of a queue, or repairs an abandoned
//! object by replacement.

use crate::sys::process;

/// Who holds an SPSC role, or the repair of an abandoned object by replacement (FORMAT.md): a
/// pid, and the PID namespace that numbers it, since a
/// pid means nothing in another namespace (containers that share IPC but not pids). One 8-byte
/// word, the pid in its first 4 bytes and the namespace in the next 4, so that both change in
/// one compare-and-swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) pid: u32,
    /// 0: not recorded (a region written by an older version, or by a process without
    /// `/proc`), taken as this process's namespace.
    pid_ns: u32,
}

impl Owner {
    pub(crate) fn me() -> Owner {
        Owner {
            pid: process::current_pid(),
            pid_ns: process::pid_namespace(),
        }
    }

    pub(crate) fn word(self) -> u64 {
        let [a, b, c, d] = self.pid.to_ne_bytes();
        let [e, f, g, h] = self.pid_ns.to_ne_bytes();
        u64::from_ne_bytes([a, b, c, d, e, f, g, h])
    }

    pub(crate) fn from_word(word: u64) -> Owner {
        let [a, b, c, d, e, f, g, h] = word.to_ne_bytes();
        Owner {
            pid: u32::from_ne_bytes([a, b, c, d]),
            pid_ns: u32::from_ne_bytes([e, f, g, h]),
        }
    }

    /// `false` only if the holder is certainly gone: its pid is numbered in this process's
    /// namespace and no process has it.
    pub(crate) fn may_be_alive(self) -> bool {
        !process::numbered_here(self.pid_ns) || process::is_alive(self.pid)
    }

    /// The pid if it names a process of this namespace, else 0.
    pub(crate) fn pid_here(self) -> u32 {
        if process::numbered_here(self.pid_ns) {
            self.pid
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FORMAT.md: the pid in the first 4 bytes of the owner word, its namespace in the next 4.
    #[test]
    fn an_owner_word_holds_the_pid_then_the_namespace() {
        let owner = Owner {
            pid: 0x0102_0304,
            pid_ns: 0xf000_0001,
        };
        let bytes = owner.word().to_ne_bytes();
        assert_eq!(bytes[..4], 0x0102_0304u32.to_ne_bytes());
        assert_eq!(bytes[4..], 0xf000_0001u32.to_ne_bytes());
        assert_eq!(Owner::from_word(owner.word()), owner);
    }
}
