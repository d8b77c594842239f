//! How a subcommand fails, and the exit code each failure maps to.

use std::borrow::Cow;
use std::io;

use shmstore::printable;

/// Why a subcommand did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// One line for stderr (without the `shmstore: ` prefix); exit code 1.
    Message(String),
    /// The errors were already printed one per item (`rm` goes on after a failed name); exit
    /// code 1.
    Reported,
    /// Whoever reads our output went away (`shmstore list | head -1`): not an error, exit 0
    /// quietly, as other Unix tools do.
    BrokenPipe,
}

/// `message` with any control or bidi formatting character still in it escaped, as
/// [`shmstore::printable`] escapes them; backslashes stay, so that text already escaped by
/// `printable` (the library's messages) is not escaped twice. The last step before stderr:
/// a message built from a region's names cannot reach the terminal raw.
pub fn terminal(message: &str) -> Cow<'_, str> {
    let escaped = unsafe_for_terminals;
    if !message.chars().any(escaped) {
        return Cow::Borrowed(message);
    }
    let mut out = String::with_capacity(message.len() + 8);
    for c in message.chars() {
        if escaped(c) {
            out.push_str(&printable(c.encode_utf8(&mut [0; 4])));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Whether [`shmstore::printable`] escapes `c` because it is a control or bidi formatting
/// character (it also escapes `\\`, which is harmless on a terminal).
pub fn unsafe_for_terminals(c: char) -> bool {
    c != '\\' && printable(c.encode_utf8(&mut [0; 4])).len() > c.len_utf8()
}

/// The result of a subcommand.
pub type Outcome<T = ()> = Result<T, Failure>;

impl From<shmstore::Error> for Failure {
    fn from(e: shmstore::Error) -> Failure {
        // The library's messages already say what happened and what to do, on one line.
        let mut message = e.to_string();
        if let shmstore::Error::NotFound { name } = &e {
            message.push_str(&file_hint(name));
        }
        Failure::Message(message)
    }
}

/// For a region name that is not in `/dev/shm` but names something in the current directory
/// (`shmstore get state.shm`): a location is a file only with a `/` in it, so say how to
/// write it. Empty when the text is not a plain name or nothing of that name is here.
fn file_hint(name: &str) -> String {
    let is_plain_name = matches!(
        shmstore::Location::parse(name),
        shmstore::Location::Named(_)
    );
    if is_plain_name && std::fs::symlink_metadata(name).is_ok() {
        format!(
            "; `{shown}` in the current directory is not a region name: for a file region, \
             write a path, `./{shown}`",
            shown = printable(name)
        )
    } else {
        String::new()
    }
}

/// For writes to stdout only: other I/O errors are mapped with their context where they occur.
impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Failure::BrokenPipe
        } else {
            Failure::Message(format!("cannot write the output: {e}"))
        }
    }
}

impl From<serde_json::Error> for Failure {
    fn from(e: serde_json::Error) -> Failure {
        if e.io_error_kind() == Some(io::ErrorKind::BrokenPipe) {
            Failure::BrokenPipe
        } else {
            Failure::Message(format!("cannot write the JSON output: {e}"))
        }
    }
}
