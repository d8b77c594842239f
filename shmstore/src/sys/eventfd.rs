//! An eventfd: the descriptor a process-local notifier makes readable for event loops.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::libc;

/// A non-blocking, close-on-exec eventfd counter: readable while its count is not zero.
#[derive(Debug)]
pub(crate) struct EventFd(OwnedFd);

impl EventFd {
    /// A new eventfd with a count of zero (not readable).
    pub(crate) fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd takes no pointer; it returns a new descriptor or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a descriptor eventfd just opened, owned by nothing else.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Adds one to the count: the descriptor becomes readable. Never blocks; a count at its
    /// maximum (which a reader far behind would need 2^64 signals to reach) stays readable,
    /// so the failure is ignored.
    pub(crate) fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes the 8 bytes of a live `u64` to a descriptor this value owns.
        unsafe {
            libc::write(
                self.0.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }

    /// Resets the count to zero (the descriptor stops being readable) and says whether it was
    /// signalled since the last reset. Never blocks.
    pub(crate) fn reset(&self) -> bool {
        let mut count: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live `u64`, from a descriptor this value owns;
        // non-blocking, so an unsignalled eventfd answers EAGAIN at once.
        let read = unsafe {
            libc::read(
                self.0.as_raw_fd(),
                (&mut count as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        read == std::mem::size_of::<u64>() as isize && count != 0
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_is_read_once() {
        let fd = EventFd::new().expect("eventfd");
        assert!(!fd.reset());
        fd.signal();
        fd.signal();
        assert!(fd.reset());
        assert!(!fd.reset());
    }
}
