/* A process's alarm belongs to it: the parent sets alarm(1), forks a child
   that computes until the parent tells it to stop, and waits in pause();
   SIGALRM must wake the parent (not hit the child, whatever core runs it),
   and the child starts with no alarm of its own (Linux clears it on fork). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got_alarm;

static void on_alarm(int sig) {
    (void)sig;
    got_alarm = 1;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void) {
    int stop[2], ready[2];
    if (pipe(stop) != 0 || pipe(ready) != 0) {
        perror("pipe");
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    alarm(1);
    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return 1;
    }
    if (child == 0) {
        /* The child's own alarm: none (alarm(0) returns what was left). */
        unsigned left = alarm(0);
        fcntl(stop[0], F_SETFL, O_NONBLOCK);
        if (write(ready[1], &left, sizeof left) != sizeof left)
            _exit(3);
        /* Compute until told to stop (bounded: 60 s at most). */
        volatile unsigned long x = 0;
        double t0 = now();
        char c;
        for (;;) {
            for (int i = 0; i < 100000; i++)
                x += (unsigned long)i * 7;
            if (read(stop[0], &c, 1) == 1)
                _exit(got_alarm ? 2 : 0);
            if (now() - t0 > 60)
                _exit(4);
        }
    }
    unsigned left;
    if (read(ready[0], &left, sizeof left) != sizeof left) {
        perror("read");
        return 1;
    }
    printf("child alarm after fork: %u\n", left);
    int r = pause();
    int e = errno;
    printf("pause: %d (%s), SIGALRM handled: %d\n", r, e == EINTR ? "EINTR" : "other", (int)got_alarm);
    if (write(stop[1], "x", 1) != 1)
        perror("write");
    int status;
    if (waitpid(child, &status, 0) != child) {
        perror("waitpid");
        return 1;
    }
    if (WIFEXITED(status))
        printf("child exited %d\n", WEXITSTATUS(status));
    else
        printf("child killed by signal %d\n", WTERMSIG(status));
    return 0;
}
