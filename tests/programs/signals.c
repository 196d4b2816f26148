/* signals: delivery on the LWK. Usage: signals TEST
 *   segv      SIGSEGV handler recovers with siglongjmp; si_addr is the fault address
 *   raise     raise(SIGUSR1) runs the handler with the right siginfo; masks nest
 *   mask      a blocked signal stays pending until unblocked, then runs once
 *   alarm     alarm(1) interrupts pause() (EINTR) and runs the SIGALRM handler
 *   sleep     a SIGALRM from setitimer interrupts nanosleep with EINTR and rem
 *   readeintr alarm interrupts a read() blocked on a pipe (EINTR, no SA_RESTART)
 *   readrestart  with SA_RESTART the read restarts and gets what the handler wrote
 *   fpu       the handler clobbers xmm registers; the interrupted code keeps its own
 *   pipe      SIGPIPE ignored: write to a closed pipe gives EPIPE
 *   default   raise(SIGTERM) with the default action kills the process
 *   faults    CPU exceptions become signals with Linux's si_code and si_addr:
 *             divide error (SIGFPE), ud2 (SIGILL), int3 (SIGTRAP), a
 *             privileged instruction (SIGSEGV) */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static sigjmp_buf jb;
static volatile void *fault_addr;
static volatile int hits, last_sig, last_code;

static void on_segv(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    last_sig = sig;
    fault_addr = si->si_addr;
    siglongjmp(jb, 1);
}

static void on_sig(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    hits++;
    last_sig = sig;
    last_code = si->si_code;
}

static void install(int sig, void (*h)(int, siginfo_t *, void *), int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = h;
    sa.sa_flags = SA_SIGINFO | flags;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL)) {
        perror("sigaction");
        exit(3);
    }
}

static int t_segv(void)
{
    install(SIGSEGV, on_segv, 0);
    int ok = 0;
    for (int round = 0; round < 3; round++) {
        if (sigsetjmp(jb, 1) == 0) {
            *(volatile int *)(0x1000L + round * 8) = 1;
            printf("no fault?\n");
        } else {
            ok += fault_addr == (void *)(0x1000L + round * 8) && last_sig == SIGSEGV;
        }
    }
    printf("segv recovered %d/3 times\n", ok);
    return ok == 3 ? 0 : 1;
}

static int t_raise(void)
{
    install(SIGUSR1, on_sig, 0);
    raise(SIGUSR1);
    printf("raise: hits=%d sig=%s code=%s\n", hits, last_sig == SIGUSR1 ? "SIGUSR1" : "?",
           last_code == SI_TKILL ? "SI_TKILL" : "other");
    kill(getpid(), SIGUSR1);
    printf("kill: hits=%d code=%s\n", hits, last_code == SI_USER ? "SI_USER" : "other");
    return hits == 2 ? 0 : 1;
}

static int t_mask(void)
{
    install(SIGUSR2, on_sig, 0);
    sigset_t s, old;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR2);
    sigprocmask(SIG_BLOCK, &s, &old);
    raise(SIGUSR2);
    raise(SIGUSR2);
    sigset_t pend;
    sigpending(&pend);
    printf("blocked: hits=%d pending=%d\n", hits, sigismember(&pend, SIGUSR2));
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("unblocked: hits=%d\n", hits);
    return hits == 1 ? 0 : 1;
}

static int t_alarm(void)
{
    install(SIGALRM, on_sig, 0);
    alarm(1);
    int r = pause();
    printf("pause returned %d errno=%s hits=%d sig=%s\n", r, errno == EINTR ? "EINTR" : "?", hits,
           last_sig == SIGALRM ? "SIGALRM" : "?");
    return r == -1 && errno == EINTR && hits == 1 ? 0 : 1;
}

static int t_sleep(void)
{
    install(SIGALRM, on_sig, 0);
    struct itimerval it = {{0, 0}, {0, 200000}};
    setitimer(ITIMER_REAL, &it, NULL);
    struct timespec req = {5, 0}, rem = {0, 0};
    int r = nanosleep(&req, &rem);
    int ok = r == -1 && errno == EINTR && hits == 1 && rem.tv_sec >= 3 && rem.tv_sec <= 5;
    printf("nanosleep interrupted: %s\n", ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}

static int late_fd;
static void *late_writer(void *arg)
{
    (void)arg;
    usleep(300000);
    if (write(late_fd, "z", 1) != 1)
        _exit(8);
    return NULL;
}

static int t_readeintr(void)
{
    int p[2];
    if (pipe(p))
        return 1;
    install(SIGALRM, on_sig, 0); /* no SA_RESTART */
    alarm(1);
    char c;
    ssize_t n = read(p[0], &c, 1);
    printf("read returned %zd errno=%s hits=%d\n", n, errno == EINTR ? "EINTR" : "?", hits);
    int first_ok = n == -1 && errno == EINTR && hits == 1;
    /* The interruption was for that call only: the next blocking read waits
     * for its data. */
    late_fd = p[1];
    pthread_t t;
    pthread_create(&t, NULL, late_writer, NULL);
    n = read(p[0], &c, 1);
    pthread_join(t, NULL);
    printf("next read returned %zd '%c'\n", n, n == 1 ? c : '?');
    return first_ok && n == 1 && c == 'z' ? 0 : 1;
}

static int restart_pipe[2];
static void on_restart(int sig, siginfo_t *si, void *uc)
{
    (void)si;
    (void)uc;
    hits++;
    last_sig = sig;
    if (write(restart_pipe[1], "r", 1) != 1)
        _exit(9);
}

static int t_readrestart(void)
{
    if (pipe(restart_pipe))
        return 1;
    install(SIGALRM, on_restart, SA_RESTART);
    alarm(1);
    char c = 0;
    ssize_t n = read(restart_pipe[0], &c, 1);
    printf("restarted read returned %zd '%c' hits=%d\n", n, c, hits);
    return n == 1 && c == 'r' && hits == 1 ? 0 : 1;
}

static void on_fpu(int sig)
{
    (void)sig;
    hits++;
    __asm__ volatile("pxor %%xmm0, %%xmm0\n pxor %%xmm1, %%xmm1\n pxor %%xmm7, %%xmm7" ::: "xmm0", "xmm1", "xmm7");
}

static int t_fpu(void)
{
    signal(SIGUSR1, on_fpu);
    double a = 1.5, b = 2.25;
    volatile double r = 0;
    for (int i = 0; i < 100; i++) {
        r += a * b;
        if (i % 10 == 0)
            raise(SIGUSR1);
    }
    printf("fpu across handlers: r=%.4f hits=%d\n", r, hits);
    return r == 337.5 && hits == 10 ? 0 : 1;
}

static int t_pipe(void)
{
    signal(SIGPIPE, SIG_IGN);
    int p[2];
    if (pipe(p))
        return 1;
    close(p[0]);
    ssize_t n = write(p[1], "x", 1);
    printf("write to closed pipe: %zd %s\n", n, errno == EPIPE ? "EPIPE" : "?");
    return n == -1 && errno == EPIPE ? 0 : 1;
}

static volatile int fault_code;
static void on_fault(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    last_sig = sig;
    fault_code = si->si_code;
    fault_addr = si->si_addr;
    siglongjmp(jb, 1);
}

extern char fault_ud2[], fault_int3[], fault_div[], fault_hlt[];

static int t_faults(void)
{
    struct sigaction sa = {0};
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO;
    for (int s = 1; s < 32; s++)
        if (s != SIGKILL && s != SIGSTOP)
            sigaction(s, &sa, NULL);
    struct {
        const char *name;
        void *where;
    } cases[] = {{"divide", fault_div}, {"ud2", fault_ud2}, {"int3", fault_int3}, {"hlt", fault_hlt}};
    for (int i = 0; i < 4; i++) {
        last_sig = 0;
        if (!sigsetjmp(jb, 1)) {
            switch (i) {
            case 0:
                __asm__ volatile("xor %%ecx, %%ecx\n\tmov $1, %%eax\n\tcltd\n"
                                 "fault_div: idiv %%ecx" ::: "eax", "ecx", "edx");
                break;
            case 1:
                __asm__ volatile("fault_ud2: ud2");
                break;
            case 2:
                __asm__ volatile("fault_int3: int3");
                break;
            case 3:
                __asm__ volatile("fault_hlt: hlt");
                break;
            }
        }
        const char *addr = fault_addr == cases[i].where ? "at the instruction"
                           : fault_addr == cases[i].where + 1 ? "after the instruction"
                           : fault_addr == NULL ? "null" : "elsewhere";
        printf("%s: %s code %d address %s\n", cases[i].name, strsignal(last_sig), fault_code, addr);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    const char *t = argv[1];
    setvbuf(stdout, NULL, _IONBF, 0);
    if (!strcmp(t, "segv")) return t_segv();
    if (!strcmp(t, "raise")) return t_raise();
    if (!strcmp(t, "mask")) return t_mask();
    if (!strcmp(t, "alarm")) return t_alarm();
    if (!strcmp(t, "sleep")) return t_sleep();
    if (!strcmp(t, "readeintr")) return t_readeintr();
    if (!strcmp(t, "readrestart")) return t_readrestart();
    if (!strcmp(t, "fpu")) return t_fpu();
    if (!strcmp(t, "pipe")) return t_pipe();
    if (!strcmp(t, "faults")) return t_faults();
    if (!strcmp(t, "default")) {
        raise(SIGTERM);
        printf("still alive\n");
        return 0;
    }
    return 2;
}
