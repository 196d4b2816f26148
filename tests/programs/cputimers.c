/* CPU-time timers: ITIMER_VIRTUAL and ITIMER_PROF count only time the
   process runs (user time; user and kernel time), not time it sleeps;
   CLOCK_PROCESS_CPUTIME_ID and CLOCK_THREAD_CPUTIME_ID advance while it
   computes and hardly while it sleeps. Same output natively. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static volatile sig_atomic_t vt, prof;
static void on_vt(int s) { (void)s; vt++; }
static void on_prof(int s) { (void)s; prof++; }

static double clk(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void msleep(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Compute until `flag` is set, at most `limit` s of wall time. */
static int spin_until(volatile sig_atomic_t *flag, double limit) {
    double end = clk(CLOCK_MONOTONIC) + limit;
    volatile unsigned long x = 0;
    while (!*flag && clk(CLOCK_MONOTONIC) < end)
        for (int i = 0; i < 100000; i++)
            x += i;
    return *flag != 0;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGVTALRM, on_vt);
    signal(SIGPROF, on_prof);

    double c0 = clk(CLOCK_PROCESS_CPUTIME_ID), t0 = clk(CLOCK_THREAD_CPUTIME_ID);
    struct itimerval iv = {{0, 0}, {0, 100000}}, cur;
    if (setitimer(ITIMER_VIRTUAL, &iv, NULL) != 0)
        return printf("setitimer virtual: %s\n", strerror(errno)), 1;
    msleep(300);
    double c1 = clk(CLOCK_PROCESS_CPUTIME_ID);
    printf("virtual: fired while sleeping %d\n", vt != 0);
    printf("cputime: sleeping 300 ms used < 50 ms %d\n", c1 - c0 < 0.05);
    getitimer(ITIMER_VIRTUAL, &cur);
    printf("virtual: still armed %d, under 110 ms %d\n",
           cur.it_value.tv_sec != 0 || cur.it_value.tv_usec != 0,
           cur.it_value.tv_sec == 0 && cur.it_value.tv_usec <= 110000);
    printf("virtual: fired while computing %d\n", spin_until(&vt, 20));
    double c2 = clk(CLOCK_PROCESS_CPUTIME_ID), t2 = clk(CLOCK_THREAD_CPUTIME_ID);
    /* (Linux samples user time by ticks, so the virtual timer may fire
       somewhat before 100 ms of CPU time.) */
    printf("cputime: computing used >= 20 ms %d, thread too %d\n", c2 - c1 >= 0.02,
           t2 - t0 >= 0.02);
    getitimer(ITIMER_VIRTUAL, &cur);
    printf("virtual: one-shot disarmed %d\n", cur.it_value.tv_sec == 0 && cur.it_value.tv_usec == 0);

    /* Periodic profiling timer. */
    struct itimerval pv = {{0, 20000}, {0, 20000}};
    setitimer(ITIMER_PROF, &pv, NULL);
    spin_until(&prof, 20);
    int first = prof;
    volatile sig_atomic_t three = 0;
    double end = clk(CLOCK_MONOTONIC) + 20;
    while (prof < first + 3 && clk(CLOCK_MONOTONIC) < end) {
        volatile unsigned long x = 0;
        for (int i = 0; i < 100000; i++)
            x += i;
    }
    three = prof >= first + 3;
    printf("prof: periodic fired 3 more times %d\n", (int)three);
    struct itimerval off = {{0, 0}, {0, 0}}, old;
    setitimer(ITIMER_PROF, &off, &old);
    printf("prof: old interval 20 ms %d\n", old.it_interval.tv_sec == 0 && old.it_interval.tv_usec == 20000);
    printf("bad which: EINVAL %d\n", setitimer(7, &off, NULL) == -1 && errno == EINVAL);

    /* POSIX timers on the CPU-time clocks. */
    signal(SIGUSR1, on_vt);
    struct sigevent ev = {0};
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGUSR1;
    const clockid_t clocks[] = {CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID};
    const char *names[] = {"process", "thread"};
    for (int c = 0; c < 2; c++) {
        timer_t t;
        if (timer_create(clocks[c], &ev, &t) != 0)
            return printf("timer_create %s: %s\n", names[c], strerror(errno)), 1;
        vt = 0;
        struct itimerspec its = {{0, 0}, {0, 50000000}}, left;
        timer_settime(t, 0, &its, NULL);
        msleep(200);
        timer_gettime(t, &left);
        printf("%s cpu timer: fired while sleeping %d, still armed %d\n", names[c], vt != 0,
               left.it_value.tv_sec == 0 && left.it_value.tv_nsec > 0);
        printf("%s cpu timer: fired while computing %d\n", names[c], spin_until(&vt, 20));
        timer_delete(t);
    }
    return 0;
}
