//! Region names: what is accepted, checked before any system call.

use crate::error::{Error, Result};

/// The longest accepted name, in bytes (tmpfs allows 255; the rest is left for prefixes).
pub const MAX_NAME_LEN: usize = 200;

/// Checks that `name` is 1 to [`MAX_NAME_LEN`] of `[A-Za-z0-9._-]` and not `.` or `..`.
///
/// Names map to `/dev/shm/<name>`; this rule keeps them to one path component that no shell
/// needs quoting for.
///
/// ```
/// assert!(shmstore::validate_name("gateway.limits").is_ok());
/// assert!(shmstore::validate_name("../etc/passwd").is_err());
/// ```
pub fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("it is longer than 200 bytes")
    } else if name == "." || name == ".." {
        Some("`.` and `..` name directories")
    } else if name.contains('/') {
        Some("it contains `/`")
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
