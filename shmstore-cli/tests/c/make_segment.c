/* Creates a System V shared-memory segment the way another program would: 4096 bytes that
 * start with its own data, not with a shmstore header. The tests use it as the foreign segment
 * that `shmstore rm` must refuse.
 *
 * Usage: make_segment KEY   (KEY in C notation: 0x5e001234)
 * Exit code: 0 created, 3 a segment with this key exists, 1 any other error.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_segment KEY\n");
        return 1;
    }
    key_t key = (key_t)strtoul(argv[1], NULL, 0);
    int id = shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0600);
    if (id < 0) {
        if (errno == EEXIST) return 3;
        perror("shmget");
        return 1;
    }
    char *base = shmat(id, NULL, 0);
    if (base == (void *)-1) {
        perror("shmat");
        shmctl(id, IPC_RMID, NULL);
        return 1;
    }
    static const char data[] = "LEGACYAPP v3: another program's segment";
    memcpy(base, data, sizeof data);
    shmdt(base);
    return 0;
}
