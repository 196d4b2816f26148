/* Queued signals: every instance of a real-time signal queues with its
   value, in order, lowest signal first; a standard signal sent twice is
   pending once; a SA_SIGINFO handler sees SI_QUEUE, the sender and the
   value; rt_tgsigqueueinfo reaches one thread. Same output natively. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "check.h"

static volatile sig_atomic_t h_code, h_value, h_pid_ok, h_count;

static void on_sig(int sig, siginfo_t *si, void *uc) {
    (void)sig;
    (void)uc;
    h_code = si->si_code;
    h_value = si->si_value.sival_int;
    h_pid_ok = si->si_pid == getpid();
    h_count++;
}

static pid_t worker_tid;
static int ready[2], go[2];

static void *worker(void *arg) {
    (void)arg;
    worker_tid = syscall(SYS_gettid);
    char c = 1;
    CHECK(write(ready[1], &c, 1) == 1);
    CHECK(read(go[0], &c, 1) == 1);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGRTMIN + 3);
    siginfo_t si;
    CHECK(sigwaitinfo(&s, &si) == SIGRTMIN + 3);
    printf("thread: value %d, code SI_QUEUE %d\n", si.si_value.sival_int, si.si_code == SI_QUEUE);
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGRTMIN);
    sigaddset(&s, SIGRTMIN + 1);
    sigaddset(&s, SIGUSR1);
    CHECK(sigprocmask(SIG_BLOCK, &s, NULL) == 0);
    union sigval v;
    v.sival_int = 10;
    CHECK(sigqueue(getpid(), SIGRTMIN + 1, v) == 0);
    for (int i = 1; i <= 3; i++) {
        v.sival_int = i;
        CHECK(sigqueue(getpid(), SIGRTMIN, v) == 0);
    }
    v.sival_int = 5;
    CHECK(sigqueue(getpid(), SIGUSR1, v) == 0);
    v.sival_int = 6;
    CHECK(sigqueue(getpid(), SIGUSR1, v) == 0);
    siginfo_t si;
    struct timespec zero = {0, 0};
    int sig;
    while ((sig = sigtimedwait(&s, &si, &zero)) > 0) {
        printf("took %s value %d code SI_QUEUE %d pid ok %d\n",
               sig == SIGUSR1 ? "SIGUSR1" : sig == SIGRTMIN ? "SIGRTMIN" : "SIGRTMIN+1",
               si.si_value.sival_int, si.si_code == SI_QUEUE, si.si_pid == getpid());
    }
    printf("then: %s\n", errno == EAGAIN ? "EAGAIN" : strerror(errno));

    struct sigaction sa = {0};
    sa.sa_sigaction = on_sig;
    sa.sa_flags = SA_SIGINFO;
    CHECK(sigaction(SIGRTMIN + 2, &sa, NULL) == 0);
    v.sival_int = 77;
    CHECK(sigqueue(getpid(), SIGRTMIN + 2, v) == 0);
    printf("handler: count %d, SI_QUEUE %d, value %d, pid ok %d\n", (int)h_count,
           h_code == SI_QUEUE, (int)h_value, (int)h_pid_ok);

    /* Blocked while several are queued, then unblocked: each runs. */
    sigset_t b;
    sigemptyset(&b);
    sigaddset(&b, SIGRTMIN + 2);
    sigprocmask(SIG_BLOCK, &b, NULL);
    for (int i = 0; i < 4; i++) {
        v.sival_int = 100 + i;
        CHECK(sigqueue(getpid(), SIGRTMIN + 2, v) == 0);
    }
    sigprocmask(SIG_UNBLOCK, &b, NULL);
    printf("handler: count %d, last value %d\n", (int)h_count, (int)h_value);

    /* A forged kernel code for another process is refused. */
    siginfo_t forged;
    memset(&forged, 0, sizeof forged);
    forged.si_code = SI_USER;
    printf("forged SI_USER to pid 1: EPERM %d\n",
           syscall(SYS_rt_sigqueueinfo, 1, SIGUSR2, &forged) == -1 && errno == EPERM);

    /* To one thread. */
    sigemptyset(&b);
    sigaddset(&b, SIGRTMIN + 3);
    pthread_sigmask(SIG_BLOCK, &b, NULL);
    CHECK(pipe(ready) == 0 && pipe(go) == 0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, worker, NULL) == 0);
    char c;
    CHECK(read(ready[0], &c, 1) == 1);
    siginfo_t qi;
    memset(&qi, 0, sizeof qi);
    qi.si_signo = SIGRTMIN + 3;
    qi.si_code = SI_QUEUE;
    qi.si_pid = getpid();
    qi.si_uid = getuid();
    qi.si_value.sival_int = 55;
    CHECK(syscall(SYS_rt_tgsigqueueinfo, getpid(), worker_tid, SIGRTMIN + 3, &qi) == 0);
    sigset_t p;
    sigpending(&p);
    printf("thread: pending in main %d\n", sigismember(&p, SIGRTMIN + 3));
    CHECK(write(go[1], &c, 1) == 1);
    pthread_join(th, NULL);
    return 0;
}
