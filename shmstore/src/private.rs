//! Items the derive's generated code names. Not part of the public API.

pub use bytemuck::{Pod, Zeroable};
pub use core::mem::{align_of, offset_of, size_of};
pub use core::panic;

/// A compile-time error message with one number in it, built in const context so the
/// derive's padding proofs can say how many bytes of padding to add.
pub struct Message<const CAP: usize> {
    buf: [u8; CAP],
    len: usize,
}

impl<const CAP: usize> Message<CAP> {
    /// `prefix`, `n` in decimal, `suffix`; cut at a character boundary if longer than `CAP`.
    pub const fn new(prefix: &str, n: usize, suffix: &str) -> Self {
        let mut m = Message {
            buf: [0; CAP],
            len: 0,
        };
        m = m.push(prefix.as_bytes());
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        let mut v = n;
        loop {
            start -= 1;
            digits[start] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        m = m.push(digits.split_at(start).1);
        m.push(suffix.as_bytes())
    }

    const fn push(mut self, bytes: &[u8]) -> Self {
        let mut i = 0;
        while i < bytes.len() && self.len < CAP {
            self.buf[self.len] = bytes[i];
            self.len += 1;
            i += 1;
        }
        // Never end inside a UTF-8 sequence.
        while self.len > 0
            && self.len == CAP
            && self.len < CAP + 1
            && (self.buf[self.len - 1] & 0xC0) == 0x80
        {
            self.len -= 1;
        }
        self
    }

    /// The message text.
    pub const fn as_str(&self) -> &str {
        match core::str::from_utf8(self.buf.split_at(self.len).0) {
            Ok(s) => s,
            Err(_) => "padding in a `ShmType` struct (message cut short)",
        }
    }
}

/// The check behind "derive `Clone` and `Copy`": a dedicated bound so the error says what
/// to add rather than only that `Pod` needs `Copy`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` must be `Copy` to derive `ShmType`",
    label = "add `#[derive(Clone, Copy)]` to this struct",
    note = "values in shared memory are copied in and out as plain bytes"
)]
pub trait MustBeCopy: Copy {}
impl<T: Copy> MustBeCopy for T {}

/// Compiles only for `T: Copy` (see [`MustBeCopy`]).
pub const fn must_be_copy<T: MustBeCopy>() {}
