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
 *   hold_object SOURCE TARGET map-thread  maps the object, closes the descriptor, starts a
 *                                       thread and ends its main thread (pthread_exit): the
 *                                       process lives on, but /proc/PID shows a zombie whose
 *                                       maps are empty; only /proc/PID/task/TID shows them.
 *
 * The process left holding the object prints "ready PID" and exits when stdin closes.
 * Exit code 0, or 1 with a message on stderr.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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

/* Says it is ready, then waits until stdin closes. */
static void hold(void) {
    char buf[256];
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    while (read(STDIN_FILENO, buf, sizeof buf) > 0) {
    }
}

static void *hold_and_exit(void *unused) {
    (void)unused;
    hold();
    exit(0);
}

int main(int argc, char **argv) {
    int fd_only = argc == 4 && strcmp(argv[3], "fd") == 0;
    int map_fork = argc == 4 && strcmp(argv[3], "map-fork") == 0;
    int map_thread = argc == 4 && strcmp(argv[3], "map-thread") == 0;
    if (!fd_only && !map_fork && !map_thread) {
        fprintf(stderr, "usage: hold_object SOURCE TARGET fd|map-fork|map-thread\n");
        return 2;
    }
    const char *source = argv[1], *target = argv[2];

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

    if (fd_only) {
        hold();
        return 0;
    }
    void *base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) return fail("mmap");
    close(fd);
    if (map_thread) {
        pthread_t thread;
        if (pthread_create(&thread, NULL, hold_and_exit, NULL) != 0) return fail("pthread_create");
        pthread_exit(NULL); /* the process lives on in `thread` */
    }
    fflush(stdout);
    pid_t worker = fork();
    if (worker < 0) return fail("fork");
    if (worker > 0) _exit(0); /* the creator exits; its worker maps the region */
    hold();
    return 0;
}
