/* A C program in the classic System V style: ftok + shmget + shmat, then the payload that a
 * Rust process wrote, read through the header `shmstore header sysv:KEY` generated for it
 * (`shmstore_from_base` validates the region at the attach address; `shmstore_read` takes a
 * consistent snapshot without the lock). It attaches read-only and writes nothing.
 *
 * Usage: read_sysv PATH ID   (the file and project id given to ftok)
 */
#include "region.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/ipc.h>
#include <sys/shm.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: read_sysv PATH ID\n");
        return 2;
    }
    key_t key = ftok(argv[1], atoi(argv[2]));
    if (key == -1) {
        perror("ftok");
        return 1;
    }
    if (key != (key_t)SHMSTORE_REGION_SYSV_KEY) {
        fprintf(stderr, "ftok gave key 0x%08x, the header was generated for 0x%08x\n",
                (unsigned)key, (unsigned)SHMSTORE_REGION_SYSV_KEY);
        return 1;
    }
    int id = shmget(key, 0, 0);
    if (id < 0) {
        perror("shmget");
        return 1;
    }
    int owner = shmstore_check_sysv_owner(id);
    if (owner != 0) {
        fprintf(stderr, "shmstore_check_sysv_owner: %s\n", shmstore_strerror(owner));
        return 1;
    }
    void *base = shmat(id, NULL, SHM_RDONLY);
    if (base == (void *)-1) {
        perror("shmat");
        return 1;
    }
    /* The segment's size: the validation reads nothing beyond it. */
    struct shmid_ds ds;
    if (shmctl(id, IPC_STAT, &ds) != 0) {
        perror("shmctl(IPC_STAT)");
        shmdt(base);
        return 1;
    }
    shmstore_region_t region;
    int rc = shmstore_from_base(base, ds.shm_segsz, &region);
    if (rc != 0) {
        fprintf(stderr, "shmstore_from_base: %s\n", shmstore_strerror(rc));
        shmdt(base);
        return 1;
    }
    shmstore_payload_t s;
    rc = shmstore_read(&region, &s);
    if (rc != 0) {
        fprintf(stderr, "shmstore_read: %s\n", shmstore_strerror(rc));
        shmstore_close(&region);
        shmdt(base);
        return 1;
    }
    unsigned __int128 big = (unsigned __int128)s.big;
    printf("version %llu\n", (unsigned long long)shmstore_version(&region));
    printf("counter %llu\n", (unsigned long long)s.counter);
    printf("scale %.17g\n", s.scale);
    printf("big 0x%016llx%016llx\n", (unsigned long long)(big >> 64), (unsigned long long)big);
    printf("pos %.9g %.9g\n", (double)s.pos.x, (double)s.pos.y);
    for (int i = 0; i < 2; i++)
        printf("wheel %d %.9g %u\n", i, (double)s.wheels[i].pressure, s.wheels[i].rpm);
    /* [[u16; 2]; 3] in Rust: the descriptor stores it as 6 consecutive elements. */
    printf("samples");
    for (size_t i = 0; i < sizeof s.samples / sizeof s.samples[0]; i++)
        printf(" %u", (unsigned)s.samples[i]);
    printf("\n");
    printf("tag %.4s\n", (const char *)s.tag);
    printf("tail %llu\n", (unsigned long long)s.tail);
    shmstore_close(&region);
    if (shmdt(base) != 0) {
        perror("shmdt");
        return 1;
    }
    return 0;
}
