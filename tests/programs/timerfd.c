/* timerfd on the LWK (served by the proxy's Linux timerfd): a blocking
   read waits for the expiry, a nonblocking one is EAGAIN before it, poll
   and epoll see it, and a thread blocked in read does not hold up the
   others. Same output natively. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "check.h"

static int tfd;
static volatile int worked;

static void *reader(void *arg) {
    (void)arg;
    uint64_t n = 0;
    ssize_t r = read(tfd, &n, sizeof n);
    printf("thread read: %zd bytes, expirations >= 1 %d, main ran meanwhile %d\n", r, n >= 1,
           worked);
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    CHECK(fd >= 0);
    uint64_t n;
    printf("unarmed read: EAGAIN %d\n", read(fd, &n, sizeof n) == -1 && errno == EAGAIN);
    struct itimerspec its = {{0, 20000000}, {0, 20000000}}, cur;
    CHECK(timerfd_settime(fd, 0, &its, NULL) == 0);
    CHECK(timerfd_gettime(fd, &cur) == 0);
    printf("gettime: interval 20 ms %d\n", cur.it_interval.tv_nsec == 20000000);
    struct pollfd p = {fd, POLLIN, 0};
    int pr = poll(&p, 1, 5000);
    printf("poll: %d, POLLIN %d\n", pr, (p.revents & POLLIN) != 0);
    CHECK(read(fd, &n, sizeof n) == 8);
    printf("read: expirations >= 1 %d\n", n >= 1);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd}, out;
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);
    printf("epoll: %d\n", epoll_wait(ep, &out, 1, 5000));
    CHECK(read(fd, &n, sizeof n) == 8);
    close(fd);

    /* A blocking read in a thread while the main thread goes on. */
    tfd = timerfd_create(CLOCK_REALTIME, 0);
    CHECK(tfd >= 0);
    struct itimerspec once = {{0, 0}, {0, 300000000}};
    CHECK(timerfd_settime(tfd, 0, &once, NULL) == 0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, reader, NULL) == 0);
    worked = 1;
    pthread_join(th, NULL);
    return 0;
}
