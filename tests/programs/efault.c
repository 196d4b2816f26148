/* efault: bad user pointers passed to syscalls must give EFAULT, not a crash. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *ename(int e)
{
    switch (e) {
    case 0: return "0";
    case EFAULT: return "EFAULT";
    case EINVAL: return "EINVAL";
    case EBADF: return "EBADF";
    case ENOENT: return "ENOENT";
    case ENOSYS: return "ENOSYS";
    case EAGAIN: return "EAGAIN";
    default: return "other";
    }
}

static int bad = 0;

/* Launder an address through a volatile so the compiler neither warns about
 * nor optimizes the deliberately bad pointers. */
static void *addr(uintptr_t v)
{
    volatile uintptr_t x = v;
    return (void *)x;
}

static void report(const char *what, long r, int e)
{
    printf("%s = %ld %s\n", what, r, ename(e));
    if (!(r == -1 && e == EFAULT))
        bad++;
}

int main(void)
{
    long r;
    int e;

    /* Flush nothing buffered yet; the bad write goes straight to fd 1. */
    errno = 0;
    r = write(1, addr(0x10), 10);
    e = errno;
    report("write(1, 0x10, 10)", r, e);

    /* read(0, 1, 10): make fd 0 a pipe with data so the read does not block
     * and the failure can only come from the destination pointer. */
    int p[2];
    if (pipe(p) != 0 || write(p[1], "0123456789", 10) != 10 || dup2(p[0], 0) != 0) {
        printf("setup failed: %s\n", strerror(errno));
        return 1;
    }
    errno = 0;
    r = read(0, addr(1), 10);
    e = errno;
    report("read(0, 0x1, 10)", r, e);

    errno = 0;
    r = open((const char *)addr(1), O_RDONLY);
    e = errno;
    report("open(0x1, O_RDONLY)", r, e);

    errno = 0;
    r = syscall(SYS_stat, "/", addr(0x10));
    e = errno;
    report("stat(\"/\", 0x10)", r, e);

    errno = 0;
    r = syscall(SYS_fstat, 1, addr(0x10));
    e = errno;
    report("fstat(1, 0x10)", r, e);

    errno = 0;
    r = syscall(SYS_clock_gettime, CLOCK_MONOTONIC, addr(0x10));
    e = errno;
    report("clock_gettime(CLOCK_MONOTONIC, 0x10)", r, e);

    errno = 0;
    r = syscall(SYS_gettimeofday, addr(0x10), NULL);
    e = errno;
    report("gettimeofday(0x10, NULL)", r, e);

    /* A pointer into the kernel half must fail too. */
    errno = 0;
    r = write(1, addr(0xffffffff80000000UL), 10);
    e = errno;
    report("write(1, kernel address, 10)", r, e);

    /* Still alive, and a good write still works. */
    printf("still alive, %d unexpected results\n", bad);
    return bad ? 1 : 0;
}
