//! Why a value could not be read or written.

/// A value in shared memory that cannot be read as its type, or a value that does not fit its
/// field. Each message says what is wrong and what to do.
///
/// Reading a value another process wrote never panics: a length above the capacity or text
/// that is not UTF-8 comes back as one of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// [`FixedStr::set`](crate::value::FixedStr::set) (or `new`, `try_from`) was given text
    /// longer than the field holds.
    #[error(
        "text of {len} bytes does not fit in a FixedStr<{capacity}>: shorten it to at most \
         {capacity} bytes, or give the field a larger capacity"
    )]
    TextTooLong {
        /// The text's length in bytes.
        len: usize,
        /// The field's capacity `N`, in bytes.
        capacity: usize,
    },
    /// A stored length is above the field's capacity: the region was written by a build with a
    /// larger capacity, by another program, or corrupted.
    #[error(
        "the stored {what} length {len} is above the capacity {capacity}: the region was \
         written by another build or program, or is corrupt; write the field again to repair it"
    )]
    LengthAboveCapacity {
        /// `"text"` or `"list"`.
        what: &'static str,
        /// The length as stored.
        len: u64,
        /// The field's capacity `N`.
        capacity: usize,
    },
    /// The stored text is not UTF-8.
    #[error(
        "the stored text is not valid UTF-8 (the first {valid_up_to} of its {len} bytes are): \
         another program wrote bytes that are not UTF-8, or the region is corrupt; write the \
         field again to repair it"
    )]
    InvalidUtf8 {
        /// How many leading bytes are valid UTF-8.
        valid_up_to: usize,
        /// The stored length in bytes.
        len: usize,
    },
    /// [`FixedVec::push`](crate::value::FixedVec::push) or
    /// [`extend_from_slice`](crate::value::FixedVec::extend_from_slice) found no room.
    #[error(
        "a FixedVec of capacity {capacity} cannot hold {wanted} elements: remove elements \
         first, or give the field a larger capacity"
    )]
    ListFull {
        /// The list's capacity `N`.
        capacity: usize,
        /// How many elements the list would have held.
        wanted: usize,
    },
    /// A time before 1677-09-21 or after 2262-04-11, which `i64` nanoseconds since the epoch
    /// cannot count.
    #[error(
        "the time is {seconds} seconds from the Unix epoch, outside what a Timestamp holds \
         (i64 nanoseconds: years 1677 to 2262)"
    )]
    TimeOutOfRange {
        /// Seconds from the epoch (negative before it), saturated at `i64`'s bounds.
        seconds: i64,
    },
}
