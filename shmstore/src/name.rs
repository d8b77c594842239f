//! Region names: what is accepted, checked before any system call.

use crate::error::{Error, Result};

/// The longest accepted name, in bytes (tmpfs allows 255; the rest is left for prefixes).
pub const MAX_NAME_LEN: usize = 200;

/// glibc's `sem_open("/NAME")` creates `/dev/shm/sem.NAME`: those objects are not regions.
pub(crate) const SEMAPHORE_PREFIX: &str = "sem.";

/// Checks that `name` is 1 to [`MAX_NAME_LEN`] of `[A-Za-z0-9._-]`, not `.` or `..`, does not
/// start with `-`, and does not start with `sem.`.
///
/// Names map to `/dev/shm/<name>`; this rule keeps them to one path component that no shell
/// needs quoting for. The two prefixes belong to others: glibc keeps its named semaphores
/// (`sem_open`) in `/dev/shm/sem.NAME`, and a name starting with `-` reads as an option to
/// every command that is given it (`rm`, `ls`, the `shmstore` command itself).
///
/// ```
/// assert!(shmstore::validate_name("gateway.limits").is_ok());
/// assert!(shmstore::validate_name("../etc/passwd").is_err());
/// assert!(shmstore::validate_name("sem.gateway").is_err());
/// assert!(shmstore::validate_name("-rf").is_err());
/// ```
pub fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("it is longer than 200 bytes")
    } else if name == "." || name == ".." {
        Some("`.` and `..` name directories")
    } else if name.starts_with('-') {
        Some("it starts with `-`, which commands read as an option")
    } else if name.starts_with(SEMAPHORE_PREFIX) {
        Some("names starting with `sem.` are glibc's named semaphores")
    } else if name.contains('/') {
        // The likeliest cause: a path given as text, which is a name (never parsed, so a
        // name from input cannot become a file to create or remove).
        Some(concat!(
            "it contains `/` (text is a region name; ",
            "for a file, pass a `Path` or `Location::path(..)`)"
        ))
    } else if name.contains('\0') {
        Some("it contains a NUL byte")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Some("it contains a character other than A-Z a-z 0-9 . _ -")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(Error::InvalidName {
            name: name.to_string(),
            reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_name_alphabet_up_to_200_bytes() {
        for ok in [
            "a",
            "gateway.limits",
            "A-Z_0.9",
            "..x",
            "x..",
            "x-",
            "sem",
            "semaphore.x",
            "x.sem.y",
            &"n".repeat(200),
        ] {
            assert!(validate_name(ok).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn refuses_everything_else_with_a_reason() {
        let long = "n".repeat(201);
        for (bad, why) in [
            ("", "empty"),
            ("a/b", "`/`"),
            ("../x", "`/`"),
            (".", "directories"),
            ("..", "directories"),
            ("a\0b", "NUL"),
            ("a b", "character"),
            ("é", "character"),
            (long.as_str(), "longer"),
            ("-rf", "option"),
            ("-", "option"),
            ("sem.x", "semaphores"),
            ("sem.", "semaphores"),
        ] {
            match validate_name(bad) {
                Err(Error::InvalidName { reason, .. }) => {
                    assert!(reason.contains(why), "{bad:?}: {reason}")
                }
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }
}
