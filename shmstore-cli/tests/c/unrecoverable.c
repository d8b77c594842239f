/* Two roles around a region whose mutex becomes unrecoverable.
 *
 * Usage: unrecoverable hold NAME
 *          locks the header's mutex with pthread_mutex_lock and prints `locked ANSWER`, waits for
 *          a line on stdin, then unlocks it WITHOUT pthread_mutex_consistent (after an
 *          `owner-died` lock, glibc then marks the mutex unrecoverable) and prints
 *          `unlocked ANSWER`.
 *        unrecoverable lock NAME
 *          prints `locking`, then `shmstore_lock`'s answer: `rc ANSWER`. Killed by SIGALRM after
 *          20 s if the lock hangs.
 *
 * ANSWER: `ok`, `owner-died`, `not-recoverable`, `poisoned`, or the error number.
 */
#include "region.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void say(const char *what, int rc) {
    if (rc == 0) printf("%s ok\n", what);
    else if (rc == EOWNERDEAD) printf("%s owner-died\n", what);
    else if (rc == ENOTRECOVERABLE) printf("%s not-recoverable\n", what);
    else printf("%s %d\n", what, rc);
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s hold|lock NAME\n", argv[0]);
        return 2;
    }
    shmstore_region_t region;
    int rc = shmstore_open(argv[2], &region);
    if (rc != 0) {
        fprintf(stderr, "shmstore_open(%s): %s\n", argv[2], shmstore_strerror(rc));
        return 1;
    }
    if (strcmp(argv[1], "hold") == 0) {
        say("locked", pthread_mutex_lock(&region.header->mutex));
        char line[64];
        if (fgets(line, sizeof line, stdin) == NULL) return 1;
        say("unlocked", pthread_mutex_unlock(&region.header->mutex));
        return 0;
    }
    if (strcmp(argv[1], "lock") == 0) {
        printf("locking\n");
        fflush(stdout);
        alarm(20);
        rc = shmstore_lock(&region);
        if (rc == 1) {
            printf("rc poisoned\n");
            fflush(stdout);
        } else {
            say("rc", -rc);
        }
        if (rc >= 0) shmstore_unlock(&region);
        return 0;
    }
    fprintf(stderr, "usage: %s hold|lock NAME\n", argv[0]);
    return 2;
}
