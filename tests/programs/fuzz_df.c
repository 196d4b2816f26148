/* fuzz_df: regression program for a bug the fuzzer found. User code may set
 * the direction flag (std); an interrupt or exception keeps it, and a
 * kernel whose entry path did not clear it ran its memcpy/memset backwards
 * (a random rt_sigreturn frame with DF set, then a page fault, corrupted
 * the kernel). Here: faults taken with DF set (a SIGSEGV handler jumps back
 * out), and loops with DF set long enough for timer interrupts. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static sigjmp_buf back;
static volatile int faults, bad_info;

/* The kernel built this frame with DF set in the interrupted context: its
 * siginfo must still say SIGSEGV at address 0. */
static void on_segv(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    faults++;
    if (sig != SIGSEGV || si->si_signo != SIGSEGV || si->si_addr != NULL)
        bad_info++;
    siglongjmp(back, 1);
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    for (int i = 0; i < 200; i++) {
        if (sigsetjmp(back, 1) == 0)
            __asm__ volatile("std\n\tmovq 0, %%rax\n\tcld" ::: "rax", "memory", "cc");
    }
    /* Children that die of a fault taken with DF set (the kernel ends the
     * process: frees its memory, tells the proxy), while a sibling spins
     * with DF set (timer interrupts, context switches). */
    int killed = 0;
    for (int i = 0; i < 20; i++) {
        pid_t spinner = fork();
        if (spinner == 0) {
            unsigned long n = 50 * 1000 * 1000;
            __asm__ volatile("std\n1:\tdec %0\n\tjnz 1b\n\tcld" : "+r"(n)::"cc");
            _exit(0);
        }
        pid_t p = fork();
        if (p == 0) {
            signal(SIGSEGV, SIG_DFL);
            __asm__ volatile("std\n\tmovq 0, %%rax" ::: "rax", "memory", "cc");
            _exit(1);
        }
        int st;
        if (waitpid(p, &st, 0) == p && WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV)
            killed++;
        waitpid(spinner, &st, 0);
    }
    printf("df: %d faults handled (%d with a wrong siginfo), %d children killed by SIGSEGV\n",
           faults, bad_info, killed);
    return 0;
}
