/* stream: the STREAM triad a[i] = b[i] + s * c[i] with OpenMP, best of
 * NTIMES, as MB/s (3 arrays of N doubles counted as moved, as STREAM does).
 * Usage: stream [N] [NTIMES]. */
#include "probe.h"
#include <omp.h>

int main(int argc, char **argv)
{
    probe_name = "stream";
    long n = arg_long(argc, argv, 1, 2000000);
    long times = arg_long(argc, argv, 2, 5);
    double *a = xalloc(sizeof(double) * (size_t)n);
    double *b = xalloc(sizeof(double) * (size_t)n);
    double *c = xalloc(sizeof(double) * (size_t)n);
    int threads = 1;
#pragma omp parallel
    {
#pragma omp single
        threads = omp_get_num_threads();
    }
#pragma omp parallel for
    for (long i = 0; i < n; i++) {
        a[i] = 1.0;
        b[i] = 2.0;
        c[i] = 0.5;
    }
    double best = 0;
    for (long k = 0; k < times; k++) {
        int64_t t0 = now_ns();
#pragma omp parallel for
        for (long i = 0; i < n; i++)
            a[i] = b[i] + 3.0 * c[i];
        int64_t dt = now_ns() - t0;
        double mbs = 3.0 * 8.0 * (double)n * 1e3 / (double)(dt ? dt : 1);
        if (mbs > best)
            best = mbs;
    }
    if (a[n / 2] != 3.5)
        fail("wrong triad result %f", a[n / 2]);
    printf("MARGAY-RESULT probe=stream threads=%d triad_mbs=%.1f\n", threads, best);
    return 0;
}
