/* ---- Queues (FORMAT.md "Queues") -------------------------------- */

/* The control block at the start of the payload. */
typedef struct shmstore_queue_control {
    uint64_t tail;               /* bits 0..62: elements ever pushed; bit 63: closed */
    uint32_t producer_pid;
    uint8_t _pad0[52];
    uint64_t head;               /* elements ever popped */
    uint32_t consumer_pid;
    uint8_t _pad1[52];
    uint32_t not_empty_epoch;
    uint32_t not_empty_sleepers;
    uint8_t _pad2[56];
    uint32_t not_full_epoch;
    uint32_t not_full_sleepers;
    uint8_t _pad3[56];
} shmstore_queue_control_t;

_Static_assert(offsetof(shmstore_queue_control_t, tail) == 0, "tail at 0");
_Static_assert(offsetof(shmstore_queue_control_t, producer_pid) == 8, "producer_pid at 8");
_Static_assert(offsetof(shmstore_queue_control_t, head) == 64, "head at 64");
_Static_assert(offsetof(shmstore_queue_control_t, consumer_pid) == 72, "consumer_pid at 72");
_Static_assert(offsetof(shmstore_queue_control_t, not_empty_epoch) == 128,
               "not_empty_epoch at 128");
_Static_assert(offsetof(shmstore_queue_control_t, not_empty_sleepers) == 132,
               "not_empty_sleepers at 132");
_Static_assert(offsetof(shmstore_queue_control_t, not_full_epoch) == 192, "not_full_epoch at 192");
_Static_assert(offsetof(shmstore_queue_control_t, not_full_sleepers) == 196,
               "not_full_sleepers at 196");
_Static_assert(sizeof(shmstore_queue_control_t) == SHMSTORE_QUEUE_CONTROL_SIZE,
               "the control block is 256 bytes");

static inline shmstore_queue_control_t *shmstore_queue_control(shmstore_region_t *h) {
    return (shmstore_queue_control_t *)(void *)h->working;
}

/* The slot of element number `i` (counting from 0 since creation). Push and pop follow
   FORMAT.md "Queues": the SPSC roles (fcntl F_OFD_SETLK on bytes 0 and 1) or, in MPMC mode,
   the header's mutex around each step. */
static inline shmstore_element_t *shmstore_queue_slot(shmstore_region_t *h, uint64_t i) {
    return (shmstore_element_t *)(void *)(h->working + SHMSTORE_QUEUE_SLOTS_OFFSET +
                                          (i % SHMSTORE_QUEUE_CAPACITY) * SHMSTORE_TYPE_SIZE);
}

/* How many elements the queue holds now, and whether it is closed. */
static inline uint64_t shmstore_queue_len(shmstore_region_t *h, int *closed) {
    shmstore_queue_control_t *c = shmstore_queue_control(h);
    uint64_t head = __atomic_load_n(&c->head, __ATOMIC_SEQ_CST);
    uint64_t tail = __atomic_load_n(&c->tail, __ATOMIC_SEQ_CST);
    if (closed != NULL) *closed = (tail & SHMSTORE_QUEUE_CLOSED) != 0;
    tail &= ~SHMSTORE_QUEUE_CLOSED;
    return tail >= head ? tail - head : 0;
}
