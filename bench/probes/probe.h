/* Shared helpers for Margay's benchmark probes (header-only, static).
 *
 * Every probe prints exactly one result line on stdout:
 *   MARGAY-RESULT probe=NAME key=value ...
 * with numeric values, or on failure one line
 *   MARGAY-ERROR probe=NAME what failed: why
 * and exits 1. `margay bench` finds these lines by their prefix. */
#ifndef MARGAY_PROBE_H
#define MARGAY_PROBE_H
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *probe_name = "?";

static inline int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Report a failure and exit 1. */
__attribute__((format(printf, 1, 2), noreturn)) static void fail(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    printf("MARGAY-ERROR probe=%s ", probe_name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    exit(1);
}

/* argv[i] as a positive number, or `def`. */
static long arg_long(int argc, char **argv, int i, long def)
{
    if (argc <= i)
        return def;
    char *end;
    long v = strtol(argv[i], &end, 10);
    if (*end || v <= 0)
        fail("bad argument %d: '%s' (want a positive number)", i, argv[i]);
    return v;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Sorts v and returns the q-quantile (0..1), nearest rank. */
__attribute__((unused)) static int64_t quantile(int64_t *v, long n, double q)
{
    qsort(v, (size_t)n, sizeof *v, cmp_i64);
    long i = (long)(q * (double)n);
    if (i >= n)
        i = n - 1;
    return v[i];
}

static void *xalloc(size_t n)
{
    void *p = calloc(n, 1);
    if (!p)
        fail("cannot allocate %zu bytes: %s", n, strerror(errno));
    return p;
}

/* The CPUs this process may run on, in order; returns how many (at most max). */
__attribute__((unused)) static int allowed_cpus(int *out, int max)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        fail("sched_getaffinity: %s", strerror(errno));
    int n = 0;
    for (int c = 0; c < CPU_SETSIZE && n < max; c++)
        if (CPU_ISSET(c, &set))
            out[n++] = c;
    return n;
}

/* Pin the calling thread to one CPU; 0 or an errno. */
__attribute__((unused)) static int pin_to(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set) == 0 ? 0 : errno;
}
#endif
