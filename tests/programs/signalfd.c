/* signalfd on the LWK: nonblocking read is EAGAIN with nothing pending;
   poll and epoll see a pending signal; read returns signalfd_siginfo
   records (sender, sigqueue value, a POSIX timer's id); a blocking read
   and a blocking poll in another thread wake when the signal comes; the
   descriptor survives fork. Same output natively. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static int sfd, bfd, ready[2];

static void *blocking_reader(void *arg) {
    (void)arg;
    char c = 1;
    CHECK(write(ready[1], &c, 1) == 1);
    struct signalfd_siginfo ss;
    ssize_t n = read(bfd, &ss, sizeof ss);
    printf("blocking read: %zd bytes, SIGUSR2 %d\n", n, ss.ssi_signo == SIGUSR2);
    return NULL;
}

static void *blocking_poller(void *arg) {
    (void)arg;
    char c = 1;
    CHECK(write(ready[1], &c, 1) == 1);
    struct pollfd p = {sfd, POLLIN, 0};
    int r = poll(&p, 1, -1);
    printf("blocking poll: %d, POLLIN %d\n", r, (p.revents & POLLIN) != 0);
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    sigaddset(&s, SIGUSR2);
    sigaddset(&s, SIGRTMIN);
    sigaddset(&s, SIGRTMIN + 1);
    CHECK(sigprocmask(SIG_BLOCK, &s, NULL) == 0);
    sfd = signalfd(-1, &s, SFD_NONBLOCK | SFD_CLOEXEC);
    CHECK(sfd >= 0);
    struct signalfd_siginfo ss[4];
    printf("empty read: EAGAIN %d\n", read(sfd, ss, sizeof ss) == -1 && errno == EAGAIN);
    printf("short buffer: EINVAL %d\n", read(sfd, ss, 8) == -1 && errno == EINVAL);
    struct pollfd p = {sfd, POLLIN, 0};
    printf("poll empty: %d\n", poll(&p, 1, 0));

    CHECK(kill(getpid(), SIGUSR1) == 0);
    p.revents = 0;
    int pr = poll(&p, 1, 1000);
    printf("poll pending: %d, POLLIN %d\n", pr, (p.revents & POLLIN) != 0);
    ssize_t n = read(sfd, ss, sizeof ss);
    printf("read: %zd bytes, SIGUSR1 %d, SI_USER %d, pid ok %d\n", n, ss[0].ssi_signo == SIGUSR1,
           ss[0].ssi_code == SI_USER, ss[0].ssi_pid == (unsigned)getpid());
    p.revents = 0;
    printf("poll drained: %d\n", poll(&p, 1, 0));

    int ep = epoll_create1(0);
    CHECK(ep >= 0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = sfd};
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev) == 0);
    union sigval v;
    for (int i = 1; i <= 3; i++) {
        v.sival_int = 40 + i;
        CHECK(sigqueue(getpid(), SIGRTMIN, v) == 0);
    }
    struct epoll_event out;
    printf("epoll: %d\n", epoll_wait(ep, &out, 1, 1000));
    n = read(sfd, ss, sizeof ss);
    printf("read: %zd records:", n / (ssize_t)sizeof ss[0]);
    for (int i = 0; i < n / (ssize_t)sizeof ss[0]; i++)
        printf(" %d(SI_QUEUE %d)", ss[i].ssi_int, ss[i].ssi_code == SI_QUEUE);
    printf("\n");
    printf("epoll drained: %d\n", epoll_wait(ep, &out, 1, 0));

    /* A POSIX timer's signal through the signalfd. */
    struct sigevent sev = {0};
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = SIGRTMIN + 1;
    sev.sigev_value.sival_int = 9;
    timer_t t;
    CHECK(timer_create(CLOCK_MONOTONIC, &sev, &t) == 0);
    struct itimerspec its = {{0, 0}, {0, 10000000}};
    CHECK(timer_settime(t, 0, &its, NULL) == 0);
    printf("epoll timer: %d\n", epoll_wait(ep, &out, 1, 5000));
    n = read(sfd, ss, sizeof ss);
    printf("timer: %zd bytes, SI_TIMER %d, tid matches %d, value %d\n", n,
           ss[0].ssi_code == SI_TIMER, ss[0].ssi_tid == (unsigned)(long)t, ss[0].ssi_int);

    /* Blocking read and blocking poll in other threads. */
    sigset_t u2;
    sigemptyset(&u2);
    sigaddset(&u2, SIGUSR2);
    bfd = signalfd(-1, &u2, 0);
    CHECK(bfd >= 0);
    CHECK(pipe(ready) == 0);
    pthread_t th;
    char c;
    CHECK(pthread_create(&th, NULL, blocking_reader, NULL) == 0);
    CHECK(read(ready[0], &c, 1) == 1);
    CHECK(kill(getpid(), SIGUSR2) == 0);
    pthread_join(th, NULL);
    CHECK(pthread_create(&th, NULL, blocking_poller, NULL) == 0);
    CHECK(read(ready[0], &c, 1) == 1);
    CHECK(kill(getpid(), SIGUSR1) == 0);
    pthread_join(th, NULL);
    n = read(sfd, ss, sizeof ss);
    printf("after poll: %zd bytes\n", n);

    /* Changing the mask of an existing signalfd. */
    sigset_t only1;
    sigemptyset(&only1);
    sigaddset(&only1, SIGUSR1);
    printf("remask: same fd %d\n", signalfd(sfd, &only1, 0) == sfd);
    CHECK(kill(getpid(), SIGUSR2) == 0);
    printf("remasked read: EAGAIN %d\n", read(sfd, ss, sizeof ss) == -1 && errno == EAGAIN);
    siginfo_t si;
    struct timespec zero = {0, 0};
    printf("SIGUSR2 still pending %d\n", sigtimedwait(&u2, &si, &zero) == SIGUSR2);

    /* The child inherits the descriptor and reads its own signals. */
    pid_t pid = fork();
    if (pid == 0) {
        kill(getpid(), SIGUSR1);
        ssize_t m = read(sfd, ss, sizeof ss);
        printf("child: %zd bytes, SIGUSR1 %d\n", m, ss[0].ssi_signo == SIGUSR1);
        exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("parent: still empty %d\n", read(sfd, ss, sizeof ss) == -1 && errno == EAGAIN);
    CHECK(close(sfd) == 0);
    printf("closed: EBADF %d\n", read(sfd, ss, sizeof ss) == -1 && errno == EBADF);
    return 0;
}
