/* ---- The lock protocol (FORMAT.md "Reading and writing from another language") ---- */

/* Finishes or undoes what a holder that died (or that left the version odd) left. */
static inline void shmstore_repair_(shmstore_region_t *h) {
    shmstore_header_t *hdr = h->header;
    uint32_t committing = __atomic_load_n(&hdr->commit_in_progress, __ATOMIC_RELAXED);
    uint64_t version = __atomic_load_n(&hdr->version, __ATOMIC_RELAXED);
    if (!committing && (version & 1) == 0) return;
    if (h->second == NULL) {
        /* In place: the holder died mid-write. Poison, then publish so that readers stop
           waiting for an even version. */
        __atomic_store_n(&hdr->poisoned, 1, __ATOMIC_RELEASE);
        shmstore_publish_(h, version + 1);
    } else if (committing) {
        /* The working copy was complete when the commit began: finish the commit. */
        if (version & 1) shmstore_publish_(h, version + 1);
        __atomic_thread_fence(__ATOMIC_RELEASE);
        memcpy(h->second, h->working, h->payload_size);
        __atomic_store_n(&hdr->commit_in_progress, 0, __ATOMIC_RELEASE);
    } else {
        /* Roll back: the second copy is untouched while the version is odd. */
        memcpy(h->working, h->second, h->payload_size);
        shmstore_publish_(h, version + 1);
    }
}

/* A reader that keeps losing to back-to-back writers asked for help: wait (at most 10 us,
   once per request) before locking. */
static inline void shmstore_yield_to_starving_reader_(shmstore_region_t *h) {
    shmstore_header_t *hdr = h->header;
    uint32_t requests = __atomic_load_n(&hdr->read_requests, __ATOMIC_RELAXED);
    if (requests == __atomic_load_n(&hdr->reads_served, __ATOMIC_RELAXED) ||
        requests == h->backed_off_for)
        return;
    h->backed_off_for = requests;
    uint64_t start = shmstore_nanos_();
    while (__atomic_load_n(&hdr->reads_served, __ATOMIC_ACQUIRE) !=
           __atomic_load_n(&hdr->read_requests, __ATOMIC_RELAXED)) {
        if (shmstore_nanos_() - start >= 10000) return;
    }
}

/* ---- Migration (FORMAT.md "Migration", "Reading and writing from another language") ---- */

/* Whether the name this handle was opened by (shmstore_open) still refers to its object: 1
   yes, 0 no (the name was removed, or refers to another object: after a migration, the
   region's successor), or a negated errno value when it cannot be told. Opened as
   shmstore_open opens, never blocking and never following a symbolic link. */
static inline int shmstore_name_is_ours_(shmstore_region_t *h) {
    int fd = shm_open(h->name, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW, 0);
    if (fd < 0) return errno == ENOENT ? 0 : -errno;
    struct stat st;
    int ours = fstat(fd, &st) != 0 ? -errno : st.st_dev == h->dev && st.st_ino == h->ino;
    close(fd);
    return ours;
}

/* Removes the name a migrator of this region that died may have left its new object under,
   "/.NAME.shmstore-migrating-INO" (INO: this object's inode number). Only the lock holder
   migrates, so the caller, holding the lock, knows no migrator is using it. */
static inline void shmstore_remove_temporary_name_(shmstore_region_t *h) {
    static const char middle[] = ".shmstore-migrating-";
    char digits[24];
    size_t n = 0;
    uint64_t ino = (uint64_t)h->ino;
    do {
        digits[n++] = (char)('0' + ino % 10);
        ino /= 10;
    } while (ino != 0);
    char path[2 + SHMSTORE_MAX_NAME_LEN + sizeof middle + sizeof digits];
    size_t len = strlen(h->name + 1);
    path[0] = '/';
    path[1] = '.';
    memcpy(path + 2, h->name + 1, len);
    memcpy(path + 2 + len, middle, sizeof middle - 1);
    len += 2 + sizeof middle - 1;
    while (n > 0) path[len++] = digits[--n];
    path[len] = '\0';
    shm_unlink(path);
}

/* Whether the region moved: a migration replaced it under its name by a region of a wider
   type, which holds every write committed here. `lifecycle` MOVED unless the name still
   refers to this object (a peer's stray 2, or an old object put back: reopening would find
   this object again), or when the name cannot be looked at; MIGRATING (a migrator at work,
   or one that died), or a value of no state, while the name refers to another object. One
   load while the region is current; writes nothing, so it serves read-only mappings. A
   region without a name (shmstore_from_base) moved when `lifecycle` is MIGRATING or MOVED.
   Then close the handle and open the name (or map the file) again. */
static inline int shmstore_has_moved(shmstore_region_t *h) {
    uint32_t lifecycle = __atomic_load_n(&h->header->lifecycle, __ATOMIC_ACQUIRE);
    if (lifecycle == SHMSTORE_LIFECYCLE_CURRENT) return 0;
    if (h->name[0] == '\0')
        return lifecycle == SHMSTORE_LIFECYCLE_MIGRATING || lifecycle == SHMSTORE_LIFECYCLE_MOVED;
    if (lifecycle == SHMSTORE_LIFECYCLE_MOVED) return shmstore_name_is_ours_(h) != 1;
    return shmstore_name_is_ours_(h) == 0;
}

/* Under the lock, after the repair: whether the region moved (SHMSTORE_E_MOVED) or is this
   locker's to use (0). No migrator is at work while we hold the lock, so a `lifecycle` other
   than CURRENT was left by one that died (or by a handle that recorded its move, or a stray
   write): the temporary name it may have left is removed. MIGRATING becomes MOVED (its
   sleepers woken, to follow) if the name refers to another object (its rename happened, or
   the name was removed), CURRENT if the name still refers to this object, and is left as it
   is when the name cannot be looked at. MOVED becomes CURRENT too if the name still refers
   to this object (a peer's stray 2: no migration put another object there). Any other value
   is no state: the name decides. */
static inline int shmstore_settle_lifecycle_(shmstore_region_t *h) {
    shmstore_header_t *hdr = h->header;
    uint32_t lifecycle = __atomic_load_n(&hdr->lifecycle, __ATOMIC_ACQUIRE);
    if (lifecycle == SHMSTORE_LIFECYCLE_CURRENT) return 0;
    if (h->name[0] == '\0')
        return lifecycle == SHMSTORE_LIFECYCLE_MIGRATING || lifecycle == SHMSTORE_LIFECYCLE_MOVED
                   ? SHMSTORE_E_MOVED
                   : 0;
    shmstore_remove_temporary_name_(h);
    int ours = shmstore_name_is_ours_(h);
    if (lifecycle == SHMSTORE_LIFECYCLE_MOVED) {
        if (ours != 1) return SHMSTORE_E_MOVED;
        __atomic_store_n(&hdr->lifecycle, SHMSTORE_LIFECYCLE_CURRENT, __ATOMIC_RELEASE);
        return 0;
    }
    if (lifecycle != SHMSTORE_LIFECYCLE_MIGRATING) return ours == 0 ? SHMSTORE_E_MOVED : 0;
    if (ours == 0) {
        __atomic_store_n(&hdr->lifecycle, SHMSTORE_LIFECYCLE_MOVED, __ATOMIC_SEQ_CST);
        syscall(SYS_futex, shmstore_version_word_(hdr), FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
        return SHMSTORE_E_MOVED;
    }
    if (ours == 1) __atomic_store_n(&hdr->lifecycle, SHMSTORE_LIFECYCLE_CURRENT, __ATOMIC_RELEASE);
    return 0;
}

/* Locks the region. After a holder that died (EOWNERDEAD) it makes the mutex consistent and
   repairs: rolls back or finishes the commit in the default mode, poisons in place.
   Returns 1 if the region is poisoned (in place only), 0 if not, a negated errno value if the
   lock failed, or SHMSTORE_E_MOVED, unlocked, if the region moved (shmstore_has_moved): a
   migration replaced it by a region of a wider type, and a write here would be lost for
   everyone who opens the name. Open it again, and go on there:

       int rc = shmstore_lock(&h);
       if (rc == SHMSTORE_E_MOVED) {
           shmstore_close(&h);
           rc = shmstore_open(name, &h);   // SHMSTORE_E_WRONG_TYPE: regenerate this header
           if (rc == 0) rc = shmstore_lock(&h);
       }

   The migrated region holds another type (a new fingerprint): a program compiled with this
   header gets SHMSTORE_E_WRONG_TYPE for it, and needs the header `shmstore header NAME`
   writes for the region now. */
static inline int shmstore_lock(shmstore_region_t *h) {
    shmstore_header_t *hdr = h->header;
    shmstore_yield_to_starving_reader_(h);
    int rc = pthread_mutex_lock(&hdr->mutex);
    if (rc == EOWNERDEAD) {
        /* First, so that a death during the repair leaves the mutex robust for the next
           locker, who redoes the idempotent repair. */
        pthread_mutex_consistent(&hdr->mutex);
    } else if (rc == ENOTRECOVERABLE) {
        /* A process unlocked it after its owner died without marking it consistent. glibc's
           lock took the word and freed it again without waking the next sleeper when others
           wait (its lll_unlock wakes only for a word > 1 as an int, and FUTEX_WAITERS makes
           it negative): wake them all, so that each gets this answer instead of sleeping on.
           The futex word is the mutex's first field, `__lock`. */
        syscall(SYS_futex, (uint32_t *)(void *)&hdr->mutex, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
        return -rc;
    } else if (rc != 0) {
        return -rc;
    }
    h->wrote = 0;
    shmstore_repair_(h);
    int moved = shmstore_settle_lifecycle_(h);
    if (moved != 0) {
        pthread_mutex_unlock(&hdr->mutex);
        return moved;
    }
    return (h->flags & SHMSTORE_FLAG_IN_PLACE) &&
           __atomic_load_n(&hdr->poisoned, __ATOMIC_ACQUIRE) != 0;
}

/* Call while holding the lock, before writing the payload: makes the version odd, so that
   readers use the untouched second copy (default mode) or wait (in place). */
static inline void shmstore_begin_write(shmstore_region_t *h) {
    if (h->wrote) return;
    uint64_t version = __atomic_load_n(&h->header->version, __ATOMIC_RELAXED);
    __atomic_store_n(&h->header->version, version + 1, __ATOMIC_RELEASE);
    /* Orders the odd version before the payload writes that follow. */
    __atomic_thread_fence(__ATOMIC_RELEASE);
    h->wrote = 1;
}

/* The working copy: write it only between shmstore_begin_write and shmstore_unlock. */
static inline shmstore_payload_t *shmstore_payload(shmstore_region_t *h) {
    return (shmstore_payload_t *)(void *)h->working;
}

/* Commits what was written since shmstore_begin_write and unlocks. Default mode: set
   commit_in_progress, publish version + 1 (even), copy the working copy over the second,
   clear the flag. In place: publish. Then wake sleepers if any. Returns 0 or a negated errno
   value. */
static inline int shmstore_unlock(shmstore_region_t *h) {
    shmstore_header_t *hdr = h->header;
    int wrote = h->wrote;
    h->wrote = 0;
    if (wrote) {
        uint64_t odd = __atomic_load_n(&hdr->version, __ATOMIC_RELAXED);
        if (h->second == NULL) {
            __atomic_store_n(&hdr->version, odd + 1, __ATOMIC_RELEASE);
        } else {
            __atomic_store_n(&hdr->commit_in_progress, 1, __ATOMIC_RELAXED);
            __atomic_store_n(&hdr->version, odd + 1, __ATOMIC_RELEASE);
            __atomic_thread_fence(__ATOMIC_RELEASE);
            memcpy(h->second, h->working, h->payload_size);
            __atomic_store_n(&hdr->commit_in_progress, 0, __ATOMIC_RELEASE);
        }
    }
    int rc = pthread_mutex_unlock(&hdr->mutex);
    if (wrote) {
        /* The wake follows the unlock, as in the Rust library, so that its system call does not
           delay the next locker; the full fence orders the version store before the load of
           `waiters` (a waiter registers, then re-reads the version). */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        shmstore_wake_if_waited_(h);
    }
    return rc == 0 ? 0 : -rc;
}

/* Copies with relaxed atomic loads: a writer may be storing into the bytes (the version check
   then throws the copy away), and a plain memcpy racing with it would be a data race. */
static inline void shmstore_copy_relaxed_(unsigned char *out, const unsigned char *from, size_t n) {
    size_t i = 0;
    if (((uintptr_t)from % 8) == 0) {
        for (; i + 8 <= n; i += 8) {
            uint64_t word =
                __atomic_load_n((const uint64_t *)(const void *)(from + i), __ATOMIC_RELAXED);
            memcpy(out + i, &word, 8);
        }
    }
    for (; i < n; i++) out[i] = __atomic_load_n(from + i, __ATOMIC_RELAXED);
}

/* A consistent snapshot of the value into `out`, without the lock (a seqlock read): load the
   version, copy the working copy if it is even or the second copy if it is odd (in place: wait
   while odd), and retry if the version moved. Returns 0, SHMSTORE_E_TIMEOUT after a second
   without a consistent copy (an in-place writer that died mid-write stays odd until the next
   locker repairs the region), or SHMSTORE_E_MOVED when the region moved (shmstore_has_moved):
   `out` then holds its last value, consistent, which nobody changes any more; open the name
   again for the value now (see shmstore_lock). */
static inline int shmstore_read(shmstore_region_t *h, shmstore_payload_t *out) {
    shmstore_header_t *hdr = h->header;
    uint64_t deadline = shmstore_nanos_() + 1000000000u;
    for (unsigned attempt = 0;; attempt++) {
        uint64_t before = __atomic_load_n(&hdr->version, __ATOMIC_ACQUIRE);
        const unsigned char *from = (before & 1) == 0 ? h->working : h->second;
        if (from != NULL) {
            /* sizeof *out, a constant equal to payload_size (checked at open): the copy
               unrolls, and the compiler sees it stays inside `out`. */
            shmstore_copy_relaxed_((unsigned char *)(void *)out, from, sizeof *out);
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            if (__atomic_load_n(&hdr->version, __ATOMIC_RELAXED) == before)
                return shmstore_has_moved(h) ? SHMSTORE_E_MOVED : 0;
        }
        if (attempt >= 64) {
            if (shmstore_nanos_() > deadline) return SHMSTORE_E_TIMEOUT;
            struct timespec pause = {0, 50000};
            nanosleep(&pause, NULL);
        }
    }
}
