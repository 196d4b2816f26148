/* execchain: execve in place. "execchain N" prints its step, keeps a
 * close-on-exec descriptor and a plain one open, then execs itself with N-1;
 * at 0 it reports which descriptors survived and execs busybox echo. A
 * missing program gives ENOENT and the caller carries on. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 3;
    printf("step %d pid-same=%d\n", n, getenv("EXEC_PID") ? atoi(getenv("EXEC_PID")) == getpid() : 1);
    fflush(stdout);
    char pid[32];
    snprintf(pid, sizeof pid, "%d", getpid());
    setenv("EXEC_PID", pid, 1);
    if (n == 3) {
        char *bad[] = {"/nonexistent/program", NULL};
        execve(bad[0], bad, environ);
        printf("missing program: %s\n", errno == ENOENT ? "ENOENT" : "other");
        int keep = open("/dev/null", O_RDONLY);            /* fd 3, survives */
        int gone = open("/dev/null", O_RDONLY | O_CLOEXEC); /* fd 4, closed by exec */
        printf("opened %d %d\n", keep, gone);
        fflush(stdout);
    }
    if (n > 0) {
        char next[16];
        snprintf(next, sizeof next, "%d", n - 1);
        char *args[] = {"/proc/self/exe", next, NULL};
        char self[4096];
        ssize_t l = readlink("/proc/self/exe", self, sizeof self - 1);
        if (l < 0)
            return 3;
        self[l] = 0;
        args[0] = self;
        execve(self, args, environ);
        perror("execve");
        return 4;
    }
    printf("fd 3 %s, fd 4 %s\n", fcntl(3, F_GETFD) >= 0 ? "open" : "closed",
           fcntl(4, F_GETFD) >= 0 ? "open" : "closed");
    fflush(stdout);
    char *echo[] = {"echo", "exec'd busybox says hi", NULL};
    execve("/bin/busybox", echo, environ);
    perror("execve busybox");
    return 5;
}
