/* hostsig: catches SIGINT and SIGTERM sent from Linux (to its pid, or to
 * margay from the terminal): first while busy in user mode without syscalls,
 * then while blocked in pause(). Prints its pid, then what it caught; exits 7. */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

static volatile sig_atomic_t hits;
static volatile sig_atomic_t sigs[2];

static void h(int s)
{
    if (hits < 2)
        sigs[hits] = s;
    hits++;
}

int main(void)
{
    signal(SIGINT, h);
    signal(SIGTERM, h);
    printf("ready %d\n", getpid());
    fflush(stdout);
    volatile unsigned long x = 0;
    while (hits < 1) /* busy: no syscalls, needs the NMI path */
        x++;
    printf("caught %d\n", sigs[0]);
    fflush(stdout);
    while (hits < 2) /* blocked in the kernel */
        pause();
    printf("caught %d\n", sigs[1]);
    return 7;
}
