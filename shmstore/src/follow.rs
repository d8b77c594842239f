//! A handle's chain of regions: the region its location held when it opened, then each region
//! that replaced it there by a migration (README, "Changing a region's type"), which the handle
//! follows on its next operation.
//!
//! A region left behind stays mapped until the handle drops, because a guard or a read in
//! another thread of this process may still be using it; migrations are rare (one per type
//! change), so the chain stays short. Finding the current region costs one acquire load per
//! link: one on a handle that never followed.

use std::panic::{RefUnwindSafe, UnwindSafe};
use std::sync::OnceLock;

use crate::error::Result;

/// An attachment `A` (a region and how the handle's type reaches its value) and those that
/// replaced it, in order.
pub(crate) struct Chain<A> {
    attached: A,
    next: OnceLock<Box<Chain<A>>>,
    /// Taken while a thread opens the region that replaces the last one, so that threads of
    /// one handle that find it moved at once open it once (process-local state shared by
    /// threads).
    following: parking_lot::Mutex<()>,
}

// Handles stay unwind-safe, as they were before they could follow (`catch_unwind(|| shm.read())`):
// the mutex guards no data, only the order of appends, and a panic in `open` appends nothing.
impl<A: RefUnwindSafe> RefUnwindSafe for Chain<A> {}
impl<A: UnwindSafe> UnwindSafe for Chain<A> {}

impl<A> Chain<A> {
    /// A chain of one.
    pub(crate) fn new(attached: A) -> Self {
        Chain {
            attached,
            next: OnceLock::new(),
            following: parking_lot::Mutex::new(()),
        }
    }

    /// The attachment the handle uses now: the last one.
    #[inline]
    pub(crate) fn current(&self) -> &A {
        &self.last().attached
    }

    #[inline]
    fn last(&self) -> &Chain<A> {
        let mut link = self;
        while let Some(next) = link.next.get() {
            link = next;
        }
        link
    }

    /// The handle found `moved` (an attachment of this chain) replaced: appends what `open`
    /// attaches to unless another thread already followed it, and returns the attachment to
    /// use now. An error from `open` leaves the chain as it was.
    pub(crate) fn follow(&self, moved: &A, open: impl FnOnce() -> Result<A>) -> Result<&A> {
        let _one_at_a_time = self.following.lock();
        let last = self.last();
        if !std::ptr::eq(&last.attached, moved) {
            // Another thread of this process followed it meanwhile.
            return Ok(&last.attached);
        }
        let next = Box::new(Chain::new(open()?));
        // Only this thread appends (it holds `following`), and `last` has no successor yet.
        let _ = last.next.set(next);
        Ok(self.current())
    }

    /// How many regions the handle has used (1 until its first migration).
    #[cfg(test)]
    fn len(&self) -> usize {
        let mut count = 1;
        let mut link = self;
        while let Some(next) = link.next.get() {
            link = next;
            count += 1;
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_of_one_is_its_attachment() {
        let chain = Chain::new(1);
        assert_eq!(*chain.current(), 1);
        assert_eq!(chain.len(), 1);
    }

    #[test]
    fn following_appends_once_and_the_last_is_current() {
        let chain = Chain::new(1);
        let first = chain.current();
        assert_eq!(*chain.follow(first, || Ok(2)).unwrap(), 2);
        // A second thread that saw the first attachment moved finds it followed already.
        assert_eq!(
            *chain
                .follow(first, || unreachable!("followed already"))
                .unwrap(),
            2
        );
        assert_eq!(*chain.current(), 2);
        assert_eq!(chain.len(), 2);
    }

    #[test]
    fn a_failed_open_leaves_the_chain_unchanged() {
        let chain = Chain::new(1);
        let first = chain.current();
        let failed = chain.follow(first, || Err(crate::Error::Removed { name: "x".into() }));
        assert!(failed.is_err());
        assert_eq!(*chain.current(), 1);
        assert_eq!(chain.len(), 1);
    }

    #[test]
    fn threads_that_find_it_moved_together_open_once() {
        let chain = Chain::new(0usize);
        let opened = std::sync::atomic::AtomicUsize::new(0);
        let first = chain.current();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    chain
                        .follow(first, || {
                            Ok(opened.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1)
                        })
                        .unwrap();
                });
            }
        });
        assert_eq!(opened.into_inner(), 1);
        assert_eq!(*chain.current(), 1);
    }
}
