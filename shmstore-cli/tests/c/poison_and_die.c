/* Opens an in-place region of the tests' `Sample` type, locks it, begins a write, writes one
 * field and kills itself with SIGKILL while holding the lock: the next locker finds the
 * robust mutex's owner dead and the version odd, and must poison the region.
 *
 * Usage: poison_and_die NAME
 */
#include "region.h"

#include <signal.h>
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
    if ((region.flags & SHMSTORE_FLAG_IN_PLACE) == 0) {
        fprintf(stderr, "%s is not an in-place region\n", argv[1]);
        return 1;
    }
    rc = shmstore_lock(&region);
    if (rc != 0) {
        fprintf(stderr, "shmstore_lock: %s\n", rc < 0 ? shmstore_strerror(rc) : "poisoned");
        return 1;
    }
    shmstore_begin_write(&region);
    shmstore_payload(&region)->counter = 99; /* half a write: `tail` is never written */
    printf("locked and wrote counter; dying\n");
    fflush(stdout);
    raise(SIGKILL);
    return 1; /* not reached */
}
