/* fwq: fixed-work-quanta OS-noise probe. One thread per allowed core (the
 * main thread alone when there is one core, so no thread is created), each
 * pinned to its core, times QUANTA repetitions of the same fixed amount of
 * work. Any time above the fastest quantum is noise: interrupts, ticks,
 * daemons, the hypervisor.
 * Usage: fwq [QUANTA] [WORK] [DUMP]. With DUMP=1 it also prints every
 * quantum's time as lines "MARGAY-FWQ core=C i=FIRST t1,t2,..." (ns).
 * Reports over all cores: min, median, 99th and 99.9th percentile, max, the
 * noise fraction sum(t - min_core) / sum(t) in percent, and the largest
 * detour max - min_core in ns. */
#include "probe.h"
#include <pthread.h>
#include <stdatomic.h>

#define MAX_CORES 64

static long quanta, work;
static int ncores, cores[MAX_CORES];
static int64_t *samples[MAX_CORES];
static _Atomic int ready;

static void *run_core(void *arg)
{
    long c = (long)arg;
    if (ncores > 1) {
        int e = pin_to(cores[c]);
        if (e)
            fail("sched_setaffinity to core %d: %s", cores[c], strerror(e));
    }
    atomic_fetch_add(&ready, 1);
    while (atomic_load(&ready) < ncores)
        ;
    int64_t *s = samples[c];
    unsigned long x = 0;
    for (long q = -quanta / 10; q < quanta; q++) { /* the first tenth warms up */
        int64_t t0 = now_ns();
        for (long i = 0; i < work; i++) {
            x += (unsigned long)i;
            __asm__ volatile("" : "+r"(x));
        }
        int64_t dt = now_ns() - t0;
        if (q >= 0)
            s[q] = dt;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    probe_name = "fwq";
    quanta = arg_long(argc, argv, 1, 1000);
    work = arg_long(argc, argv, 2, 200000);
    int dump = argc > 3 && argv[3][0] == '1';
    ncores = allowed_cpus(cores, MAX_CORES);
    for (int c = 0; c < ncores; c++)
        samples[c] = xalloc(sizeof(int64_t) * (size_t)quanta);
    pthread_t th[MAX_CORES];
    for (long c = 1; c < ncores; c++) {
        int e = pthread_create(&th[c], NULL, run_core, (void *)c);
        if (e)
            fail("pthread_create for core %d: %s", cores[c], strerror(e));
    }
    run_core((void *)0);
    for (long c = 1; c < ncores; c++)
        pthread_join(th[c], NULL);

    if (dump) {
        for (int c = 0; c < ncores; c++)
            for (long q = 0; q < quanta; q += 100) {
                printf("MARGAY-FWQ core=%d i=%ld ", cores[c], q);
                for (long k = q; k < q + 100 && k < quanta; k++)
                    printf(k == q ? "%lld" : ",%lld", (long long)samples[c][k]);
                printf("\n");
            }
    }
    long total = quanta * ncores;
    int64_t *all = xalloc(sizeof(int64_t) * (size_t)total);
    double sum = 0, noise = 0;
    int64_t detour = 0;
    for (int c = 0; c < ncores; c++) {
        int64_t min = samples[c][0];
        for (long q = 0; q < quanta; q++)
            if (samples[c][q] < min)
                min = samples[c][q];
        for (long q = 0; q < quanta; q++) {
            int64_t t = samples[c][q];
            all[c * quanta + q] = t;
            sum += (double)t;
            noise += (double)(t - min);
            if (t - min > detour)
                detour = t - min;
        }
    }
    int64_t med = quantile(all, total, 0.5);
    printf("MARGAY-RESULT probe=fwq cores=%d quanta=%ld min_ns=%lld med_ns=%lld p99_ns=%lld "
           "p999_ns=%lld max_ns=%lld noise_pct=%.3f max_detour_ns=%lld max_over_min=%.2f\n",
           ncores, quanta, (long long)all[0], (long long)med,
           (long long)quantile(all, total, 0.99), (long long)quantile(all, total, 0.999),
           (long long)all[total - 1], 100.0 * noise / sum, (long long)detour,
           (double)all[total - 1] / (double)(all[0] ? all[0] : 1));
    return 0;
}
