/* Holds a region the way its creator does, for gc's tests: makes an unnamed object
 * (O_TMPFILE) in TARGET's directory, fills it with the bytes of the region SOURCE, and links
 * it to TARGET, as the library's creators do. What the kernel then shows for it in
 * /proc/PID/maps and /proc/PID/fd is `DIR/#INODE (deleted)`, never TARGET.
 *
 *   hold_object SOURCE TARGET fd        keeps only the descriptor (no mapping); the creator
 *                                       pid in the header stays SOURCE's (a dead process).
 *   hold_object SOURCE TARGET map-fork  becomes the creator (its pid in the header), maps the
 *                                       object, closes the descriptor, forks a worker and
 *                                       exits: the worker keeps the inherited mapping.
 *
 * The process left holding the object prints "ready PID" and exits when stdin closes.
 * Exit code 0, or 1 with a message on stderr.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* FORMAT.md: `creator_pid`, 4 bytes at header offset 80, native byte order. */
#define CREATOR_PID_OFFSET 80

static int fail(const char *what) {
    perror(what);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 4 || (strcmp(argv[3], "fd") != 0 && strcmp(argv[3], "map-fork") != 0)) {
        fprintf(stderr, "usage: hold_object SOURCE TARGET fd|map-fork\n");
        return 2;
    }
    const char *source = argv[1], *target = argv[2];
    int map_fork = strcmp(argv[3], "map-fork") == 0;

    int src = open(source, O_RDONLY | O_CLOEXEC);
    if (src < 0) return fail("open SOURCE");
    struct stat st;
    if (fstat(src, &st) != 0) return fail("fstat SOURCE");
    if (st.st_size < CREATOR_PID_OFFSET + 4) {
        fprintf(stderr, "SOURCE is too small to be a region\n");
        return 1;
    }

    char dir[4096];
    snprintf(dir, sizeof dir, "%s", target);
    int fd = open(dirname(dir), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) return fail("open O_TMPFILE");
    char buf[65536];
    ssize_t n;
    while ((n = read(src, buf, sizeof buf)) > 0) {
        if (write(fd, buf, (size_t)n) != n) return fail("write");
    }
    if (n < 0) return fail("read SOURCE");
    close(src);
    if (map_fork) {
        int32_t me = (int32_t)getpid();
        if (pwrite(fd, &me, sizeof me, CREATOR_PID_OFFSET) != (ssize_t)sizeof me)
            return fail("pwrite creator_pid");
    }

    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    if (linkat(AT_FDCWD, proc, AT_FDCWD, target, AT_SYMLINK_FOLLOW) != 0)
        return fail("linkat TARGET");

    if (map_fork) {
        void *base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (base == MAP_FAILED) return fail("mmap");
        close(fd);
        fflush(stdout);
        pid_t worker = fork();
        if (worker < 0) return fail("fork");
        if (worker > 0) _exit(0); /* the creator exits; its worker maps the region */
    }

    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    while (read(STDIN_FILENO, buf, sizeof buf) > 0) {
    }
    return 0;
}
