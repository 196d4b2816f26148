/* enosys: unknown syscall numbers must fail with ENOSYS. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *ename(int e)
{
    switch (e) {
    case 0: return "0";
    case ENOSYS: return "ENOSYS";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case EPERM: return "EPERM";
    default: return "other";
    }
}

static int try(long nr)
{
    errno = 0;
    long r = syscall(nr, 0L, 0L, 0L, 0L, 0L, 0L);
    int e = errno;
    printf("syscall(%ld) = %ld errno=%s\n", nr, r, ename(e));
    return r == -1 && e == ENOSYS;
}

int main(void)
{
    int ok = 1;
    ok &= try(1000);
    ok &= try(500);
    ok &= try(100000);
    /* Still alive and well afterwards. */
    printf("getpid works: %s\n", syscall(SYS_getpid) > 0 ? "yes" : "no");
    return ok ? 0 : 1;
}
