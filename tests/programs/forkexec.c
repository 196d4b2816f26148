/* forkexec: processes on the LWK, compared with a native run.
 *   chain      fork/exec/wait chains: each child execs this program one level
 *              deeper, exit statuses come back through wait
 *   pipe       a pipe between parent and child (both directions of data)
 *   sigchld    SIGCHLD reaches the parent's handler when a child exits
 *   mask       the signal mask is inherited across fork (and exec)
 *   signaled   a child killed by a signal is reported by wait as such
 *   threadexec a multi-threaded process executes a program: its other
 *              threads (busy, sleeping, waiting on a futex) go away
 *   threadexit a multi-threaded child calls exit while its threads run */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t chld;
static void on_chld(int s) { (void)s; chld++; }

static int chain(char *self, int depth)
{
    if (depth == 0)
        return 40;
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        char d[16];
        snprintf(d, sizeof d, "%d", depth - 1);
        execl(self, self, "chain", d, (char *)NULL);
        _exit(127);
    }
    int st;
    if (waitpid(c, &st, 0) != c || !WIFEXITED(st))
        return 99;
    printf("depth %d: child exited %d\n", depth, WEXITSTATUS(st));
    return WEXITSTATUS(st) + 1;
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void *spinner(void *arg)
{
    (void)arg;
    for (volatile unsigned long i = 0;; i++) {
    }
    return NULL;
}

static void *sleeper(void *arg)
{
    (void)arg;
    for (;;)
        sleep(10);
    return NULL;
}

static void *blocker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock); /* held by main: waits on the futex */
    return NULL;
}

static void start_threads(void)
{
    pthread_t t;
    pthread_mutex_lock(&lock);
    void *(*fns[3])(void *) = {spinner, sleeper, blocker};
    for (int i = 0; i < 3; i++)
        if (pthread_create(&t, NULL, fns[i], NULL) != 0)
            exit(3);
    usleep(100000);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *t = argc > 1 ? argv[1] : "";
    if (!strcmp(t, "chain"))
        return chain(argv[0], argc > 2 ? atoi(argv[2]) : 3);
    if (!strcmp(t, "pipe")) {
        int down[2], up[2];
        if (pipe(down) || pipe(up))
            return 1;
        pid_t c = fork();
        if (c == 0) {
            char buf[64] = {0};
            ssize_t n = read(down[0], buf, sizeof buf - 1);
            for (ssize_t i = 0; i < n; i++)
                buf[i] = buf[i] >= 'a' && buf[i] <= 'z' ? buf[i] - 32 : buf[i];
            if (write(up[1], buf, n) != n)
                _exit(2);
            _exit(0);
        }
        if (write(down[1], "through the pipe", 16) != 16)
            return 1;
        char back[64] = {0};
        ssize_t n = read(up[0], back, sizeof back - 1);
        int st;
        waitpid(c, &st, 0);
        printf("parent read %zd bytes: %s (child status %d)\n", n, back, WEXITSTATUS(st));
        return 0;
    }
    if (!strcmp(t, "sigchld")) {
        signal(SIGCHLD, on_chld);
        pid_t c = fork();
        if (c == 0)
            _exit(5);
        while (!chld)
            pause();
        int st;
        waitpid(c, &st, 0);
        printf("SIGCHLD seen, child exit %d\n", WEXITSTATUS(st));
        return 0;
    }
    if (!strcmp(t, "mask")) {
        sigset_t s, got;
        sigemptyset(&s);
        sigaddset(&s, SIGUSR1);
        sigaddset(&s, SIGTERM);
        sigprocmask(SIG_BLOCK, &s, NULL);
        pid_t c = fork();
        if (c == 0) {
            sigprocmask(SIG_BLOCK, NULL, &got);
            _exit(sigismember(&got, SIGUSR1) && sigismember(&got, SIGTERM) ? 0 : 1);
        }
        int st;
        waitpid(c, &st, 0);
        printf("mask inherited across fork: %s\n", WEXITSTATUS(st) == 0 ? "yes" : "NO");
        return WEXITSTATUS(st);
    }
    if (!strcmp(t, "threadexec")) {
        start_threads();
        execl("/bin/busybox", "echo", "exec from a threaded process", (char *)NULL);
        printf("execl: %s\n", strerror(errno));
        return 1;
    }
    if (!strcmp(t, "threadexit")) {
        pid_t c = fork();
        if (c == 0) {
            start_threads();
            exit(6);
        }
        int st;
        waitpid(c, &st, 0);
        printf("child exited %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        return 0;
    }
    if (!strcmp(t, "signaled")) {
        pid_t c = fork();
        if (c == 0) {
            raise(SIGTERM);
            _exit(0);
        }
        int st;
        waitpid(c, &st, 0);
        printf("child %s by signal %d\n", WIFSIGNALED(st) ? "killed" : "not killed",
               WIFSIGNALED(st) ? WTERMSIG(st) : 0);
        return 0;
    }
    return 2;
}
