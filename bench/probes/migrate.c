/* migrate: sched_setaffinity round trip between two cores: pin to the second
 * allowed core, then back to the first (each checked with sched_getcpu).
 * Usage: migrate [ROUND_TRIPS]. Reports min and median round trip in ns. */
#include "probe.h"

int main(int argc, char **argv)
{
    probe_name = "migrate";
    long n = arg_long(argc, argv, 1, 200);
    int cpus[2];
    int have = allowed_cpus(cpus, 2);
    /* With a single allowed core, still try core 1 so the kernel's own
     * answer is what gets reported. */
    int a = cpus[0], b = have > 1 ? cpus[1] : cpus[0] + 1;
    int e = pin_to(a);
    if (e)
        fail("sched_setaffinity to core %d: %s", a, strerror(e));
    int64_t *rt = xalloc(sizeof(int64_t) * (size_t)n);
    for (long i = 0; i < n; i++) {
        int64_t t0 = now_ns();
        if ((e = pin_to(b)))
            fail("sched_setaffinity to core %d: %s (sched_getaffinity allows %d core%s)", b,
                 strerror(e), have, have == 1 ? "" : "s");
        if (sched_getcpu() != b)
            fail("after sched_setaffinity to core %d, sched_getcpu() says %d", b, sched_getcpu());
        if ((e = pin_to(a)))
            fail("sched_setaffinity back to core %d: %s", a, strerror(e));
        if (sched_getcpu() != a)
            fail("after sched_setaffinity to core %d, sched_getcpu() says %d", a, sched_getcpu());
        rt[i] = now_ns() - t0;
    }
    int64_t med = quantile(rt, n, 0.5);
    printf("MARGAY-RESULT probe=migrate rt_min_ns=%lld rt_med_ns=%lld\n", (long long)rt[0],
           (long long)med);
    return 0;
}
