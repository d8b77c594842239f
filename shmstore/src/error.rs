//! The one error type of the crate.

use std::io;
use std::time::Duration;

/// Everything that can go wrong when creating, opening or removing a region.
///
/// Every message says what happened and what to do about it. Locking does not use this type:
/// like `std::sync::Mutex`, [`Shm::lock`](crate::Shm::lock) returns std's
/// [`LockResult`](std::sync::LockResult).
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The name is not 1 to 200 of `[A-Za-z0-9._-]`, is `.` or `..`, or starts with `-` or
    /// `sem.` (names that belong to others). Checked before any system call.
    #[error(
        "invalid region name {name:?}: {reason}; a name is 1 to 200 characters of \
         A-Z a-z 0-9 . _ - and is not \".\" or \"..\", and does not start with \"-\" or \"sem.\""
    )]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A file path that names no file (empty, or ending in `/` or `..`), a System V key of 0
    /// (`IPC_PRIVATE`), or an `ftok` project id of 0. Checked before any system call.
    #[error(
        "invalid region location {location:?}: {reason}; a file region needs a path ending in \
         a file name, and a System V region a nonzero key (see shmstore::ftok)"
    )]
    InvalidLocation {
        /// The location as written (see [`Location`](crate::Location)).
        location: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// No region has this name.
    #[error(
        "region `{name}` does not exist; create it first (Shm::create or Shm::open_or_create), \
         check the name with `shmstore list`, or, in a reader that may start before its writer, \
         open with wait_for_creation to wait until the writer has created it (README, Starting \
         order)",
        name = printable(name)
    )]
    NotFound {
        /// The region name.
        name: String,
    },

    /// [`Shm::create`](crate::Shm::create) found the name taken.
    #[error(
        "region `{name}` already exists; open it with Shm::open or Shm::open_or_create, or \
         remove it first with shmstore::unlink (or `shmstore rm {name}`)",
        name = printable(name)
    )]
    AlreadyExists {
        /// The region name.
        name: String,
    },

    /// The region holds another type (or another version of this type) than the one asked for.
    #[error(
        "region `{name}` holds `{found}` (fingerprint {found_fingerprint:#018x}), not `{expected}` \
         (fingerprint {expected_fingerprint:#018x}){}; build both programs from the same type \
         definition (or change it only as README \"Changing a region's type\" allows), or use \
         another region name",
        render_differences(differences),
        name = printable(name),
        found = printable(found),
        expected = printable(expected)
    )]
    LayoutMismatch {
        /// The region name.
        name: String,
        /// The type this process asked for.
        expected: String,
        /// The type stored in the region's descriptor.
        found: String,
        /// The fingerprint of the type this process asked for.
        expected_fingerprint: u64,
        /// The fingerprint stored in the region.
        found_fingerprint: u64,
        /// One line per difference, read from the descriptor stored in the region, such as
        /// ``field `burst`: u64 at offset 8 here, u32 at offset 8 in the region``.
        differences: Vec<String>,
    },

    /// The region is a queue and a single value was asked for, or the other way round.
    #[error(
        "region `{name}` is {found}, not {expected}; open it with {}, or use another name",
        if *found == "a queue" { "ShmQueue (or ShmChannel, for a byte channel)" } else { "Shm" },
        name = printable(name)
    )]
    WrongKind {
        /// The region name.
        name: String,
        /// What this process asked for: `"a single value"` or `"a queue"`.
        expected: &'static str,
        /// What the region is.
        found: &'static str,
    },

    /// The queue holds the right element type but was created with another capacity (or, from
    /// [`ShmChannelOptions::open_or_create`](crate::ShmChannelOptions::open_or_create), the
    /// channel exists with another ring size, in bytes).
    #[error(
        "`{name}` was created with capacity {found}, and this process asked for {expected}; ask \
         for {found} here (ShmQueue<T, {found}>, or a ShmChannel capacity of {found} bytes, \
         which ShmChannel::open reads from the channel itself), or remove it and create it again",
        name = printable(name)
    )]
    CapacityMismatch {
        /// The region name.
        name: String,
        /// The capacity this process asked for (`N` in `ShmQueue<T, N>`).
        expected: usize,
        /// The capacity the queue was created with.
        found: usize,
    },

    /// [`ShmQueue::try_push`](crate::ShmQueue::try_push) (or
    /// [`ShmChannel::try_send`](crate::ShmChannel::try_send)) found no room without waiting:
    /// the queue (channel) was full, or (MPMC) another handle held its lock.
    #[error("{}", queue_full_text(name, *capacity, message.as_ref()))]
    QueueFull {
        /// The region name.
        name: String,
        /// Its capacity: elements for a `ShmQueue`, ring bytes for a `ShmChannel`.
        capacity: usize,
        /// For a [`ShmChannel`](crate::ShmChannel), the message refused and the room there
        /// was; `None` for a `ShmQueue`.
        message: Option<RefusedMessage>,
    },

    /// The queue (or channel) was closed with [`ShmQueue::close`](crate::ShmQueue::close) (or
    /// [`ShmChannel::close`](crate::ShmChannel::close)): nothing more can be pushed (sent).
    #[error(
        "`{name}` is closed, so nothing more can be pushed (or sent, for a channel); consumers \
         drain what it holds. To use the name again, remove it (shmstore::unlink) and create it \
         again",
        name = printable(name)
    )]
    QueueClosed {
        /// The region name.
        name: String,
    },

    /// A single-producer single-consumer queue (or channel) already has a live producer (or
    /// consumer) in another handle.
    #[error(
        "`{name}` is single-producer single-consumer and another live handle{} is its {role}; \
         use one handle per role, or create it with QueueMode::Mpmc",
        match holder_pid { Some(pid) => format!(" (pid {pid})"), None => String::new() },
        name = printable(name)
    )]
    RoleTaken {
        /// The region name.
        name: String,
        /// `"producer"` or `"consumer"`.
        role: &'static str,
        /// The pid that holds the role, as its holder recorded it; `None` if it recorded none
        /// or recorded it in another PID namespace (where the number names another process).
        holder_pid: Option<u32>,
    },

    /// The object under this name is not a valid region: wrong magic or format version, a size
    /// too short for its own header, or inconsistent header fields.
    #[error(
        "region `{name}` is corrupt or not a shmstore region: {reason}; if nothing else uses it, \
         remove it with shmstore::unlink (or `shmstore rm {name}`) and create it again",
        name = printable(name),
        reason = printable(reason)
    )]
    Corrupt {
        /// The region name.
        name: String,
        /// What validation found.
        reason: String,
    },

    /// The region's creator died before finishing it (or the object is empty): what is there
    /// is an unfinished region, which `open_or_create` of the type it was made for completes.
    /// Something that is not a region is [`Error::Corrupt`] instead.
    #[error(
        "region `{name}` was never finished: it is empty, or its creator died before \
         initialising it; Shm::open_or_create with the type it was made for initialises it, or \
         remove it with shmstore::unlink (or `shmstore rm {name}`)",
        name = printable(name)
    )]
    Incomplete {
        /// The region name.
        name: String,
    },

    /// The object's permissions refuse this process, or it belongs to another user and
    /// `allow_other_owner(true)` was not given.
    #[error(
        "permission denied for region `{name}`: {detail}",
        name = printable(name),
        detail = printable(detail)
    )]
    PermissionDenied {
        /// The region name.
        name: String,
        /// Why, and what to change.
        detail: String,
    },

    /// A bounded wait ran out.
    #[error(
        "timed out after {after:?} waiting for region `{name}`: {waiting_for}; wait longer (a \
         larger timeout, or ShmOptions::open_timeout when opening), or find the process that \
         should have acted (`shmstore list`)",
        name = printable(name)
    )]
    Timeout {
        /// The region name.
        name: String,
        /// What was being waited for.
        waiting_for: &'static str,
        /// How long was waited.
        after: Duration,
    },

    /// The region a handle was waiting on was removed from its location (`shmstore::unlink`,
    /// `shmstore rm`, `unlink_on_drop`, or anything that removes the name, file or segment), or
    /// another region was put there: nothing will be published to this handle's region again.
    /// A region that a migration put there is followed instead (the wait goes on in it); this
    /// is returned only when the handle cannot follow it (removed in turn, or of a type the
    /// handle's is not compatible with).
    #[error(
        "region `{name}` was removed (or replaced by another region under its location) while \
         this handle waited on it, so nothing will be published to it again; open the location \
         again to follow the region there now, or wait for a new one to be created \
         (ShmOptions::wait_for_creation)",
        name = printable(name)
    )]
    Removed {
        /// The region name.
        name: String,
    },

    /// A system call failed for a reason not covered above.
    #[error("{operation} for region `{name}` failed: {source}",
        name = printable(name)
    )]
    Io {
        /// The region name.
        name: String,
        /// What was being done.
        operation: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// A lock on one byte of the object keeps this process from a step that only processes
    /// with write access take (the repair of an unfinished region, the reset after a reboot,
    /// taking over a dead SPSC peer's role), and no live shmstore writer holds it: a process
    /// that can only read the object holds it. Any process that can open a file for reading
    /// can lock its bytes for reading; see README "Threat model".
    #[error(
        "region `{name}`: cannot {blocked}: a lock on byte {byte} of the object stands in the \
         way, held by a process with only read access to it{}; find that process in \
         /proc/locks (the lines with the object's inode) and stop it, or take read permission \
         away from users you do not trust",
        match after { Some(after) => format!(" (waited {after:?})"), None => String::new() }
    )]
    LockedByReader {
        /// The region name.
        name: String,
        /// What the lock kept this process from doing.
        blocked: String,
        /// The byte of the object whose lock is in the way.
        byte: u64,
        /// How long this process waited for the lock to go, if it waited.
        after: Option<Duration>,
    },

    /// A value in a field could not be read or written (see
    /// [`ValueError`](crate::value::ValueError)).
    #[error(transparent)]
    Value(#[from] crate::value::ValueError),

    /// A stored enum discriminant names no variant (see
    /// [`UnknownVariant`](crate::value::UnknownVariant)).
    #[error(transparent)]
    UnknownVariant(#[from] crate::value::UnknownVariant),

    /// A field path that names no field of the region's type, or text that cannot be stored
    /// in the field it names (`shmstore get`/`set`): the reason says what to type instead.
    /// Also a commit through a compatible layout of a value that the region's narrower field
    /// cannot hold ([`ShmGuard::commit`](crate::ShmGuard::commit): nothing was committed).
    #[error(
        "region `{name}`, field `{field}`: {reason}",
        name = printable(name),
        field = printable(field),
        reason = printable(reason)
    )]
    InvalidField {
        /// The region name.
        name: String,
        /// The field path as given.
        field: String,
        /// What is wrong, and what to type instead.
        reason: String,
    },

    /// The region cannot be migrated to a type with more fields (README "Changing a region's
    /// type"): it is a queue, whose slots are laid out for one element size, or a System V
    /// segment, whose key cannot be handed to another segment in one step. Nothing changed.
    #[error(
        "region `{name}` cannot be migrated to another type: {reason}; stop every process \
         that uses it, remove it (shmstore::unlink or `shmstore rm {name}`) and create it again \
         with the new type, or use another region name",
        name = printable(name)
    )]
    NotMigratable {
        /// The region name.
        name: String,
        /// Why this region cannot move.
        reason: String,
    },

    /// The queue was created in another [`QueueMode`](crate::QueueMode) than this process
    /// asked for with [`ShmQueueOptions::queue_mode`](crate::ShmQueueOptions::queue_mode). An
    /// opener that asks for no mode follows the creator's; one that asks is never switched to
    /// the other mode silently (an SPSC producer must know that other producers may come).
    #[error(
        "`{name}` was created in mode QueueMode::{found:?}, and this process asked for \
         QueueMode::{asked:?}; ask for QueueMode::{found:?} here, or leave queue_mode unset to \
         follow the creator, or stop every process that uses the queue, remove it \
         (shmstore::unlink or `shmstore rm {name}`) and create it again in QueueMode::{asked:?}",
        name = printable(name)
    )]
    QueueModeMismatch {
        /// The region name.
        name: String,
        /// The mode this process asked for.
        asked: crate::QueueMode,
        /// The mode the queue was created with (stored in its header).
        found: crate::QueueMode,
    },

    /// A message longer than the largest a [`ShmChannel`](crate::ShmChannel) was created for.
    #[error(
        "channel `{name}` carries messages of up to {max} bytes, and this one has {len}; split \
         it, or create the channel with a larger max_message",
        name = printable(name)
    )]
    MessageTooLarge {
        /// The region name.
        name: String,
        /// The message's length.
        len: usize,
        /// The channel's largest message.
        max: usize,
    },

    /// A [`WaitSet`](crate::WaitSet) cannot take this source or cannot wait as it is: more
    /// sources than one `futex_waitv` sleeps on, or a wait that nothing could ever end.
    #[error("invalid wait set: {reason}")]
    InvalidWaitSet {
        /// What is wrong, and what to do.
        reason: String,
    },
}

/// `Debug` shows the variant and the whole message, advice included, the way `std::io::Error`
/// shows its kind and message: `fn main() -> Result<(), Box<dyn std::error::Error>>` and
/// `unwrap()` print `Debug`, and a user reading that output needs the advice more than the
/// fields (which the message names).
impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(self.variant_name())
            .field("message", &self.to_string())
            .finish()
    }
}

impl Error {
    /// The variant's name, for `Debug`.
    fn variant_name(&self) -> &'static str {
        match self {
            Error::InvalidName { .. } => "InvalidName",
            Error::InvalidLocation { .. } => "InvalidLocation",
            Error::NotFound { .. } => "NotFound",
            Error::AlreadyExists { .. } => "AlreadyExists",
            Error::LayoutMismatch { .. } => "LayoutMismatch",
            Error::WrongKind { .. } => "WrongKind",
            Error::CapacityMismatch { .. } => "CapacityMismatch",
            Error::QueueFull { .. } => "QueueFull",
            Error::QueueClosed { .. } => "QueueClosed",
            Error::RoleTaken { .. } => "RoleTaken",
            Error::Corrupt { .. } => "Corrupt",
            Error::Incomplete { .. } => "Incomplete",
            Error::PermissionDenied { .. } => "PermissionDenied",
            Error::Timeout { .. } => "Timeout",
            Error::Removed { .. } => "Removed",
            Error::Io { .. } => "Io",
            Error::LockedByReader { .. } => "LockedByReader",
            Error::InvalidField { .. } => "InvalidField",
            Error::Value(_) => "Value",
            Error::UnknownVariant(_) => "UnknownVariant",
            Error::NotMigratable { .. } => "NotMigratable",
            Error::QueueModeMismatch { .. } => "QueueModeMismatch",
            Error::MessageTooLarge { .. } => "MessageTooLarge",
            Error::InvalidWaitSet { .. } => "InvalidWaitSet",
        }
    }
}

/// A message a [`ShmChannel`](crate::ShmChannel) had no room for, in
/// [`Error::QueueFull`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefusedMessage {
    /// The message's length in bytes.
    pub len: usize,
    /// The ring bytes that were free when it was refused. A message takes 8 bytes more than
    /// its length rounded up to 8, and one that does not fit before the ring's end also takes
    /// the bytes up to it: it may not fit in fewer than twice that.
    pub free: usize,
}

fn queue_full_text(name: &str, capacity: usize, message: Option<&RefusedMessage>) -> String {
    let name = printable(name);
    match message {
        None => format!(
            "queue `{name}` has no room now: it holds its {capacity} elements, or (MPMC) another \
             handle holds its lock; pop from it, or wait with ShmQueue::push or push_timeout"
        ),
        Some(RefusedMessage { len, free }) => format!(
            "channel `{name}` has no room now for a message of {len} bytes: {free} of {capacity} \
             bytes free (a message takes its length rounded up to 8, plus 8, and one that does \
             not fit before the ring's end also the bytes up to it), or (MPMC) another handle \
             holds its lock; receive from it, or wait with ShmChannel::send or send_timeout"
        ),
    }
}

fn render_differences(differences: &[String]) -> String {
    if differences.is_empty() {
        String::new()
    } else {
        format!(": {}", printable(&differences.join("; ")))
    }
}

/// `text` safe to print on a terminal or in a log line: control characters (C0, DEL, C1) and
/// the Unicode bidirectional formatting characters become `\u{…}` escapes, and a backslash
/// becomes `\\`, so that an escaped character cannot be mistaken for the plain text of
/// one. Everything else is kept. Region names are checked, but file paths, and the type names
/// and field paths read from a region's descriptor, are anyone's text: every message that
/// shows them, here and in the `shmstore` command, goes through this.
///
/// ```
/// assert_eq!(shmstore::printable("pos.x"), "pos.x");
/// assert_eq!(shmstore::printable("a\nb\u{1b}[2J\\"), r"a\u{a}b\u{1b}[2J\\");
/// ```
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    fn needs_escape(c: char) -> bool {
        c == '\\'
            || c.is_control()
            || matches!(
                c,
                '\u{061c}'
                    | '\u{200e}'
                    | '\u{200f}'
                    | '\u{202a}'..='\u{202e}'
                    | '\u{2066}'..='\u{2069}'
            )
    }
    if !text.chars().any(needs_escape) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if needs_escape(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `Result<T, shmstore::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Maps an I/O error from `operation` on `name` to the variant that explains it best.
    pub(crate) fn io(name: &str, operation: &'static str, source: io::Error) -> Error {
        let name = name.to_string();
        match source.kind() {
            io::ErrorKind::NotFound => Error::NotFound { name },
            io::ErrorKind::AlreadyExists => Error::AlreadyExists { name },
            io::ErrorKind::PermissionDenied => Error::PermissionDenied {
                detail: format!(
                    "{operation}: {source}; the region's mode does not grant this user access \
                     (see `shmstore list` for its owner and mode)"
                ),
                name,
            },
            _ => Error::Io {
                name,
                operation,
                source,
            },
        }
    }

    pub(crate) fn corrupt(name: &str, reason: impl Into<String>) -> Error {
        Error::Corrupt {
            name: name.to_string(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `unwrap()` and `main` returning an error print `Debug`: it must carry the advice.
    #[test]
    fn debug_shows_the_variant_and_the_advice() {
        let shown = format!("{:?}", Error::NotFound { name: "cfg".into() });
        assert!(shown.starts_with("NotFound { message: "), "{shown}");
        assert!(shown.contains("create it first"), "{shown}");
        let shown = format!("{:?}", Err::<(), _>(Error::corrupt("cfg", "bad magic")));
        assert!(
            shown.contains("Corrupt") && shown.contains("bad magic"),
            "{shown}"
        );
    }
}
