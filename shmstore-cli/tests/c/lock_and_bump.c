/* Opens a region of the tests' `Sample` type through the header that `shmstore header`
 * generated, checks a lock-free snapshot, then locks, writes three fields (one of them in an
 * array of structs) and commits. The Rust test then sees the change and a newer version.
 *
 * Usage: lock_and_bump NAME
 */
#include "region.h" /* first: it sets up the POSIX 2008 declarations it needs */

#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s NAME\n", argv[0]);
        return 2;
    }
    shmstore_region_t region;
    int rc = shmstore_open(argv[1], &region);
    if (rc != 0) {
        fprintf(stderr, "shmstore_open(%s): %s\n", argv[1], shmstore_strerror(rc));
        return 1;
    }

    Sample before;
    rc = shmstore_read(&region, &before);
    if (rc != 0) {
        fprintf(stderr, "shmstore_read: %s\n", shmstore_strerror(rc));
        return 1;
    }
    uint64_t version = shmstore_version(&region);

    rc = shmstore_lock(&region);
    if (rc < 0) {
        fprintf(stderr, "shmstore_lock: %s\n", shmstore_strerror(rc));
        return 1;
    }
    if (rc == 1) {
        fprintf(stderr, "the region is poisoned\n");
        shmstore_unlock(&region);
        return 1;
    }
    shmstore_begin_write(&region);
    Sample *value = shmstore_payload(&region);
    value->counter = before.counter + 1;
    value->pos.y = 2.5f;
    value->wheels[1].rpm = 1234;
    rc = shmstore_unlock(&region);
    if (rc != 0) {
        fprintf(stderr, "shmstore_unlock: %s\n", shmstore_strerror(rc));
        return 1;
    }

    Sample after;
    if (shmstore_read(&region, &after) != 0) return 1;
    printf("counter %llu -> %llu, version %llu -> %llu\n", (unsigned long long)before.counter,
           (unsigned long long)after.counter, (unsigned long long)version,
           (unsigned long long)shmstore_version(&region));
    shmstore_close(&region);
    return after.counter == before.counter + 1 ? 0 : 1;
}
