/* The generated header's owner checks, as a program that uses them sees them.
 *
 * Usage: check_owner posix NAME   (shmstore_open)
 *        check_owner sysv KEY     (shmstore_check_sysv_owner on the segment's shmid)
 * Prints "ok" or shmstore_strerror's text.
 */
#include "region.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    int rc;
    if (strcmp(argv[1], "posix") == 0) {
        shmstore_region_t region;
        rc = shmstore_open(argv[2], &region);
        if (rc == 0) shmstore_close(&region);
    } else {
        int id = shmget((key_t)strtoul(argv[2], NULL, 0), 0, 0);
        if (id < 0) {
            perror("shmget");
            return 1;
        }
        rc = shmstore_check_sysv_owner(id);
    }
    printf("%s\n", rc == 0 ? "ok" : shmstore_strerror(rc));
    return 0;
}
