/* stress_exit: memory a process held comes back however it ends. Usage:
 * stress_exit ROUNDS [WAYS]. Each round forks children that end in every way:
 * _exit, exit_group from a second thread, a fault (SIGSEGV, no handler),
 * raise(SIGTERM) (default action), SIGKILL from the parent while blocked
 * in read, and a handled signal followed by exit. Free memory (sysinfo)
 * after a warm-up round must equal the figure after the last. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <unistd.h>

static unsigned long long free_bytes(void)
{
    struct sysinfo si;
    if (sysinfo(&si) != 0)
        return 0;
    return (unsigned long long)si.freeram * si.mem_unit;
}

static void on_usr1(int sig) { (void)sig; }

static void *exit_group_thread(void *arg)
{
    (void)arg;
    exit(0);
}

static void blocker(int fd)
{
    char b;
    for (;;)
        if (read(fd, &b, 1) <= 0)
            pause();
}

static int ways = 0x3f; /* which ways to end (bit n: way n), argv[2] */

/* One child per way to end; returns how many ended as expected. */
static int round_(void)
{
    int ok = 0, p[2];
    if (pipe(p) != 0)
        return 0;
    for (int way = 0; way < 6; way++) {
        if (!(ways & (1 << way))) {
            ok++;
            continue;
        }
        pid_t c = fork();
        if (c == 0) {
            switch (way) {
            case 0:
                _exit(0);
            case 1: {
                pthread_t t;
                pthread_create(&t, NULL, exit_group_thread, NULL);
                pause();
                _exit(1);
            }
            case 2:
                signal(SIGSEGV, SIG_DFL);
                *(volatile int *)0 = 1;
                _exit(1);
            case 3:
                raise(SIGTERM);
                _exit(1);
            case 4:
                close(p[1]);
                blocker(p[0]);
                _exit(1);
            default:
                signal(SIGUSR1, on_usr1);
                raise(SIGUSR1);
                _exit(0);
            }
        }
        if (c < 0)
            continue;
        if (way == 4) {
            /* It has closed its copy of the write end once... no handshake
             * is needed: SIGKILL ends it wherever it is. */
            kill(c, SIGKILL);
        }
        int st;
        if (waitpid(c, &st, 0) != c)
            continue;
        int want_sig[] = {0, 0, SIGSEGV, SIGTERM, SIGKILL, 0};
        if (want_sig[way] ? WIFSIGNALED(st) && WTERMSIG(st) == want_sig[way]
                          : WIFEXITED(st) && WEXITSTATUS(st) == 0)
            ok++;
        else
            printf("way %d: status %#x\n", way, st);
    }
    close(p[0]);
    close(p[1]);
    return ok;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 10;
    if (argc > 2)
        ways = (int)strtol(argv[2], NULL, 0);
    setvbuf(stdout, NULL, _IONBF, 0);
    int ok = round_() == 6;
    unsigned long long before = free_bytes();
    for (int r = 0; r < rounds; r++)
        ok &= round_() == 6;
    unsigned long long after = free_bytes();
    printf("free memory after the warm-up round %llu KiB, after %d more rounds %llu KiB\n",
           before / 1024, rounds, after / 1024);
    printf("exit paths: %s\n", ok && after == before ? "ok" : "FAILED");
    return !(ok && after == before);
}
