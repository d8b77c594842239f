/*
 * LD_PRELOAD shim for tests/tests/queue_trust.rs: stops its process (SIGSTOP) in the first
 * pthread_mutex_unlock() called once the environment variable SHMSTORE_TEST_STOP_AT_UNLOCK
 * is set, before the mutex is released. shmstore's region mutex is the only pthread mutex a
 * Rust program unlocks through this symbol (std's locks are futexes), so an MPMC queue
 * operation stops while it holds the queue's lock, and keeps holding it until SIGCONT.
 *
 * Built by the test with `cc -shared -fPIC`.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

int pthread_mutex_unlock(pthread_mutex_t *mutex)
{
    static int stopped;
    if (!stopped && getenv("SHMSTORE_TEST_STOP_AT_UNLOCK") != NULL) {
        stopped = 1;
        raise(SIGSTOP);
    }
    int (*real)(pthread_mutex_t *) =
        (int (*)(pthread_mutex_t *))dlsym(RTLD_NEXT, "pthread_mutex_unlock");
    return real(mutex);
}
