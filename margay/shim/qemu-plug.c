/* Preloaded into QEMU by margay (LD_PRELOAD): lets QEMU map the last, partial
 * page of a host file that margay plugs into guest memory for a shared file
 * mapping.
 *
 * QEMU 7.2 refuses a memory-backend-file larger than its file, so a file
 * whose size is not a multiple of 4 KiB (a 32-byte POSIX semaphore, a
 * 100-byte /dev/shm segment) could not be plugged, although Linux maps such
 * a file's last page whole (the bytes past the end read as zero and are not
 * written back). QEMU asks a backend file's size with lseek(fd, 0, SEEK_END)
 * only; for the descriptors QEMU opened from margay's own `/proc/PID/fd/N`
 * paths (which is how margay names every plugged file, and nothing else QEMU
 * opens is named so), that answer is rounded up to a whole page. Nothing
 * else changes: the file keeps its size, and QEMU maps the same page-cache
 * pages every Linux process sees.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_FD 4096
#define PAGE 4096

static unsigned char plugged[MAX_FD];

/* "/proc/<digits>/fd/<digits>" */
static int is_plug_path(const char *p)
{
    const char *pre = "/proc/";
    for (; *pre; pre++, p++)
        if (*p != *pre)
            return 0;
    if (*p < '0' || *p > '9')
        return 0;
    while (*p >= '0' && *p <= '9')
        p++;
    pre = "/fd/";
    for (; *pre; pre++, p++)
        if (*p != *pre)
            return 0;
    if (*p < '0' || *p > '9')
        return 0;
    while (*p >= '0' && *p <= '9')
        p++;
    return *p == '\0';
}

static void note(int fd, const char *path)
{
    if (fd >= 0 && fd < MAX_FD)
        plugged[fd] = path && is_plug_path(path);
}

int open64(const char *path, int flags, ...)
{
    static int (*real)(const char *, int, ...);
    mode_t mode = 0;
    if (flags & (O_CREAT | __O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    if (!real)
        real = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open64");
    int fd = real(path, flags, mode);
    note(fd, path);
    return fd;
}

int open(const char *path, int flags, ...) __attribute__((alias("open64")));

int __open64_2(const char *path, int flags)
{
    return open64(path, flags);
}

int close(int fd)
{
    static int (*real)(int);
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "close");
    if (fd >= 0 && fd < MAX_FD)
        plugged[fd] = 0;
    return real(fd);
}

off64_t lseek64(int fd, off64_t off, int whence)
{
    static off64_t (*real)(int, off64_t, int);
    if (!real)
        real = (off64_t(*)(int, off64_t, int))dlsym(RTLD_NEXT, "lseek64");
    off64_t r = real(fd, off, whence);
    if (r > 0 && whence == SEEK_END && off == 0 && fd >= 0 && fd < MAX_FD && plugged[fd])
        r = (r + PAGE - 1) / PAGE * PAGE;
    return r;
}

off_t lseek(int fd, off_t off, int whence) __attribute__((alias("lseek64")));
