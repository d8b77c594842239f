/*
 * LD_PRELOAD shim for tests/tests/queue_trust.rs: kills its process (SIGKILL) at the first
 * shared (not FUTEX_PRIVATE_FLAG) FUTEX_WAKE made through syscall(2) once the environment
 * variable SHMSTORE_TEST_KILL_AT_WAKE is set. shmstore makes its futex calls through libc's
 * syscall() (shmstore/src/sys/futex.rs), and a queue's wake-up is its only shared one, so
 * the process dies inside a wake-up: after it cleared the sleeper flag and bumped the epoch,
 * before the kernel woke anyone. std's own futex calls are private and pass through.
 *
 * The process arms it (setenv) once it is ready to die, so that earlier wake-ups, such as
 * the one a handle makes when it takes an SPSC role, pass through.
 *
 * Built by the test with `cc -shared -fPIC`.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

long syscall(long number, ...)
{
    /* Six argument words, as glibc's own syscall() reads: on the supported ABIs, reading
     * more than the caller passed only picks up unused registers or stack slots. */
    va_list ap;
    va_start(ap, number);
    long a0 = va_arg(ap, long), a1 = va_arg(ap, long), a2 = va_arg(ap, long);
    long a3 = va_arg(ap, long), a4 = va_arg(ap, long), a5 = va_arg(ap, long);
    va_end(ap);

    if (number == SYS_futex && (a1 & FUTEX_CMD_MASK) == FUTEX_WAKE &&
        !(a1 & FUTEX_PRIVATE_FLAG) && getenv("SHMSTORE_TEST_KILL_AT_WAKE") != NULL) {
        kill(getpid(), SIGKILL);
    }

    long (*real)(long, ...) = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
    return real(number, a0, a1, a2, a3, a4, a5);
}
