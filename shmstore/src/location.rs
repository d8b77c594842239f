//! Where a region lives: a POSIX shared-memory name, a file path, or a System V key.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::name::validate_name;

/// Where a region lives: the three ways shared memory is set up on Linux.
///
/// - [`Named`](Self::Named): created with `Shm::create(name, …)` (a `&str` or `String`), lives
///   until `unlink` or a reboot. The default: fastest to open, listed by `shmstore list`.
/// - [`File`](Self::File): created with `Shm::create(path, …)` (a `&Path` or `PathBuf`, or
///   [`Location::path`]), lives until the file is deleted. For state that must survive
///   reboots.
/// - [`SysV`](Self::SysV): created with `Shm::create(Location::sysv(key), …)`, lives until
///   `IPC_RMID` or a reboot. For sharing with programs that use `shmget`.
///
/// Every method that creates, opens or removes a region (of [`Shm`](crate::Shm),
/// [`ShmQueue`](crate::ShmQueue), their options, [`unlink`](crate::unlink)) takes
/// `impl Into<Location>`, so one spelling works everywhere.
///
/// Every backend has the same header, lock, snapshots and checks. As text (the `shmstore`
/// command, error messages) a location is written as the region name, a path containing `/`
/// (`./state.shm`, `/var/lib/app/state.shm`), or `sysv:KEY` with the key in hexadecimal
/// (`sysv:0x5eed0001`) or decimal. A `&str` or `String` converts to a name only (a `Path` to a
/// file); use [`Location::parse`] to read the text form:
///
/// ```
/// use shmstore::Location;
/// assert_eq!(Location::parse("limits"), Location::Named("limits".into()));
/// assert_eq!(Location::parse("./state.shm"), Location::File("./state.shm".into()));
/// assert_eq!(Location::parse("sysv:0x5eed0001"), Location::SysV(0x5eed0001));
/// assert_eq!(Location::SysV(0x5eed0001).to_string(), "sysv:0x5eed0001");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Location {
    /// A POSIX shared-memory object, `/dev/shm/NAME` (see [`validate_name`]). Kept in memory
    /// (tmpfs): gone at reboot.
    Named(String),
    /// A regular file, mapped shared. The value persists on disk across reboots; the first
    /// opener after a reboot resets the lock and the sleepers' state, which meant nothing
    /// after the reboot, and keeps the value.
    File(PathBuf),
    /// A System V segment (`shmget`) with this key (see [`ftok`](crate::ftok)); never 0,
    /// `IPC_PRIVATE`.
    SysV(i32),
}

impl Location {
    /// A file region at `path` ([`Location::File`]): the same as passing a `&Path` or a
    /// `PathBuf`, spelled out for a path held as text, which alone would be a region name.
    ///
    /// ```
    /// use shmstore::Location;
    /// assert_eq!(Location::path("/var/lib/app/state.shm"),
    ///            Location::File("/var/lib/app/state.shm".into()));
    /// ```
    pub fn path(path: impl AsRef<Path>) -> Location {
        Location::File(path.as_ref().to_path_buf())
    }

    /// A System V segment with `key` ([`Location::SysV`]): from [`ftok`](crate::ftok), or a
    /// constant both
    /// programs know.
    ///
    /// ```
    /// # fn main() -> shmstore::Result<()> {
    /// use shmstore::{Location, Shm};
    /// # let key = 0x5f00_0000 | (std::process::id() as i32 & 0xffff);
    /// let shared = Shm::<u64>::options().unlink_on_drop(true).create(Location::sysv(key), 7)?;
    /// assert_eq!(shared.location(), &Location::SysV(key));
    /// # Ok(()) }
    /// ```
    pub fn sysv(key: i32) -> Location {
        Location::SysV(key)
    }

    /// Reads a location as the `shmstore` command writes it: `sysv:KEY` (hexadecimal with
    /// `0x`, or decimal), a path if it contains `/`, and a region name otherwise. Never fails:
    /// a malformed name is reported when the location is used.
    pub fn parse(text: &str) -> Location {
        if let Some(key) = text.strip_prefix("sysv:") {
            let parsed = match key.strip_prefix("0x").or_else(|| key.strip_prefix("0X")) {
                Some(hex) => u32::from_str_radix(hex, 16).ok().map(|k| k as i32),
                None => key.parse::<i32>().ok(),
            };
            if let Some(key) = parsed {
                return Location::SysV(key);
            }
        }
        if text.contains('/') {
            Location::File(PathBuf::from(text))
        } else {
            Location::Named(text.to_string())
        }
    }

    /// Checks the location before any system call: a valid name, a path that names a file, a
    /// key other than `IPC_PRIVATE`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] for a name, [`Error::InvalidLocation`] for a path or key.
    pub fn validate(&self) -> Result<()> {
        let reason = match self {
            Location::Named(name) => return validate_name(name),
            Location::File(path) => file_path_problem(path),
            Location::SysV(0) => Some("key 0 is IPC_PRIVATE, which no other process can open"),
            Location::SysV(_) => None,
        };
        match reason {
            None => Ok(()),
            Some(reason) => Err(Error::InvalidLocation {
                location: self.to_string(),
                reason,
            }),
        }
    }
}

fn file_path_problem(path: &Path) -> Option<&'static str> {
    let text = path.as_os_str().as_encoded_bytes();
    if text.is_empty() {
        Some("the path is empty")
    } else if text.contains(&0) {
        Some("the path contains a NUL byte")
    } else if text.ends_with(b"/")
        || !matches!(path.components().next_back(), Some(Component::Normal(_)))
    {
        Some("the path does not end in a file name")
    } else {
        None
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Named(name) => f.write_str(name),
            Location::File(path) => write!(f, "{}", path.display()),
            Location::SysV(key) => write!(f, "sysv:{:#010x}", *key as u32),
        }
    }
}

// A bare string is a region name, never parsed: a name from untrusted input must not turn into
// a path that `unlink` would remove. Text as the `shmstore` command takes it goes through
// `Location::parse` explicitly.

impl From<&str> for Location {
    /// A POSIX region name.
    fn from(name: &str) -> Self {
        Location::Named(name.to_string())
    }
}

impl From<&String> for Location {
    /// A POSIX region name.
    fn from(name: &String) -> Self {
        Location::Named(name.clone())
    }
}

impl From<String> for Location {
    /// A POSIX region name.
    fn from(name: String) -> Self {
        Location::Named(name)
    }
}

impl From<&Path> for Location {
    /// A file region.
    fn from(path: &Path) -> Self {
        Location::File(path.to_path_buf())
    }
}

impl From<&PathBuf> for Location {
    /// A file region.
    fn from(path: &PathBuf) -> Self {
        Location::File(path.clone())
    }
}

impl From<PathBuf> for Location {
    /// A file region.
    fn from(path: PathBuf) -> Self {
        Location::File(path)
    }
}

impl From<&Location> for Location {
    fn from(location: &Location) -> Self {
        location.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ftok;

    #[test]
    fn parses_every_written_form_and_prints_it_back() {
        for (text, location) in [
            ("limits", Location::Named("limits".into())),
            (
                "/var/lib/app/s.shm",
                Location::File("/var/lib/app/s.shm".into()),
            ),
            ("./s.shm", Location::File("./s.shm".into())),
            ("sysv:0xdeadbeef", Location::SysV(0xdeadbeef_u32 as i32)),
            ("sysv:42", Location::SysV(42)),
            ("sysv:-1", Location::SysV(-1)),
            // Not a key: left as a name, which validation then refuses.
            ("sysv:zz", Location::Named("sysv:zz".into())),
        ] {
            assert_eq!(Location::parse(text), location, "{text}");
        }
        assert_eq!(Location::SysV(42).to_string(), "sysv:0x0000002a");
        assert_eq!(Location::parse("sysv:0x0000002a"), Location::SysV(42));
        assert_eq!(Location::SysV(-1).to_string(), "sysv:0xffffffff");
    }

    #[test]
    fn validation_refuses_what_cannot_name_a_region() {
        assert!(Location::SysV(0).validate().is_err());
        assert!(Location::SysV(1).validate().is_ok());
        assert!(Location::File("".into()).validate().is_err());
        assert!(Location::File("/tmp/".into()).validate().is_err());
        assert!(Location::File("/tmp/..".into()).validate().is_err());
        assert!(Location::File("/".into()).validate().is_err());
        assert!(Location::File("/tmp/a.shm".into()).validate().is_ok());
        assert!(Location::Named("a/b".into()).validate().is_err());
        assert!(matches!(ftok("/", 0), Err(Error::InvalidLocation { .. })));
        assert!(matches!(
            ftok("/no/such/file/here", 1),
            Err(Error::NotFound { .. })
        ));
    }
}
