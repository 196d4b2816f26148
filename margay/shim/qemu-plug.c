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
 *
 * A plugged file can also shrink while the guest maps it (a truncate by an
 * LWK process, or by any Linux process). QEMU then dies of SIGBUS at the
 * guest's next access to a page past the new end, and the partition with
 * it. The library catches that SIGBUS (BUS_ADRERR at an address of a file
 * mapping) and puts a private zero page in place of the lost one, with one
 * line on stderr: the partition goes on, and the LWK process reads zeros
 * where Linux would have sent it SIGBUS.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
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

/* QEMU's own SIGBUS handler (memory-failure reports), which ours runs for
 * every other SIGBUS. */
static struct sigaction qemu_sigbus;
static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);

static void on_sigbus(int sig, siginfo_t *si, void *ctx)
{
    static const char msg[] = "margay: a file mapped shared on the LWK shrank under its mapping; "
                              "its pages past the new end read as zero there (Linux would raise "
                              "SIGBUS)\n";
    static volatile sig_atomic_t said;
    if (sig == SIGBUS && si->si_code == BUS_ADRERR && si->si_addr) {
        void *page = (void *)((uintptr_t)si->si_addr & ~(uintptr_t)(PAGE - 1));
        void *r = mmap(page, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                       -1, 0);
        if (r == page) {
            if (!said) {
                said = 1;
                ssize_t n = write(2, msg, sizeof msg - 1);
                (void)n;
            }
            return;
        }
    }
    if (qemu_sigbus.sa_flags & SA_SIGINFO && qemu_sigbus.sa_sigaction) {
        qemu_sigbus.sa_sigaction(sig, si, ctx);
        return;
    }
    if (!(qemu_sigbus.sa_flags & SA_SIGINFO) && qemu_sigbus.sa_handler != SIG_DFL &&
        qemu_sigbus.sa_handler != SIG_IGN && qemu_sigbus.sa_handler) {
        qemu_sigbus.sa_handler(sig);
        return;
    }
    signal(SIGBUS, SIG_DFL);
    raise(SIGBUS);
}

/* QEMU's threads block every signal but SIGSEGV, SIGFPE and SIGILL; a
 * fault's SIGBUS in a thread that blocks it kills the process, so SIGBUS
 * is never blocked. */
int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
    static int (*real)(int, const sigset_t *, sigset_t *);
    if (!real)
        real = (int (*)(int, const sigset_t *, sigset_t *))dlsym(RTLD_NEXT, "pthread_sigmask");
    if (set && (how == SIG_BLOCK || how == SIG_SETMASK)) {
        sigset_t copy = *set;
        sigdelset(&copy, SIGBUS);
        return real(how, &copy, old);
    }
    return real(how, set, old);
}

/* QEMU installs its SIGBUS handler after start-up: keep ours first. */
int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    if (!real_sigaction)
        real_sigaction = (int (*)(int, const struct sigaction *, struct sigaction *))dlsym(
            RTLD_NEXT, "sigaction");
    if (sig == SIGBUS && act) {
        if (old)
            *old = qemu_sigbus;
        qemu_sigbus = *act;
        return 0;
    }
    return real_sigaction(sig, act, old);
}

__attribute__((constructor)) static void install_sigbus(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    if (!real_sigaction)
        real_sigaction = (int (*)(int, const struct sigaction *, struct sigaction *))dlsym(
            RTLD_NEXT, "sigaction");
    real_sigaction(SIGBUS, &sa, NULL);
}
