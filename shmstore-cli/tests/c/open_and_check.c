/* Opens a region through the header `shmstore header` generated for it (validating magic,
 * format, kind, fingerprint and sizes), reads it, and says what it found.
 *
 * Usage: open_and_check [NAME]   (default: the region the header was generated from)
 */
#include "region.h"

#include <stdio.h>

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : SHMSTORE_REGION_NAME;
    shmstore_region_t region;
    int rc = shmstore_open(name, &region);
    if (rc != 0) {
        fprintf(stderr, "shmstore_open(%s): %s\n", name, shmstore_strerror(rc));
        return 1;
    }
#ifdef SHMSTORE_QUEUE_CAPACITY
    int closed = 0;
    uint64_t len = shmstore_queue_len(&region, &closed);
    printf("queue of %s: %llu of %llu queued%s\n", SHMSTORE_TYPE_NAME, (unsigned long long)len,
           (unsigned long long)SHMSTORE_QUEUE_CAPACITY, closed ? ", closed" : "");
#else
    shmstore_payload_t value;
    rc = shmstore_read(&region, &value);
    if (rc != 0) {
        fprintf(stderr, "shmstore_read: %s\n", shmstore_strerror(rc));
        return 1;
    }
    printf("value of %s at version %llu\n", SHMSTORE_TYPE_NAME,
           (unsigned long long)shmstore_version(&region));
#endif
    shmstore_close(&region);
    return 0;
}
