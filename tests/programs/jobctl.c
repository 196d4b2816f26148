/* Stop and continue: what job control needs from the kernel. Each mode prints
 * lines that must match a native run.
 *   stopcont  - a child stopped by SIGSTOP makes no progress until SIGCONT;
 *               the parent sees WIFSTOPPED / WIFCONTINUED; the child's SIGCONT
 *               handler runs; SIGTERM then ends it
 *   tstp      - a child stops itself with raise(SIGTSTP), is continued, and exits 7
 *   handler   - SIGTSTP with a handler runs the handler and does not stop
 *   threads   - every thread of a stopped child stops, not only one
 *   sleep     - a nanosleep spanning a stop and continue ends normally (no EINTR)
 *   read      - a read from a pipe spanning a stop and continue gets its data (no EINTR)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what)
{
    printf("FAIL %s: %s\n", what, strerror(errno));
    exit(1);
}

static void msleep(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Bytes readable now from a non-blocking pipe. */
static long drain(int fd)
{
    char buf[4096];
    long n = 0;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r <= 0)
            return n;
        n += r;
    }
}

static void report(const char *what, int st)
{
    if (WIFSTOPPED(st))
        printf("%s: stopped by %s\n", what, strsignal(WSTOPSIG(st)));
    else if (WIFCONTINUED(st))
        printf("%s: continued\n", what);
    else if (WIFEXITED(st))
        printf("%s: exited %d\n", what, WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        printf("%s: killed by %s\n", what, strsignal(WTERMSIG(st)));
}

static int waitfor(pid_t c, int flags, const char *what)
{
    int st;
    if (waitpid(c, &st, flags) != c)
        die("waitpid");
    report(what, st);
    return st;
}

static volatile sig_atomic_t got_cont;
static void on_cont(int s)
{
    (void)s;
    got_cont = 1;
}

static int out_fd;
static void *ticker(void *arg)
{
    (void)arg;
    for (;;) {
        for (volatile long i = 0; i < 200000; i++) {
        }
        if (write(out_fd, "t", 1) != 1)
            _exit(3);
    }
    return NULL;
}

/* A child that keeps writing to `fd` (from `nthreads` threads busy in user
 * mode, or from its main thread between short sleeps). */
static pid_t start_writer(int fd, int nthreads)
{
    pid_t c = fork();
    if (c < 0)
        die("fork");
    if (c > 0)
        return c;
    struct sigaction sa = {0};
    sa.sa_handler = on_cont;
    sigaction(SIGCONT, &sa, NULL);
    out_fd = fd;
    for (int i = 0; i < nthreads; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, ticker, NULL) != 0)
            _exit(4);
    }
    for (;;) {
        if (got_cont) {
            got_cont = 0;
            if (write(fd, "C", 1) != 1)
                _exit(3);
        }
        if (nthreads == 0 && write(fd, "w", 1) != 1)
            _exit(3);
        msleep(5);
    }
}

static void stop_and_check(int nthreads)
{
    int p[2];
    if (pipe(p) != 0)
        die("pipe");
    pid_t c = start_writer(p[1], nthreads);
    close(p[1]);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    msleep(100);
    printf("before stop: output %s\n", drain(p[0]) > 0 ? "flows" : "missing");
    kill(c, SIGSTOP);
    waitfor(c, WUNTRACED, "after SIGSTOP");
    msleep(50);
    drain(p[0]); /* whatever was in flight */
    msleep(300);
    printf("while stopped: %s\n", drain(p[0]) == 0 ? "no output" : "output (wrong)");
    kill(c, SIGCONT);
    waitfor(c, WCONTINUED, "after SIGCONT");
    /* The handler's mark comes first, then the output flows again. */
    char ch = 0;
    for (int i = 0; i < 400 && ch != 'C'; i++) {
        if (read(p[0], &ch, 1) != 1)
            msleep(5);
    }
    printf("SIGCONT handler: %s\n", ch == 'C' ? "ran" : "did not run");
    msleep(100);
    printf("after continue: output %s\n", drain(p[0]) > 0 ? "flows" : "missing");
    kill(c, SIGTERM);
    waitfor(c, 0, "after SIGTERM");
}

static void tstp(void)
{
    pid_t c = fork();
    if (c < 0)
        die("fork");
    if (c == 0) {
        raise(SIGTSTP);
        _exit(7);
    }
    waitfor(c, WUNTRACED, "child");
    kill(c, SIGCONT);
    waitfor(c, 0, "child");
}

static volatile sig_atomic_t got_tstp;
static void on_tstp(int s)
{
    (void)s;
    got_tstp = 1;
}

static void handler(void)
{
    int p[2];
    if (pipe(p) != 0)
        die("pipe");
    pid_t c = fork();
    if (c < 0)
        die("fork");
    if (c == 0) {
        struct sigaction sa = {0};
        sa.sa_handler = on_tstp;
        sigaction(SIGTSTP, &sa, NULL);
        if (write(p[1], "r", 1) != 1)
            _exit(3);
        while (!got_tstp)
            msleep(5);
        _exit(5);
    }
    char ch;
    if (read(p[0], &ch, 1) != 1)
        die("read");
    kill(c, SIGTSTP);
    waitfor(c, WUNTRACED, "child");
}

static void sleep_across(void)
{
    pid_t c = fork();
    if (c < 0)
        die("fork");
    if (c == 0) {
        struct timespec ts = {0, 600000000L};
        int r = nanosleep(&ts, NULL);
        _exit(r == 0 ? 0 : 10 + errno);
    }
    msleep(100);
    kill(c, SIGSTOP);
    waitfor(c, WUNTRACED, "sleeper");
    msleep(200);
    kill(c, SIGCONT);
    waitfor(c, 0, "sleeper");
}

static void read_across(void)
{
    int p[2];
    if (pipe(p) != 0)
        die("pipe");
    pid_t c = fork();
    if (c < 0)
        die("fork");
    if (c == 0) {
        close(p[1]);
        char buf[8] = {0};
        ssize_t r = read(p[0], buf, sizeof buf - 1);
        if (r < 0)
            _exit(10 + errno);
        _exit(strcmp(buf, "data") == 0 ? 0 : 9);
    }
    close(p[0]);
    msleep(100);
    kill(c, SIGSTOP);
    waitfor(c, WUNTRACED, "reader");
    kill(c, SIGCONT);
    waitfor(c, WCONTINUED, "reader");
    msleep(100);
    if (write(p[1], "data", 4) != 4)
        die("write");
    waitfor(c, 0, "reader");
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *mode = argc > 1 ? argv[1] : "stopcont";
    if (!strcmp(mode, "stopcont"))
        stop_and_check(0);
    else if (!strcmp(mode, "threads"))
        stop_and_check(2);
    else if (!strcmp(mode, "tstp"))
        tstp();
    else if (!strcmp(mode, "handler"))
        handler();
    else if (!strcmp(mode, "sleep"))
        sleep_across();
    else if (!strcmp(mode, "read"))
        read_across();
    else {
        printf("unknown mode %s\n", mode);
        return 2;
    }
    return 0;
}
