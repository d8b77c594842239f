//! The settings every region takes whatever it holds, shared by
//! [`ShmOptions`](crate::ShmOptions) and [`ShmQueueOptions`](crate::ShmQueueOptions): one
//! struct for their values and one macro for their setters, so the two builders cannot drift.

use std::fmt;
use std::time::Duration;

use crate::layout::TypeLayout;
use crate::region::{QueueSpec, RegionSpec};

/// Permissions, the open timeout, trust in another owner and cleanup: what a value and a queue
/// are both created and opened with. Each builder embeds one as its `common` field.
#[derive(Clone, Copy)]
pub(crate) struct CommonOptions {
    mode: u32,
    open_timeout: Duration,
    unlink_on_drop: bool,
    allow_other_owner: bool,
    wait_for_creation: Option<Duration>,
}

impl CommonOptions {
    /// Mode `0o600`, `open_timeout` 1 s, no unlink on drop, only regions of this user.
    pub(crate) const DEFAULT: CommonOptions = CommonOptions {
        mode: 0o600,
        open_timeout: Duration::from_secs(1),
        unlink_on_drop: false,
        allow_other_owner: false,
        wait_for_creation: None,
    };

    pub(crate) fn set_mode(&mut self, mode: u32) {
        self.mode = mode & 0o777;
    }

    pub(crate) fn set_open_timeout(&mut self, timeout: Duration) {
        self.open_timeout = timeout;
    }

    pub(crate) fn set_unlink_on_drop(&mut self, unlink: bool) {
        self.unlink_on_drop = unlink;
    }

    pub(crate) fn set_allow_other_owner(&mut self, allow: bool) {
        self.allow_other_owner = allow;
    }

    pub(crate) fn set_wait_for_creation(&mut self, patience: Duration) {
        self.wait_for_creation = Some(patience);
    }

    /// The region layer's settings: these, and what the builder adds for its kind.
    pub(crate) fn spec(
        &self,
        layout: &'static TypeLayout,
        in_place: bool,
        notify_readers: bool,
        queue: Option<QueueSpec>,
    ) -> RegionSpec {
        RegionSpec {
            layout,
            stored: None,
            in_place,
            notify_readers,
            mode: self.mode,
            open_timeout: self.open_timeout,
            allow_other_owner: self.allow_other_owner,
            unlink_on_drop: self.unlink_on_drop,
            wait_for_creation: self.wait_for_creation,
            queue,
            versions: None,
        }
    }

    /// Adds these settings to a builder's `Debug` output, the mode in octal.
    pub(crate) fn debug_fields(&self, out: &mut fmt::DebugStruct<'_, '_>) {
        out.field("mode", &format_args!("{:#o}", self.mode))
            .field("open_timeout", &self.open_timeout)
            .field("unlink_on_drop", &self.unlink_on_drop)
            .field("allow_other_owner", &self.allow_other_owner)
            .field("wait_for_creation", &self.wait_for_creation);
    }
}

/// The setters of [`CommonOptions`], as inherent methods of a builder whose `common` field
/// holds them: inherent, so that rustdoc lists each one, with its docs, on each builder and no
/// trait needs importing. `what` names the builder's region ("region", "queue"); `mode_note`
/// ends the `mode` docs with what its permissions mean for that kind.
macro_rules! common_setters {
    (what: $what:literal, mode_note: $mode_note:literal) => {
        #[doc = concat!(
            "Permission bits of a created ", $what, " (default `0o600`), applied with `fchmod` ",
            "so the umask cannot change them. ", $mode_note
        )]
        pub fn mode(mut self, mode: u32) -> Self {
            self.common.set_mode(mode);
            self
        }

        #[doc = concat!(
            "How long `open` waits for a live creator that is still initialising the ", $what,
            " (default 1 s) before [`Error::Timeout`](crate::Error::Timeout)."
        )]
        pub fn open_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.common.set_open_timeout(timeout);
            self
        }

        #[doc = concat!(
            "Make `open` wait, at most `patience`, for the ", $what, " to be created when ",
            "none exists yet (default: `open` returns [`Error::NotFound`](crate::Error::NotFound) ",
            "at once), then open it: for a process that may start before the one that creates ",
            "the ", $what, ". It sleeps until an entry appears in the ", $what, "'s directory ",
            "(inotify on `/dev/shm`, or on a file's directory), or, for a System V segment, ",
            "looks again after sleeps growing to 100 ms; ",
            "[`Error::Timeout`](crate::Error::Timeout) ",
            "when `patience` runs out. `open_or_create` and `create` ignore it."
        )]
        pub fn wait_for_creation(mut self, patience: std::time::Duration) -> Self {
            self.common.set_wait_for_creation(patience);
            self
        }

        #[doc = concat!(
            "Remove the ", $what, " when this handle is dropped — only if its name (path, key) ",
            "still refers to this handle's ", $what, " (default `false`). A region migrated to ",
            "another type since (README, \"Changing a region's type\") is followed first, so ",
            "the region that replaced it under the name is the one removed."
        )]
        pub fn unlink_on_drop(mut self, unlink: bool) -> Self {
            self.common.set_unlink_on_drop(unlink);
            self
        }

        #[doc = concat!(
            "Accept a ", $what, " owned by another user (default `false`: anyone could plant ",
            "one under a name this process uses, so trusting another owner must be explicit)."
        )]
        ///
        /// Trusting a region means trusting every process that can write it: a writer can hold
        /// the lock forever, shrink the object (a later access through any handle that maps it,
        /// read-only ones included, then dies of SIGBUS; see the README's threat model), or
        /// forge the robust-list links inside the mutex, which glibc in this process follows
        /// when it locks and unlocks. A value's read-only handle
        /// ([`ShmOptions::open_reader`](crate::ShmOptions::open_reader)) never touches the
        /// mutex.
        pub fn allow_other_owner(mut self, allow: bool) -> Self {
            self.common.set_allow_other_owner(allow);
            self
        }
    };
}

pub(crate) use common_setters;
