/* POSIX timers and interval timers belong to their process (or thread):
   a periodic timer whose signal stays blocked counts overruns; a handler
   and sigwaitinfo see SI_TIMER, the timer id and sigev_value; SIGEV_NONE
   only counts down; SIGEV_THREAD_ID signals one thread; fork gives the
   child no timers; exec deletes POSIX timers and keeps ITIMER_REAL.
   Output is the same natively and on Margay. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static volatile sig_atomic_t got, got_code, got_value, got_timer;

static void on_timer(int sig, siginfo_t *si, void *uc) {
    (void)sig;
    (void)uc;
    got_code = si->si_code;
    got_value = si->si_value.sival_int;
    got_timer = si->si_timerid;
    got = 1;
}

static void msleep(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void periodic_overrun(void) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGRTMIN);
    CHECK(sigprocmask(SIG_BLOCK, &s, NULL) == 0);
    struct sigevent ev = {0};
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGRTMIN;
    ev.sigev_value.sival_int = 42;
    timer_t t;
    CHECK(timer_create(CLOCK_MONOTONIC, &ev, &t) == 0);
    struct itimerspec its = {{0, 10000000}, {0, 10000000}};
    CHECK(timer_settime(t, 0, &its, NULL) == 0);
    /* Wait for the timer with its signal blocked: expiries pile up. */
    msleep(200);
    siginfo_t si;
    CHECK(sigwaitinfo(&s, &si) == SIGRTMIN);
    printf("periodic: si_code SI_TIMER %d, value %d, overrun >= 5 %d\n", si.si_code == SI_TIMER,
           si.si_value.sival_int, si.si_overrun >= 5);
    printf("periodic: getoverrun matches %d\n", timer_getoverrun(t) == si.si_overrun);
    /* Only one instance was queued. */
    struct timespec zero = {0, 0};
    its.it_value.tv_nsec = 0;
    its.it_interval.tv_nsec = 0;
    CHECK(timer_settime(t, 0, &its, NULL) == 0);
    int again = sigtimedwait(&s, &si, &zero);
    printf("periodic: after disarm, another pending %d\n", again == SIGRTMIN);
    CHECK(timer_delete(t) == 0);
    printf("periodic: delete twice EINVAL %d\n", timer_delete(t) == -1 && errno == EINVAL);
    CHECK(sigprocmask(SIG_UNBLOCK, &s, NULL) == 0);
}

static void handler_info(void) {
    struct sigaction sa = {0};
    sa.sa_sigaction = on_timer;
    sa.sa_flags = SA_SIGINFO;
    CHECK(sigaction(SIGRTMIN + 1, &sa, NULL) == 0);
    struct sigevent ev = {0};
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGRTMIN + 1;
    ev.sigev_value.sival_int = 7;
    timer_t t;
    CHECK(timer_create(CLOCK_REALTIME, &ev, &t) == 0);
    struct itimerspec its = {{0, 0}, {0, 20000000}};
    CHECK(timer_settime(t, 0, &its, NULL) == 0);
    sigset_t s, old;
    sigemptyset(&s);
    sigaddset(&s, SIGRTMIN + 1);
    sigprocmask(SIG_BLOCK, &s, &old);
    while (!got)
        sigsuspend(&old);
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("handler: SI_TIMER %d, value %d, timer id matches %d\n", got_code == SI_TIMER,
           (int)got_value, got_timer == (int)(long)t);
    /* Absolute time on CLOCK_MONOTONIC, already past: fires at once. */
    got = 0;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    timer_t m;
    ev.sigev_value.sival_int = 8;
    CHECK(timer_create(CLOCK_MONOTONIC, &ev, &m) == 0);
    its.it_value = now;
    CHECK(timer_settime(m, TIMER_ABSTIME, &its, NULL) == 0);
    sigprocmask(SIG_BLOCK, &s, &old);
    while (!got)
        sigsuspend(&old);
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("abstime: value %d\n", (int)got_value);
    timer_delete(t);
    timer_delete(m);
}

static void sigev_none(void) {
    struct sigevent ev = {0};
    ev.sigev_notify = SIGEV_NONE;
    timer_t t;
    CHECK(timer_create(CLOCK_BOOTTIME, &ev, &t) == 0);
    struct itimerspec its = {{1, 0}, {10, 0}}, cur;
    CHECK(timer_settime(t, 0, &its, NULL) == 0);
    CHECK(timer_gettime(t, &cur) == 0);
    printf("none: remaining in (9,10] %d, interval %ld\n",
           cur.it_value.tv_sec == 9 || (cur.it_value.tv_sec == 10 && cur.it_value.tv_nsec == 0),
           (long)cur.it_interval.tv_sec);
    struct itimerspec old;
    its.it_value.tv_sec = 0;
    CHECK(timer_settime(t, 0, &its, &old) == 0);
    printf("none: old had %d s\n", old.it_value.tv_sec >= 9);
    timer_delete(t);
    /* Disarming (Linux keeps showing a disarmed SIGEV_NONE timer's stale
       expiry, so this uses a signalling one). */
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGALRM;
    CHECK(timer_create(CLOCK_REALTIME, &ev, &t) == 0);
    its.it_value.tv_sec = 10;
    CHECK(timer_settime(t, 0, &its, NULL) == 0);
    its.it_value.tv_sec = 0;
    CHECK(timer_settime(t, 0, &its, NULL) == 0);
    CHECK(timer_gettime(t, &cur) == 0);
    printf("disarmed %d\n", cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec == 0 &&
                                 cur.it_interval.tv_sec == 0);
    timer_delete(t);
}

static int ready[2], go[2];
static pid_t worker_tid;

static void *worker(void *arg) {
    (void)arg;
    worker_tid = syscall(SYS_gettid);
    char c = 1;
    CHECK(write(ready[1], &c, 1) == 1);
    CHECK(read(go[0], &c, 1) == 1);
    sigset_t p;
    sigpending(&p);
    int mine = sigismember(&p, SIGRTMIN + 2);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGRTMIN + 2);
    siginfo_t si;
    int sig = sigwaitinfo(&s, &si);
    printf("thread: pending in worker %d, took it %d, SI_TIMER %d, value %d\n", mine,
           sig == SIGRTMIN + 2, si.si_code == SI_TIMER, si.si_value.sival_int);
    return NULL;
}

static void thread_id(void) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGRTMIN + 2);
    CHECK(pthread_sigmask(SIG_BLOCK, &s, NULL) == 0);
    CHECK(pipe(ready) == 0 && pipe(go) == 0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, worker, NULL) == 0);
    char c;
    CHECK(read(ready[0], &c, 1) == 1);
    struct sigevent ev = {0};
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = SIGRTMIN + 2;
    ev.sigev_value.sival_int = 99;
    ev._sigev_un._tid = worker_tid;
    timer_t t;
    CHECK(timer_create(CLOCK_MONOTONIC, &ev, &t) == 0);
    struct itimerspec its = {{0, 0}, {0, 10000000}}, cur;
    CHECK(timer_settime(t, 0, &its, NULL) == 0);
    /* Wait for the expiry itself. */
    do {
        CHECK(timer_gettime(t, &cur) == 0);
    } while (cur.it_value.tv_sec || cur.it_value.tv_nsec);
    msleep(20);
    sigset_t p;
    sigpending(&p);
    printf("thread: pending in main %d\n", sigismember(&p, SIGRTMIN + 2));
    c = 1;
    CHECK(write(go[1], &c, 1) == 1);
    pthread_join(th, NULL);
    ev._sigev_un._tid = 1;
    timer_t bad;
    printf("thread: foreign tid EINVAL %d\n",
           timer_create(CLOCK_MONOTONIC, &ev, &bad) == -1 && errno == EINVAL);
    timer_delete(t);
}

static void fork_exec(const char *self) {
    struct sigevent ev = {0};
    ev.sigev_notify = SIGEV_NONE;
    timer_t t;
    CHECK(timer_create(CLOCK_MONOTONIC, &ev, &t) == 0);
    struct itimerspec its = {{0, 0}, {100, 0}}, cur;
    CHECK(timer_settime(t, 0, &its, NULL) == 0);
    struct itimerval iv = {{0, 0}, {100, 0}}, got_iv;
    CHECK(setitimer(ITIMER_REAL, &iv, NULL) == 0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int r = timer_gettime(t, &cur);
        getitimer(ITIMER_REAL, &got_iv);
        printf("fork child: timer EINVAL %d, itimer cleared %d\n", r == -1 && errno == EINVAL,
               got_iv.it_value.tv_sec == 0 && got_iv.it_value.tv_usec == 0);
        exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    CHECK(timer_gettime(t, &cur) == 0);
    printf("fork parent: timer kept %d\n", cur.it_value.tv_sec >= 90);
    fflush(stdout);
    char idbuf[32];
    snprintf(idbuf, sizeof idbuf, "%ld", (long)t);
    execl(self, self, "afterexec", idbuf, (char *)NULL);
    printf("exec failed\n");
}

static void after_exec(const char *id) {
    timer_t t = (timer_t)strtol(id, NULL, 10);
    struct itimerspec cur;
    int r = timer_gettime(t, &cur);
    struct itimerval iv;
    getitimer(ITIMER_REAL, &iv);
    printf("after exec: timer EINVAL %d, itimer kept %d\n", r == -1 && errno == EINVAL,
           iv.it_value.tv_sec >= 90);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 2 && strcmp(argv[1], "afterexec") == 0) {
        after_exec(argv[2]);
        return 0;
    }
    periodic_overrun();
    handler_info();
    sigev_none();
    thread_id();
    fork_exec(argv[0]);
    return 1;
}
