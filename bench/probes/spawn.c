/* spawn: fork + exec + wait of a static program that exits at once
 * (/bin/busybox true, present on the host and in the Linux guest).
 * Usage: spawn [COUNT]. Reports min and median in ns. */
#include "probe.h"
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    probe_name = "spawn";
    long n = arg_long(argc, argv, 1, 50);
    int64_t *t = xalloc(sizeof(int64_t) * (size_t)n);
    for (long i = 0; i < n; i++) {
        int64_t t0 = now_ns();
        pid_t c = fork();
        if (c < 0)
            fail("fork: %s", strerror(errno));
        if (c == 0) {
            execl("/bin/busybox", "true", (char *)NULL);
            _exit(127);
        }
        int st;
        if (waitpid(c, &st, 0) != c)
            fail("waitpid: %s", strerror(errno));
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail("child status %#x", st);
        t[i] = now_ns() - t0;
    }
    int64_t med = quantile(t, n, 0.5);
    printf("MARGAY-RESULT probe=spawn min_ns=%lld med_ns=%lld\n", (long long)t[0], (long long)med);
    return 0;
}
