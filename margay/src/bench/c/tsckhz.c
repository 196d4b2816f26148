/* tsckhz: margay bench's own measurement of the TSC frequency, the last
 * resort when neither CPUID nor the host kernel's log gives it. Counts TSC
 * ticks against CLOCK_MONOTONIC_RAW over [MS] milliseconds (default 200);
 * each end is the TSC read bracketed most tightly by two clock reads, so a
 * preemption in between does not skew it. Not a probe of `margay bench`. */
#include "probe.h"
#include <x86intrin.h>

static int64_t raw_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC_RAW, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void pair(int64_t *ns, uint64_t *tsc)
{
    int64_t best = INT64_MAX;
    for (int i = 0; i < 9; i++) {
        int64_t a = raw_ns();
        uint64_t t = __rdtsc();
        int64_t b = raw_ns();
        if (b - a < best) {
            best = b - a;
            *ns = a + (b - a) / 2;
            *tsc = t;
        }
    }
}

int main(int argc, char **argv)
{
    probe_name = "tsckhz";
    long ms = arg_long(argc, argv, 1, 200);
    int64_t n0, n1;
    uint64_t t0, t1;
    pair(&n0, &t0);
    struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&d, NULL);
    pair(&n1, &t1);
    if (n1 <= n0 || t1 <= t0)
        fail("the clock or the TSC did not advance");
    printf("MARGAY-RESULT probe=tsckhz khz=%.0f\n", (double)(t1 - t0) * 1e6 / (double)(n1 - n0));
    return 0;
}
