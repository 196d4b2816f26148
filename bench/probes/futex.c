/* futex: ping-pong between two threads pinned to two cores, each hop a
 * FUTEX_WAKE answered by the other side's FUTEX_WAIT returning.
 * Usage: futex [ROUND_TRIPS]. Reports min and median round trip in ns. */
#include "probe.h"
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

static _Atomic int turn; /* 0: main's turn, 1: partner's turn, 2: stop */
static int cpus[2], have;

static void futex_wait(_Atomic int *w, int val)
{
    syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(_Atomic int *w)
{
    syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *partner(void *arg)
{
    (void)arg;
    if (have > 1)
        pin_to(cpus[1]);
    for (;;) {
        int t;
        while ((t = atomic_load(&turn)) == 0)
            futex_wait(&turn, 0);
        if (t == 2)
            return NULL;
        atomic_store(&turn, 0);
        futex_wake(&turn);
    }
}

int main(int argc, char **argv)
{
    probe_name = "futex";
    long n = arg_long(argc, argv, 1, 200);
    have = allowed_cpus(cpus, 2);
    int e = pin_to(cpus[0]);
    if (e)
        fail("sched_setaffinity to core %d: %s", cpus[0], strerror(e));
    pthread_t th;
    if ((e = pthread_create(&th, NULL, partner, NULL)))
        fail("pthread_create: %s", strerror(e));
    int64_t *rt = xalloc(sizeof(int64_t) * (size_t)n);
    for (long i = 0; i < n; i++) {
        int64_t t0 = now_ns();
        atomic_store(&turn, 1);
        futex_wake(&turn);
        while (atomic_load(&turn) == 1)
            futex_wait(&turn, 1);
        rt[i] = now_ns() - t0;
    }
    atomic_store(&turn, 2);
    futex_wake(&turn);
    pthread_join(th, NULL);
    int64_t med = quantile(rt, n, 0.5);
    printf("MARGAY-RESULT probe=futex cores=%d rt_min_ns=%lld rt_med_ns=%lld\n", have > 1 ? 2 : 1,
           (long long)rt[0], (long long)med);
    return 0;
}
