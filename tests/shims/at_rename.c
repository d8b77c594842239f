/*
 * LD_PRELOAD shim for tests/tests/repair_race.rs: acts in the first renameat2() called once the
 * environment variable SHMSTORE_TEST_AT_RENAME is set. With "kill" the process SIGKILLs itself
 * before the rename; with "stop-kill" it stops itself (SIGSTOP) before the rename, makes the
 * rename once continued (SIGCONT), then SIGKILLs itself before returning. shmstore renames
 * only to put a new region under the name of an abandoned one that read locks keep from an
 * in-place repair (shmstore/src/region/fd.rs, through nix and libc's renameat2), so the
 * process dies at exactly that point of a repair.
 *
 * Built by the test with `cc -shared -fPIC`.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
              unsigned int flags)
{
    int (*real)(int, const char *, int, const char *, unsigned int) =
        (int (*)(int, const char *, int, const char *, unsigned int))dlsym(RTLD_NEXT,
                                                                          "renameat2");
    const char *how = getenv("SHMSTORE_TEST_AT_RENAME");
    if (how != NULL && strcmp(how, "kill") == 0) {
        kill(getpid(), SIGKILL);
    }
    if (how != NULL && strcmp(how, "stop-kill") == 0) {
        raise(SIGSTOP);
        real(olddirfd, oldpath, newdirfd, newpath, flags);
        kill(getpid(), SIGKILL);
    }
    return real(olddirfd, oldpath, newdirfd, newpath, flags);
}
