/* Plants a System V segment as an attacker would: created by uid 65534 (this program drops
 * root's privileges first), then given to root with IPC_SET. Its owner is then root, its
 * creator (cuid, which IPC_SET cannot change) still 65534, who keeps control of it.
 *
 * Usage: planted_segment KEY   (run as root; exit 3: the key is taken)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    key_t key = (key_t)strtoul(argv[1], NULL, 0);
    if (setgid(65534) != 0 || setuid(65534) != 0) {
        perror("setuid(65534)");
        return 1;
    }
    int id = shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0600);
    if (id < 0) {
        if (errno == EEXIST) return 3;
        perror("shmget");
        return 1;
    }
    struct shmid_ds ds;
    if (shmctl(id, IPC_STAT, &ds) != 0) {
        perror("shmctl(IPC_STAT)");
        return 1;
    }
    ds.shm_perm.uid = 0;
    if (shmctl(id, IPC_SET, &ds) != 0) {
        perror("shmctl(IPC_SET)");
        return 1;
    }
    return 0;
}
