/* spawn: fork + exec + wait of a program, timed from fork to the end of wait.
 * Usage: spawn NAME COUNT PATH ARGV0 [ARGS...]: the result line is reported
 * as probe NAME ("spawn" runs /bin/busybox true, "pystart" runs
 * /usr/bin/python3 -c pass; both exist on the host and in the Linux guest).
 * Reports min and median in ns. */
#include "probe.h"
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: spawn NAME COUNT PATH ARGV0 [ARGS...]\n");
        return 2;
    }
    probe_name = argv[1];
    long n = arg_long(argc, argv, 2, 50);
    const char *path = argv[3];
    char **child_argv = argv + 4;
    int64_t *t = xalloc(sizeof(int64_t) * (size_t)n);
    for (long i = 0; i < n; i++) {
        int64_t t0 = now_ns();
        pid_t c = fork();
        if (c < 0)
            fail("fork: %s", strerror(errno));
        if (c == 0) {
            execv(path, child_argv);
            _exit(127);
        }
        int st;
        if (waitpid(c, &st, 0) != c)
            fail("waitpid: %s", strerror(errno));
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail("%s: child status %#x", path, st);
        t[i] = now_ns() - t0;
    }
    int64_t med = quantile(t, n, 0.5);
    int64_t min = quantile(t, n, 0.0);
    printf("MARGAY-RESULT probe=%s min_ns=%lld med_ns=%lld\n", probe_name, (long long)min,
           (long long)med);
    return 0;
}
