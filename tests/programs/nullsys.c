/* nullsys: benchmark of a local (getpid) and an offloaded (getppid) null
 * syscall. Runs N iterations (argv[1], default 100000) in batches and reports
 * the best batch's average per call in nanoseconds:
 *   local_ns=<..> offload_ns=<..>
 * Not a test: used by a benchmark. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int64_t now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static double best_avg(long nr, long iters)
{
    const long batches = 10;
    long per = iters / batches;
    if (per < 1)
        per = 1;
    double best = -1;
    /* warm-up */
    for (long i = 0; i < per / 10 + 1; i++)
        syscall(nr);
    for (long b = 0; b < batches; b++) {
        int64_t t0 = now();
        for (long i = 0; i < per; i++)
            syscall(nr);
        int64_t t1 = now();
        double avg = (double)(t1 - t0) / (double)per;
        if (best < 0 || avg < best)
            best = avg;
    }
    return best;
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 100000;
    if (iters <= 0)
        iters = 100000;
    double local = best_avg(SYS_getpid, iters);
    double off = best_avg(SYS_getppid, iters);
    printf("local_ns=%.1f offload_ns=%.1f\n", local, off);
    return 0;
}
