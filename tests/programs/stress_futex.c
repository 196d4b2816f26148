/* stress_futex: oversubscribed threads in a futex storm. Usage:
 * stress_futex THREADS ROUNDS. THREADS threads (more than cores) pass a
 * token around a ring: thread i waits on its own futex word until it holds
 * the token, then hands it to thread i+1 and wakes it; ROUNDS times around.
 * Meanwhile every thread also hammers one shared word with FUTEX_WAKE of
 * nobody and FUTEX_WAIT with a wrong value (EAGAIN). Prints the number of
 * hand-offs, which must be THREADS * ROUNDS. */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAXT 64
static volatile int word[MAXT];
static volatile int shared;
static int nthreads, rounds;
static volatile long handoffs;

static long futex(volatile int *a, int op, int v)
{
    return syscall(SYS_futex, a, op, v, NULL, NULL, 0);
}

static void *run(void *arg)
{
    int me = (int)(long)arg;
    for (int r = 0; r < rounds; r++) {
        while (__atomic_load_n(&word[me], __ATOMIC_ACQUIRE) == 0)
            futex(&word[me], FUTEX_WAIT_PRIVATE, 0);
        __atomic_store_n(&word[me], 0, __ATOMIC_RELEASE);
        __atomic_fetch_add(&handoffs, 1, __ATOMIC_RELAXED);
        futex(&shared, FUTEX_WAKE_PRIVATE, 1);
        futex(&shared, FUTEX_WAIT_PRIVATE, shared + 1);
        int next = (me + 1) % nthreads;
        __atomic_store_n(&word[next], 1, __ATOMIC_RELEASE);
        futex(&word[next], FUTEX_WAKE_PRIVATE, 1);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    nthreads = argc > 1 ? atoi(argv[1]) : 8;
    rounds = argc > 2 ? atoi(argv[2]) : 1000;
    if (nthreads < 2 || nthreads > MAXT)
        nthreads = 8;
    pthread_t t[MAXT];
    for (long i = 0; i < nthreads; i++)
        pthread_create(&t[i], NULL, run, (void *)i);
    __atomic_store_n(&word[0], 1, __ATOMIC_RELEASE);
    futex(&word[0], FUTEX_WAKE_PRIVATE, 1);
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    printf("futex storm: %ld hand-offs of %d\n", handoffs, nthreads * rounds);
    return handoffs != (long)nthreads * rounds;
}
