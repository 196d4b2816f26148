/* stress_fork: a fork storm bounded by partition memory, and memory coming
 * back. Usage: stress_fork ROUNDS. Each round forks children that block
 * reading a pipe until fork fails (it must fail with EAGAIN or ENOMEM,
 * never crash anything), then closes the pipe and reaps them all. Free
 * memory (sysinfo, the LWK's page allocator) is read after a first warm-up
 * round and after the last: the figures must match. Prints one line per
 * round and a final verdict line. */
#define _GNU_SOURCE
#include <errno.h>
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

static int storm(int round)
{
    int p[2];
    if (pipe(p) != 0) {
        perror("pipe");
        exit(1);
    }
    int n = 0, err = 0;
    for (;;) {
        pid_t c = fork();
        if (c == 0) {
            char b;
            close(p[1]);
            while (read(p[0], &b, 1) < 0 && errno == EINTR)
                ;
            _exit(0);
        }
        if (c < 0) {
            err = errno;
            break;
        }
        n++;
        if (n > 100000)
            break;
    }
    close(p[0]);
    close(p[1]);
    int reaped = 0, st;
    while (wait(&st) > 0)
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
            reaped++;
    printf("round %d: %d children, then fork failed with %s; %d exited 0\n", round, n,
           err == EAGAIN ? "EAGAIN" : err == ENOMEM ? "ENOMEM" : strerror(err), reaped);
    return (err == EAGAIN || err == ENOMEM) && reaped == n && n > 0;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 3;
    setvbuf(stdout, NULL, _IONBF, 0);
    int ok = storm(0);
    unsigned long long before = free_bytes();
    for (int r = 1; r <= rounds; r++)
        ok &= storm(r);
    unsigned long long after = free_bytes();
    printf("free memory after the warm-up round %llu KiB, after %d more rounds %llu KiB\n",
           before / 1024, rounds, after / 1024);
    printf("fork storm: %s\n", ok && after == before ? "ok" : "FAILED");
    return !(ok && after == before);
}
