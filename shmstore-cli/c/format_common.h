/* ---- Region format v1 and v2 (FORMAT.md) ------------------------- */

#define SHMSTORE_MAGIC "SHMSTORE"
/* The format version of this region's type: 1, or 2 for a type with field kinds. */
#define SHMSTORE_FORMAT_VERSION SHMSTORE_REGION_FORMAT_VERSION
#define SHMSTORE_HEADER_SIZE 256u
#define SHMSTORE_STATE_INITIALISING 1u
#define SHMSTORE_STATE_READY 2u
#define SHMSTORE_FLAG_IN_PLACE (1u << 0)
#define SHMSTORE_FLAG_NOTIFY_READERS (1u << 1)
#define SHMSTORE_KNOWN_FLAGS (SHMSTORE_FLAG_IN_PLACE | SHMSTORE_FLAG_NOTIFY_READERS)
#define SHMSTORE_KIND_VALUE 1u
#define SHMSTORE_KIND_QUEUE 2u
#define SHMSTORE_QUEUE_SPSC 1u
#define SHMSTORE_QUEUE_MPMC 2u
#define SHMSTORE_QUEUE_CONTROL_SIZE 256u
#define SHMSTORE_QUEUE_CLOSED (UINT64_C(1) << 63)
#define SHMSTORE_PAYLOAD_MIN_ALIGN 64u
#define SHMSTORE_MAX_PAYLOAD_ALIGN 4096u
#define SHMSTORE_MAX_DESCRIPTOR_LEN (16u << 20)
#define SHMSTORE_MAX_NAME_LEN 200u
#define SHMSTORE_VERSIONS_ALIGN 8u
#define SHMSTORE_MAX_VERSIONS_LEN (16u << 20)
/* The header's `lifecycle` word (FORMAT.md "Migration"). */
#define SHMSTORE_LIFECYCLE_CURRENT 0u   /* the object its name refers to */
#define SHMSTORE_LIFECYCLE_MIGRATING 1u /* its lock holder is replacing it by a wider type */
#define SHMSTORE_LIFECYCLE_MOVED 2u     /* its name refers to its successor now */

/* Errors of these helpers, beside negated errno values. */
#define SHMSTORE_E_NOT_A_REGION (-1001) /* wrong magic: not a shmstore region */
#define SHMSTORE_E_FORMAT (-1002)       /* another format version or header size */
#define SHMSTORE_E_MUTEX_SIZE (-1003)   /* created by a program with another pthread_mutex_t */
#define SHMSTORE_E_NOT_READY (-1004)    /* still initialising, or its creator died first */
#define SHMSTORE_E_CORRUPT (-1005)      /* inconsistent header fields */
#define SHMSTORE_E_WRONG_KIND (-1006)   /* a queue opened as a value, or the other way round */
#define SHMSTORE_E_WRONG_TYPE (-1007)   /* another type: fingerprint, size or alignment differ */
#define SHMSTORE_E_CAPACITY (-1008)     /* a queue of another capacity */
#define SHMSTORE_E_TIMEOUT (-1009)      /* a read found no consistent copy in time */
#define SHMSTORE_E_OTHER_OWNER (-1010)  /* owned (or, System V, created) by another user */
#define SHMSTORE_E_LEASED (-1011)       /* another process holds a lease on the object */
#define SHMSTORE_E_MOVED (-1012)        /* migrated to a wider type: close, open the name again */

/* The owner check, as the Rust library makes it: a region another user owns is refused,
   because whoever owns it chose its layout and can rewrite or swap it under you. Define
   SHMSTORE_ALLOW_OTHER_OWNER before including this header to accept such regions (the
   library's allow_other_owner(true)), when you trust that user. */

/* The 256-byte header at offset 0. Every field is accessed with __atomic builtins. */
typedef struct shmstore_header {
    uint64_t magic;              /* the bytes "SHMSTORE" */
    uint32_t format_version;
    uint32_t header_size;
    uint32_t state;              /* also a futex word */
    uint32_t flags;
    uint64_t fingerprint;
    uint64_t payload_offset;
    uint64_t payload_size;
    uint64_t payload_align;
    uint64_t region_size;
    uint64_t descriptor_offset;
    uint64_t descriptor_len;
    uint32_t creator_pid;
    uint32_t mutex_size;
    uint8_t boot_id[16];
    uint32_t kind;
    uint32_t queue_mode;
    uint64_t queue_capacity;
    uint64_t queue_element_size;
    uint64_t version;            /* its low-order 32 bits are the futex word */
    uint32_t waiters;
    uint32_t poisoned;
    uint32_t commit_in_progress;
    uint32_t read_requests;
    uint32_t reads_served;
    uint32_t lifecycle;          /* SHMSTORE_LIFECYCLE_*, written under the mutex only */
    uint64_t repair_claim;       /* the pid and PID namespace of a repair by replacement */
    uint64_t help_resumes_at;    /* when writers may hold for starving readers again */
    uint64_t versions_offset;    /* the versions table (FORMAT.md "Versions table"), or 0 */
    uint64_t versions_len;       /* its length in bytes, or 0 */
    union {
        pthread_mutex_t mutex;   /* PROCESS_SHARED, ROBUST, ERRORCHECK */
        uint8_t mutex_bytes[64];
    };
} shmstore_header_t;

_Static_assert(offsetof(shmstore_header_t, magic) == 0, "magic at 0");
_Static_assert(offsetof(shmstore_header_t, format_version) == 8, "format_version at 8");
_Static_assert(offsetof(shmstore_header_t, header_size) == 12, "header_size at 12");
_Static_assert(offsetof(shmstore_header_t, state) == 16, "state at 16");
_Static_assert(offsetof(shmstore_header_t, flags) == 20, "flags at 20");
_Static_assert(offsetof(shmstore_header_t, fingerprint) == 24, "fingerprint at 24");
_Static_assert(offsetof(shmstore_header_t, payload_offset) == 32, "payload_offset at 32");
_Static_assert(offsetof(shmstore_header_t, payload_size) == 40, "payload_size at 40");
_Static_assert(offsetof(shmstore_header_t, payload_align) == 48, "payload_align at 48");
_Static_assert(offsetof(shmstore_header_t, region_size) == 56, "region_size at 56");
_Static_assert(offsetof(shmstore_header_t, descriptor_offset) == 64, "descriptor_offset at 64");
_Static_assert(offsetof(shmstore_header_t, descriptor_len) == 72, "descriptor_len at 72");
_Static_assert(offsetof(shmstore_header_t, creator_pid) == 80, "creator_pid at 80");
_Static_assert(offsetof(shmstore_header_t, mutex_size) == 84, "mutex_size at 84");
_Static_assert(offsetof(shmstore_header_t, boot_id) == 88, "boot_id at 88");
_Static_assert(offsetof(shmstore_header_t, kind) == 104, "kind at 104");
_Static_assert(offsetof(shmstore_header_t, queue_mode) == 108, "queue_mode at 108");
_Static_assert(offsetof(shmstore_header_t, queue_capacity) == 112, "queue_capacity at 112");
_Static_assert(offsetof(shmstore_header_t, queue_element_size) == 120, "queue_element_size at 120");
_Static_assert(offsetof(shmstore_header_t, version) == 128, "version at 128");
_Static_assert(offsetof(shmstore_header_t, waiters) == 136, "waiters at 136");
_Static_assert(offsetof(shmstore_header_t, poisoned) == 140, "poisoned at 140");
_Static_assert(offsetof(shmstore_header_t, commit_in_progress) == 144, "commit_in_progress at 144");
_Static_assert(offsetof(shmstore_header_t, read_requests) == 148, "read_requests at 148");
_Static_assert(offsetof(shmstore_header_t, reads_served) == 152, "reads_served at 152");
_Static_assert(offsetof(shmstore_header_t, lifecycle) == 156, "lifecycle at 156");
_Static_assert(offsetof(shmstore_header_t, repair_claim) == 160, "repair_claim at 160");
_Static_assert(offsetof(shmstore_header_t, help_resumes_at) == 168, "help_resumes_at at 168");
_Static_assert(offsetof(shmstore_header_t, versions_offset) == 176, "versions_offset at 176");
_Static_assert(offsetof(shmstore_header_t, versions_len) == 184, "versions_len at 184");
_Static_assert(offsetof(shmstore_header_t, mutex) == 192, "mutex at 192");
_Static_assert(sizeof(pthread_mutex_t) <= 64, "pthread_mutex_t fits the header's 64 bytes");
_Static_assert(sizeof(shmstore_header_t) == 256, "the header is 256 bytes");

/* An open region. */
typedef struct shmstore_region {
    shmstore_header_t *header;  /* the mapping; it starts with the header */
    size_t map_size;
    unsigned char *working;     /* the payload: the working copy (the only one in place) */
    unsigned char *second;      /* default mode: the second copy; NULL in place and for queues */
    size_t payload_size;
    uint32_t flags;
    int fd;
    int borrowed;               /* set by shmstore_from_base: the caller maps and unmaps */
    int wrote;                  /* set by shmstore_begin_write until shmstore_unlock */
    uint32_t backed_off_for;    /* the read_requests value this handle last backed off for */
    dev_t dev;                  /* shmstore_open: the object opened, to tell whether the */
    ino_t ino;                  /* name still refers to it after a migration */
    char name[SHMSTORE_MAX_NAME_LEN + 2]; /* shmstore_open: "/NAME"; empty from a base */
} shmstore_region_t;

/* What an error code of these helpers means. */
static inline const char *shmstore_strerror(int rc) {
    switch (rc) {
    case 0: return "success";
    case SHMSTORE_E_NOT_A_REGION: return "not a shmstore region (wrong magic)";
    case SHMSTORE_E_FORMAT: return "another shmstore format version or header size";
    case SHMSTORE_E_MUTEX_SIZE: return "created by a program with another sizeof(pthread_mutex_t)";
    case SHMSTORE_E_NOT_READY:
        return "not ready: its creator is initialising it or died before finishing";
    case SHMSTORE_E_CORRUPT: return "corrupt: inconsistent header fields";
    case SHMSTORE_E_WRONG_KIND: return "a queue opened as a value, or a value opened as a queue";
    case SHMSTORE_E_WRONG_TYPE:
        return "holds another type: regenerate this header (shmstore header NAME)";
    case SHMSTORE_E_CAPACITY: return "a queue of another capacity";
    case SHMSTORE_E_TIMEOUT:
        return "no consistent copy in time (an in-place writer died mid-write?)";
    case SHMSTORE_E_OTHER_OWNER:
        return "owned or created by another user: refused unless compiled with "
               "-DSHMSTORE_ALLOW_OTHER_OWNER";
    case SHMSTORE_E_LEASED:
        return "another process holds a lease on the object (fcntl F_SETLEASE), so opening it "
               "would wait for that process: see who owns it (ls -l /dev/shm)";
    case SHMSTORE_E_MOVED:
        return "migrated to a wider type: close it and open the name again; regenerate this "
               "header to see the new fields";
    default: return rc < 0 ? strerror(-rc) : "unknown error";
    }
}

static inline uint64_t shmstore_align_up_(uint64_t n, uint64_t align) {
    return (n + align - 1) & ~(align - 1);
}

/* The futex word: the low-order 32 bits of `version`. */
static inline uint32_t *shmstore_version_word_(shmstore_header_t *hdr) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return (uint32_t *)(void *)&hdr->version;
#else
    return (uint32_t *)(void *)&hdr->version + 1;
#endif
}

static inline void shmstore_close(shmstore_region_t *h) {
    if (h->header != NULL && !h->borrowed) munmap(h->header, h->map_size);
    if (h->fd >= 0) close(h->fd);
    h->header = NULL;
    h->fd = -1;
}

/* The owner check of shmstore_open, for a region file you map yourself: call it on the
   descriptor before mmap. Returns 0, SHMSTORE_E_OTHER_OWNER (its owner is not the effective
   uid) or a negated errno value; always 0 with SHMSTORE_ALLOW_OTHER_OWNER. */
static inline int shmstore_check_owner_fd(int fd) {
#ifdef SHMSTORE_ALLOW_OTHER_OWNER
    (void)fd;
    return 0;
#else
    struct stat st;
    if (fstat(fd, &st) != 0) return -errno;
    return st.st_uid == geteuid() ? 0 : SHMSTORE_E_OTHER_OWNER;
#endif
}

/* The owner check for a System V segment you attach yourself: call it on the shmid before
   shmat. Both the owner and the creator must be the effective uid: IPC_SET lets a creator
   give a segment away, and the creator keeps control of it. Returns 0,
   SHMSTORE_E_OTHER_OWNER or a negated errno value; always 0 with
   SHMSTORE_ALLOW_OTHER_OWNER. */
static inline int shmstore_check_sysv_owner(int shmid) {
#ifdef SHMSTORE_ALLOW_OTHER_OWNER
    (void)shmid;
    return 0;
#else
    struct shmid_ds ds;
    if (shmctl(shmid, IPC_STAT, &ds) != 0) return -errno;
    uid_t me = geteuid();
    return ds.shm_perm.uid == me && ds.shm_perm.cuid == me ? 0 : SHMSTORE_E_OTHER_OWNER;
#endif
}

/* Checks the header in FORMAT.md's order ("Validation on open"). */
static inline int shmstore_validate_(shmstore_region_t *h, uint64_t object_size) {
    shmstore_header_t *hdr = h->header;
    uint64_t magic;
    memcpy(&magic, SHMSTORE_MAGIC, 8);
    if (__atomic_load_n(&hdr->magic, __ATOMIC_RELAXED) != magic) return SHMSTORE_E_NOT_A_REGION;
    if (__atomic_load_n(&hdr->format_version, __ATOMIC_RELAXED) != SHMSTORE_FORMAT_VERSION ||
        __atomic_load_n(&hdr->header_size, __ATOMIC_RELAXED) != SHMSTORE_HEADER_SIZE)
        return SHMSTORE_E_FORMAT;
    if (__atomic_load_n(&hdr->mutex_size, __ATOMIC_RELAXED) != sizeof(pthread_mutex_t))
        return SHMSTORE_E_MUTEX_SIZE;
    /* Acquire: everything the creator wrote before publishing "ready" is visible. */
    if (__atomic_load_n(&hdr->state, __ATOMIC_ACQUIRE) != SHMSTORE_STATE_READY)
        return SHMSTORE_E_NOT_READY;
    uint32_t flags = __atomic_load_n(&hdr->flags, __ATOMIC_RELAXED);
    uint32_t kind = __atomic_load_n(&hdr->kind, __ATOMIC_RELAXED);
    uint64_t payload_size = __atomic_load_n(&hdr->payload_size, __ATOMIC_RELAXED);
    uint64_t align = __atomic_load_n(&hdr->payload_align, __ATOMIC_RELAXED);
    uint64_t descriptor_len = __atomic_load_n(&hdr->descriptor_len, __ATOMIC_RELAXED);
    uint64_t capacity = __atomic_load_n(&hdr->queue_capacity, __ATOMIC_RELAXED);
    uint64_t element_size = __atomic_load_n(&hdr->queue_element_size, __ATOMIC_RELAXED);
    if (flags & ~SHMSTORE_KNOWN_FLAGS) return SHMSTORE_E_CORRUPT;
    if (kind == SHMSTORE_KIND_QUEUE) {
        uint32_t mode = __atomic_load_n(&hdr->queue_mode, __ATOMIC_RELAXED);
        if (flags != 0 || (mode != SHMSTORE_QUEUE_SPSC && mode != SHMSTORE_QUEUE_MPMC) ||
            capacity == 0 || element_size == 0)
            return SHMSTORE_E_CORRUPT;
    } else if (kind != SHMSTORE_KIND_VALUE) {
        return SHMSTORE_E_CORRUPT;
    }
    if (__atomic_load_n(&hdr->descriptor_offset, __ATOMIC_RELAXED) != SHMSTORE_HEADER_SIZE ||
        descriptor_len > SHMSTORE_MAX_DESCRIPTOR_LEN)
        return SHMSTORE_E_CORRUPT;
    /* A migrated region's versions table: right after the descriptor, or none (0 and 0). */
    uint64_t versions_offset = __atomic_load_n(&hdr->versions_offset, __ATOMIC_RELAXED);
    uint64_t versions_len = __atomic_load_n(&hdr->versions_len, __ATOMIC_RELAXED);
    uint64_t descriptor_end = SHMSTORE_HEADER_SIZE + descriptor_len;
    if (versions_offset != 0 || versions_len != 0) {
        if (versions_offset != shmstore_align_up_(descriptor_end, SHMSTORE_VERSIONS_ALIGN) ||
            versions_len == 0 || versions_len > SHMSTORE_MAX_VERSIONS_LEN)
            return SHMSTORE_E_CORRUPT;
        descriptor_end = versions_offset + versions_len;
    }
    if (align == 0 || (align & (align - 1)) != 0 || align > SHMSTORE_MAX_PAYLOAD_ALIGN)
        return SHMSTORE_E_CORRUPT;
    /* The layout, recomputed ("Payload"); payload_size is bounded by the object size first,
       so that nothing below overflows. */
    if (payload_size > object_size) return SHMSTORE_E_CORRUPT;
    uint64_t copy_align = align > SHMSTORE_PAYLOAD_MIN_ALIGN ? align : SHMSTORE_PAYLOAD_MIN_ALIGN;
    uint64_t payload_offset = shmstore_align_up_(descriptor_end, copy_align);
    int single = (flags & SHMSTORE_FLAG_IN_PLACE) || kind == SHMSTORE_KIND_QUEUE;
    uint64_t first_end = payload_offset + payload_size;
    uint64_t second = single ? 0 : shmstore_align_up_(first_end, copy_align);
    uint64_t region_size = single ? first_end : second + payload_size;
    if (kind == SHMSTORE_KIND_QUEUE) {
        uint64_t slots = align > SHMSTORE_QUEUE_CONTROL_SIZE ? align : SHMSTORE_QUEUE_CONTROL_SIZE;
        if (element_size > payload_size || capacity > payload_size / element_size ||
            payload_size != slots + capacity * element_size)
            return SHMSTORE_E_CORRUPT;
    }
    if (__atomic_load_n(&hdr->payload_offset, __ATOMIC_RELAXED) != payload_offset ||
        __atomic_load_n(&hdr->region_size, __ATOMIC_RELAXED) != region_size)
        return SHMSTORE_E_CORRUPT;
    if (object_size < region_size) return SHMSTORE_E_CORRUPT;
    if (kind != SHMSTORE_REGION_KIND) return SHMSTORE_E_WRONG_KIND;
    uint64_t type_size = kind == SHMSTORE_KIND_QUEUE ? element_size : payload_size;
    if (__atomic_load_n(&hdr->fingerprint, __ATOMIC_RELAXED) != SHMSTORE_FINGERPRINT ||
        type_size != SHMSTORE_TYPE_SIZE || align != SHMSTORE_TYPE_ALIGN)
        return SHMSTORE_E_WRONG_TYPE;
#ifdef SHMSTORE_QUEUE_CAPACITY
    if (capacity != SHMSTORE_QUEUE_CAPACITY) return SHMSTORE_E_CAPACITY;
#endif
    h->working = (unsigned char *)hdr + payload_offset;
    h->second = single ? NULL : (unsigned char *)hdr + second;
    h->payload_size = (size_t)payload_size;
    h->flags = flags;
    return 0;
}

/* Opens the region `name` (without the leading '/') read-write and validates it against this
   header's type; refuses a region another user owns (SHMSTORE_E_OTHER_OWNER, unless
   SHMSTORE_ALLOW_OTHER_OWNER). Returns 0, a negated errno value (-ENOENT: no such region) or
   a SHMSTORE_E_* code; shmstore_strerror says which. The handle keeps the name, so that
   shmstore_lock and shmstore_read can tell when a migration replaced the region under it
   (SHMSTORE_E_MOVED). */
static inline int shmstore_open(const char *name, shmstore_region_t *h) {
    char path[SHMSTORE_MAX_NAME_LEN + 2];
    size_t len = name != NULL ? strlen(name) : 0;
    memset(h, 0, sizeof *h);
    h->fd = -1;
    if (len == 0 || len > SHMSTORE_MAX_NAME_LEN || strchr(name, '/') != NULL) return -EINVAL;
    path[0] = '/';
    memcpy(path + 1, name, len + 1);
    /* Never blocking, never following a symbolic link: whoever can create the name (another
       user, before the region exists) could otherwise make this open wait, with a FIFO in its
       place or a write lease (F_SETLEASE) held on the object for lease-break-time (45 s). */
    int fd = shm_open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW, 0);
    if (fd < 0) return errno == EWOULDBLOCK ? SHMSTORE_E_LEASED : -errno;
    struct stat st;
    /* The size first: mapping past the end of the object would raise SIGBUS on access. */
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    /* What was opened, not what the name held a moment earlier: only a regular file. */
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return SHMSTORE_E_NOT_A_REGION;
    }
#ifndef SHMSTORE_ALLOW_OTHER_OWNER
    if (st.st_uid != geteuid()) {
        close(fd);
        return SHMSTORE_E_OTHER_OWNER;
    }
#endif
    if (st.st_size < (off_t)SHMSTORE_HEADER_SIZE) {
        close(fd);
        return st.st_size == 0 ? SHMSTORE_E_NOT_READY : SHMSTORE_E_NOT_A_REGION;
    }
    void *base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        int e = errno;
        close(fd);
        return -e;
    }
    h->header = (shmstore_header_t *)base;
    h->map_size = (size_t)st.st_size;
    h->fd = fd;
    h->dev = st.st_dev;
    h->ino = st.st_ino;
    memcpy(h->name, path, len + 2);
    int rc = shmstore_validate_(h, (uint64_t)st.st_size);
    if (rc != 0) shmstore_close(h);
    return rc;
}

/* Uses a region the caller mapped itself: a System V segment attached with shmat (the region
   starts at the attach address), or a region file mapped with mmap (MAP_SHARED): check its
   owner first, as shmstore_open does, with shmstore_check_sysv_owner (the shmid) or
   shmstore_check_owner_fd (the file's descriptor). `size` is the
   length of the mapping: the segment's shm_segsz (shmctl IPC_STAT) or the file's size; nothing
   beyond it is touched. Validates it against this header's type as shmstore_open does, and
   returns 0, -EINVAL (a base not aligned to the payload's alignment) or a SHMSTORE_E_* code.
   shmstore_close leaves the mapping alone: detach or unmap it yourself afterwards (shmdt,
   munmap). A read-only mapping (SHM_RDONLY, PROT_READ) serves shmstore_read and
   shmstore_version, which never write. Without a name, the helpers take the header's word
   for a migration: shmstore_lock and shmstore_read return SHMSTORE_E_MOVED once its
   `lifecycle` is MIGRATING or MOVED (a file region replaced by one of a wider type: map the
   file again; a System V segment never migrates). */
static inline int shmstore_from_base(void *base, size_t size, shmstore_region_t *h) {
    memset(h, 0, sizeof *h);
    h->fd = -1;
    uintptr_t align = SHMSTORE_TYPE_ALIGN > SHMSTORE_PAYLOAD_MIN_ALIGN ? SHMSTORE_TYPE_ALIGN
                                                                       : SHMSTORE_PAYLOAD_MIN_ALIGN;
    if (base == NULL || (uintptr_t)base % align != 0) return -EINVAL;
    if (size < SHMSTORE_HEADER_SIZE)
        return size == 0 ? SHMSTORE_E_NOT_READY : SHMSTORE_E_NOT_A_REGION;
    h->header = (shmstore_header_t *)base;
    h->map_size = size;
    h->borrowed = 1;
    int rc = shmstore_validate_(h, (uint64_t)size);
    if (rc != 0) shmstore_close(h);
    return rc;
}

/* Wakes every futex sleeper on the version, in every process, if any is registered or the
   region notifies read-only handles. Follows a full barrier after the version store.
   `waiters` is a count word (FORMAT.md, "Sleeper counts"): bits 0..15 count the registered
   sleepers, bits 16..31 are a generation that publishers of the Rust library move when they
   clear the count of sleepers that died. This program never clears it (it only keeps waking
   for a dead sleeper's count, which is allowed). */
static inline void shmstore_wake_if_waited_(shmstore_region_t *h) {
    shmstore_header_t *hdr = h->header;
    if ((__atomic_load_n(&hdr->waiters, __ATOMIC_SEQ_CST) & 0xffffu) != 0 ||
        (h->flags & SHMSTORE_FLAG_NOTIFY_READERS) != 0)
        syscall(SYS_futex, shmstore_version_word_(hdr), FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* Publishes a new even version while holding the lock (the repair paths). */
static inline void shmstore_publish_(shmstore_region_t *h, uint64_t version) {
    __atomic_exchange_n(&h->header->version, version, __ATOMIC_SEQ_CST);
    shmstore_wake_if_waited_(h);
}

static inline uint64_t shmstore_nanos_(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The published version, as the Rust API and the shmstore command count it: the commits since
   the region was created (0 for a value never written). The raw word steps by two per commit,
   odd while a write is under way (FORMAT.md): this is half of it, rounded down. */
static inline uint64_t shmstore_version(shmstore_region_t *h) {
    return __atomic_load_n(&h->header->version, __ATOMIC_ACQUIRE) >> 1;
}

