/* A C writer and reader of a region that a migration may replace under its name (FORMAT.md
 * "Migration"): it keeps one handle and obeys commands, one per line on stdin.
 *
 * Usage: follow_migration NAME
 *          opens NAME and prints `open ANSWER`, then for each line:
 *          lock    shmstore_lock; on success adds 1 to the payload's first 32-bit word (a
 *                  region whose type starts with a u32 or a little-endian u64: `workers`,
 *                  `counter`), commits, unlocks; prints `lock ANSWER`
 *          read    shmstore_read; prints `read ANSWER first=N` (N: that word of the copy,
 *                  kept even when the answer is `moved`)
 *          reopen  shmstore_close, shmstore_open; prints `open ANSWER`
 *        Killed by SIGALRM after 60 s, so that a hang fails the test instead of stalling it.
 *
 * ANSWER: `ok`, `moved`, `wrong-type`, `poisoned`, or the code.
 */
#include "region.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *answer(int rc) {
    static char code[32];
    switch (rc) {
    case 0: return "ok";
    case 1: return "poisoned";
    case SHMSTORE_E_MOVED: return "moved";
    case SHMSTORE_E_WRONG_TYPE: return "wrong-type";
    default: snprintf(code, sizeof code, "%d", rc); return code;
    }
}

static uint32_t first_word(const void *payload) {
    uint32_t word;
    memcpy(&word, payload, sizeof word);
    return word;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s NAME\n", argv[0]);
        return 2;
    }
    alarm(60);
    shmstore_region_t region;
    int rc = shmstore_open(argv[1], &region);
    int is_open = rc == 0;
    printf("open %s\n", answer(rc));
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin) != NULL) {
        if (!is_open && strcmp(line, "reopen\n") != 0) {
            printf("not open\n");
        } else if (strcmp(line, "lock\n") == 0) {
            rc = shmstore_lock(&region);
            if (rc >= 0) {
                shmstore_begin_write(&region);
                uint32_t *word = (uint32_t *)(void *)shmstore_payload(&region);
                *word += 1;
                shmstore_unlock(&region);
            }
            printf("lock %s\n", answer(rc));
        } else if (strcmp(line, "read\n") == 0) {
            shmstore_payload_t value;
            rc = shmstore_read(&region, &value);
            printf("read %s first=%u\n", answer(rc), (unsigned)first_word(&value));
        } else if (strcmp(line, "reopen\n") == 0) {
            if (is_open) shmstore_close(&region);
            rc = shmstore_open(argv[1], &region);
            is_open = rc == 0;
            printf("open %s\n", answer(rc));
        } else {
            printf("unknown command\n");
        }
        fflush(stdout);
    }
    if (is_open) shmstore_close(&region);
    return 0;
}
