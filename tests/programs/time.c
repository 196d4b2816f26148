/* time: clocks are monotonic and consistent, nanosleep sleeps long enough.
 * Prints only "ok" lines (or FAIL lines with details) so output is
 * deterministic. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int64_t ns(struct timespec t)
{
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int failures = 0;

static void check(int cond, const char *what, long long a, long long b)
{
    if (cond) {
        printf("ok %s\n", what);
    } else {
        printf("FAIL %s (%lld, %lld)\n", what, a, b);
        failures++;
    }
}

int main(void)
{
    struct timespec a, b, r;

    /* Monotonic never goes backwards, over many reads. */
    int back = 0;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int64_t prev = ns(a), first = prev;
    for (int i = 0; i < 100000; i++) {
        clock_gettime(CLOCK_MONOTONIC, &b);
        if (ns(b) < prev)
            back++;
        if (b.tv_nsec < 0 || b.tv_nsec >= 1000000000L)
            back++;
        prev = ns(b);
    }
    check(back == 0, "CLOCK_MONOTONIC monotonic", back, 0);
    check(prev > first, "CLOCK_MONOTONIC advances", prev, first);

    /* Same via the raw syscall (no vDSO). */
    struct timespec s1, s2;
    long r1 = syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &s1);
    long r2 = syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &s2);
    check(r1 == 0 && r2 == 0 && ns(s2) >= ns(s1), "raw clock_gettime", ns(s1), ns(s2));

    /* REALTIME is sane (after 2020) and does not jump backwards here. */
    clock_gettime(CLOCK_REALTIME, &a);
    check(a.tv_sec > 1577836800L, "CLOCK_REALTIME after 2020", a.tv_sec, 1577836800L);
    back = 0;
    prev = ns(a);
    for (int i = 0; i < 10000; i++) {
        clock_gettime(CLOCK_REALTIME, &b);
        if (ns(b) < prev)
            back++;
        prev = ns(b);
    }
    check(back == 0, "CLOCK_REALTIME monotonic over a short run", back, 0);

    /* nanosleep 50 ms: at least 50 ms, less than 2 s. */
    struct timespec req = { 0, 50 * 1000 * 1000 };
    clock_gettime(CLOCK_MONOTONIC, &a);
    int rc = nanosleep(&req, &r);
    clock_gettime(CLOCK_MONOTONIC, &b);
    int64_t el = ns(b) - ns(a);
    check(rc == 0, "nanosleep returns 0", rc, 0);
    check(el >= 50000000LL, "nanosleep >= 50 ms", el, 50000000LL);
    check(el < 2000000000LL, "nanosleep < 2 s", el, 2000000000LL);

    /* clock_nanosleep relative, 20 ms. */
    req.tv_nsec = 20 * 1000 * 1000;
    clock_gettime(CLOCK_MONOTONIC, &a);
    rc = clock_nanosleep(CLOCK_MONOTONIC, 0, &req, NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    el = ns(b) - ns(a);
    check(rc == 0 && el >= 20000000LL && el < 2000000000LL, "clock_nanosleep 20 ms", rc, el);

    /* time() agrees with CLOCK_REALTIME within a second or two. */
    clock_gettime(CLOCK_REALTIME, &a);
    time_t t = time(NULL);
    clock_gettime(CLOCK_REALTIME, &b);
    check(t >= a.tv_sec - 1 && t <= b.tv_sec + 1, "time() matches CLOCK_REALTIME",
          (long long)t, (long long)a.tv_sec);

    /* gettimeofday agrees with CLOCK_REALTIME. */
    struct timeval tv;
    clock_gettime(CLOCK_REALTIME, &a);
    int g = gettimeofday(&tv, NULL);
    clock_gettime(CLOCK_REALTIME, &b);
    int64_t tvns = (int64_t)tv.tv_sec * 1000000000LL + (int64_t)tv.tv_usec * 1000;
    check(g == 0 && tv.tv_usec >= 0 && tv.tv_usec < 1000000, "gettimeofday valid", g, tv.tv_usec);
    check(tvns >= ns(a) - 1000 && tvns <= ns(b) + 1000, "gettimeofday matches CLOCK_REALTIME",
          tvns, ns(a));

    /* REALTIME and MONOTONIC advance at the same rate over a sleep. */
    struct timespec m1, m2, w1, w2;
    clock_gettime(CLOCK_MONOTONIC, &m1);
    clock_gettime(CLOCK_REALTIME, &w1);
    req.tv_nsec = 100 * 1000 * 1000;
    nanosleep(&req, NULL);
    clock_gettime(CLOCK_MONOTONIC, &m2);
    clock_gettime(CLOCK_REALTIME, &w2);
    int64_t dm = ns(m2) - ns(m1), dw = ns(w2) - ns(w1);
    int64_t diff = dm > dw ? dm - dw : dw - dm;
    check(diff < 20000000LL, "REALTIME and MONOTONIC rates agree", dm, dw);

    /* clock_getres */
    check(clock_getres(CLOCK_MONOTONIC, &r) == 0 && r.tv_sec == 0 && r.tv_nsec > 0 &&
              r.tv_nsec <= 1000000,
          "clock_getres MONOTONIC", r.tv_sec, r.tv_nsec);

    return failures ? 1 : 0;
}
