/* What a user who squats a region's name can do to its openers: as uid 65534, creates the
 * POSIX object NAME (mode 0666, 4096 bytes) and takes a write lease on it (F_SETLEASE
 * F_WRLCK), which makes every other open of it wait until the holder releases the lease or
 * lease-break-time (45 s by default) runs out, unless the open is O_NONBLOCK. The holder
 * ignores SIGIO, the signal that asks it to release the lease, and never releases it.
 *
 * Usage (as root): hold_lease NAME. Prints "ready" once it holds the lease and exits when
 * stdin closes. Exit code 0, or 1 with a message on stderr.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(const char *what) {
    perror(what);
    return 1;
}

int main(int argc, char **argv) {
    char path[256];
    char buf[64];
    if (argc != 2 || snprintf(path, sizeof path, "/%s", argv[1]) >= (int)sizeof path) {
        fprintf(stderr, "usage: hold_lease NAME\n");
        return 1;
    }
    if (signal(SIGIO, SIG_IGN) == SIG_ERR) return fail("signal");
    if (setgid(65534) != 0) return fail("setgid");
    if (setuid(65534) != 0) return fail("setuid");
    umask(0);
    int fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL, 0666);
    if (fd < 0) return fail("shm_open");
    if (ftruncate(fd, 4096) != 0) return fail("ftruncate");
    if (fcntl(fd, F_SETLEASE, F_WRLCK) != 0) return fail("fcntl(F_SETLEASE)");
    printf("ready\n");
    fflush(stdout);
    while (read(STDIN_FILENO, buf, sizeof buf) > 0) {
    }
    return 0;
}
