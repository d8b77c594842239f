//! `Store`: one application's regions under one prefix.

use crate::error::{Error, Result};
use crate::info::{list_named, RegionInfo};
use crate::layout::ShmType;
use crate::name::{validate_name, MAX_NAME_LEN};
use crate::queue::{QueueMode, ShmQueue};
use crate::reader::ShmReader;
use crate::shm::Shm;
use crate::sys::object;

/// A namespace: the regions of one application under a common prefix, opened by short name and
/// listed or removed together.
///
/// `store.open_or_create::<T>("limits", init)` uses the region `PREFIX.limits`. For settings
/// other than the defaults, take the full name from [`name_of`](Self::name_of) and use
/// [`Shm::options`]. A store's regions are POSIX names (that is how it lists and removes them
/// together), so its methods take a short name where `Shm`'s take any
/// [`Location`](crate::Location).
///
/// ```
/// use shmstore::{Shm, Store};
///
/// # let prefix = format!("doc-store-{}", std::process::id());
/// let gateway = Store::new(&prefix)?;
/// let limits = gateway.open_or_create::<[u32; 2]>("limits", || [100, 10])?;
/// let hits = gateway.create::<u64>("hits", 0)?;
/// assert_eq!(gateway.name_of("limits")?, format!("{prefix}.limits"));
/// assert_eq!(gateway.list()?.len(), 2);
///
/// // Another process opens the same region by its short name.
/// let same = Store::new(&prefix)?.open::<[u32; 2]>("limits")?;
/// assert_eq!(same.read(), [100, 10]);
///
/// drop((limits, hits, same));
/// assert_eq!(gateway.remove_all()?, 2);
/// # Ok::<(), shmstore::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    prefix: String,
}

impl Store {
    /// A namespace for regions named `prefix.NAME`. The prefix follows the region-name rules
    /// and leaves room for a short name; `sem` is refused, since `sem.NAME` is where glibc keeps
    /// its named semaphores (see [`validate_name`]).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] for a prefix that breaks the name rules, makes names that break
    /// them (`sem`), or is longer than 198 bytes.
    pub fn new(prefix: &str) -> Result<Store> {
        validate_name(prefix)?;
        // Every name of the store starts with `prefix.`: refuse a prefix that makes them
        // another program's names now, not at each use.
        if let Err(Error::InvalidName { reason, .. }) = validate_name(&format!("{prefix}.")) {
            return Err(Error::InvalidName {
                name: prefix.to_string(),
                reason,
            });
        }
        if prefix.len() + 2 > MAX_NAME_LEN {
            return Err(Error::InvalidName {
                name: prefix.to_string(),
                reason: "a store prefix leaves no room for a short name past 198 bytes",
            });
        }
        Ok(Store {
            prefix: prefix.to_string(),
        })
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The full region name of `short`: `prefix.short`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] if `short`, or the full name, breaks the name rules.
    pub fn name_of(&self, short: &str) -> Result<String> {
        validate_name(short)?;
        let full = format!("{}.{short}", self.prefix);
        validate_name(&full)?;
        Ok(full)
    }

    /// [`Shm::create`] of `prefix.short`.
    ///
    /// # Errors
    ///
    /// As [`Shm::create`].
    pub fn create<T: ShmType>(&self, short: &str, value: T) -> Result<Shm<T>> {
        Shm::create(&self.name_of(short)?, value)
    }

    /// [`Shm::open`] of `prefix.short`.
    ///
    /// # Errors
    ///
    /// As [`Shm::open`].
    pub fn open<T: ShmType>(&self, short: &str) -> Result<Shm<T>> {
        Shm::open(&self.name_of(short)?)
    }

    /// [`Shm::open_or_create`] of `prefix.short`.
    ///
    /// # Errors
    ///
    /// As [`Shm::open_or_create`].
    pub fn open_or_create<T: ShmType>(
        &self,
        short: &str,
        init: impl FnOnce() -> T,
    ) -> Result<Shm<T>> {
        Shm::open_or_create(&self.name_of(short)?, init)
    }

    /// [`Shm::open_reader`] of `prefix.short`.
    ///
    /// # Errors
    ///
    /// As [`Shm::open_reader`].
    pub fn open_reader<T: ShmType>(&self, short: &str) -> Result<ShmReader<T>> {
        Shm::open_reader(&self.name_of(short)?)
    }

    /// [`ShmQueue::open_or_create`] of `prefix.short`, created in `mode` if it does not exist;
    /// an existing queue must have that mode ([`Error::QueueModeMismatch`](crate::Error::QueueModeMismatch)
    /// otherwise).
    ///
    /// ```
    /// # use shmstore::{QueueMode, Store};
    /// # let prefix = format!("doc-store-queue-{}", std::process::id());
    /// let app = Store::new(&prefix)?;
    /// let jobs = app.queue::<u64, 256>("jobs", QueueMode::Mpmc)?;
    /// jobs.push(7)?;
    /// assert_eq!(app.queue::<u64, 256>("jobs", QueueMode::Mpmc)?.pop()?, Some(7));
    /// # drop(jobs);
    /// # app.remove_all()?;
    /// # Ok::<(), shmstore::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`ShmQueueOptions::open_or_create`](crate::ShmQueueOptions::open_or_create) with a
    /// `queue_mode`.
    pub fn queue<T: ShmType, const N: usize>(
        &self,
        short: &str,
        mode: QueueMode,
    ) -> Result<ShmQueue<T, N>> {
        ShmQueue::options()
            .queue_mode(mode)
            .open_or_create(&self.name_of(short)?)
    }

    /// The regions of this namespace (those [`shmstore::list`](crate::list) reports whose name
    /// starts with `prefix.`), sorted by name; `RegionInfo::name` is the full name.
    ///
    /// Objects of other names are never opened: what other programs do to them cannot slow
    /// this call down or make it fail.
    ///
    /// # Errors
    ///
    /// As [`shmstore::list`](crate::list).
    pub fn list(&self) -> Result<Vec<RegionInfo>> {
        let mine = format!("{}.", self.prefix);
        list_named(|name| name.starts_with(&mine))
    }

    /// Removes every object named `prefix.…`: regions, and also objects a creator left
    /// unfinished (the namespace belongs to the application). Processes that have them open
    /// keep using them until they drop them. Returns how many names were removed.
    ///
    /// A name that cannot be removed does not stop the others: every removable name is
    /// removed first, then the failure is reported.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the shared-memory directory cannot be read. When some removals fail
    /// for another reason than the name being already gone, the error of the first of them
    /// (often [`Error::PermissionDenied`]: the directory's sticky bit protects other users'
    /// objects), whose `name` lists every name left in place, separated by `, `.
    pub fn remove_all(&self) -> Result<usize> {
        let mine = format!("{}.", self.prefix);
        let names = object::names().map_err(|e| Error::io(&self.prefix, "read /dev/shm", e))?;
        let mut removed = 0;
        let mut left: Vec<&str> = Vec::new();
        let mut first_failure = None;
        for name in names.iter().filter(|n| n.starts_with(&mine)) {
            if validate_name(name).is_err() {
                continue;
            }
            // As `shmstore::unlink`: the region's waiters are woken with `Error::Removed`.
            match crate::region::unlink_named(name) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    left.push(name);
                    first_failure.get_or_insert(e);
                }
            }
        }
        match first_failure {
            None => Ok(removed),
            Some(e) => Err(Error::io(&left.join(", "), "shm_unlink", e)),
        }
    }
}
