/* fuzz: the in-LWK system-call fuzzer. Usage:
 *
 *     fuzz SEED CHILDREN CALLS [PARALLEL [DEADLINE_S]]
 *
 * The parent makes a scratch directory under $TMPDIR (or /tmp), moves into
 * it and forks CHILDREN children, PARALLEL at a time (default 2). Child i
 * seeds its generator with (SEED, i) and issues CALLS random system calls
 * with hostile arguments: NULL, unmapped, kernel-half and non-canonical
 * pointers, pointers to the edge of a read-only or PROT_NONE page, huge and
 * negative lengths, random flags and numbers. Children may die of signals
 * (a random sigreturn frame, a handler at a random address, MAP_FIXED over
 * their own scratch); that is their own business. A child still running
 * DEADLINE_S seconds (default 10) after it started is killed with SIGKILL
 * by the parent ("stuck": blocked in a call it asked for, e.g. a futex wait
 * with no waker). The parent prints one line
 *
 *     fuzz: seed S: N calls in C children: E exited, K killed by signals, H stuck
 *
 * and exits 0. The kernel must survive all of it: no panic, no hang.
 *
 * What it never does (calls that would harm the host through the proxy,
 * which runs offloaded calls as the user who started margay):
 *   - file-system calls outside the scratch directory: every path argument
 *     is one of a few relative names (POOL) or a hostile pointer, and calls
 *     that change the directory or the root (chdir, fchdir, chroot,
 *     pivot_root) or make symbolic links (symlink, symlinkat: a link to ".."
 *     would lead out) are never made;
 *   - file descriptors it did not open: fd arguments are its own (tracked)
 *     or invalid (-1, huge), never the proxy's;
 *   - signals to anything but itself (kill, tkill, tgkill only with its own
 *     pid/tid; never kill(0) or kill(-1));
 *   - host-wide state: reboot, kexec, mount/umount, swapon/off, module
 *     loading, clock_settime/settimeofday/adjtimex, sethostname/domainname,
 *     acct, quotactl, iopl/ioperm, syslog, ptrace, process_vm_*, perf,
 *     bpf, setuid/setgid and friends, setgroups (identity of the proxy), setsid and
 *     setpgid, setpriority/sched_setscheduler/sched_setattr (real-time
 *     priority on the host), mlock/mlockall, prctl, prlimit64 on another
 *     pid, network sockets;
 *   - memory calls that move or remove memory (munmap, mremap, MAP_FIXED,
 *     madvise, mprotect) aim at an arena of its own, or at a hostile
 *     address, never at its code, stack or the counters it shares with the
 *     parent (so children live long enough to be useful).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- generator (xorshift64*) ---- */
static uint64_t rng;
static uint64_t r64(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1DULL;
}
static uint64_t below(uint64_t n) { return n ? r64() % n : 0; }
static int chance(int pct) { return (int)below(100) < pct; }

/* ---- the child's own things ---- */
#define ARENA ((uint64_t)0x200000000000ULL) /* 1 GiB the child may wreck */
#define ARENA_LEN ((uint64_t)1 << 30)
#define SCRATCH_LEN (64 * 1024)
static char *scratch;  /* read-write */
static char *ro_page;  /* read-only */
static char *none_page; /* PROT_NONE */
static int fds[16];
static int nfds;
/* Calls made, one counter per child in memory shared with
 * the parent; a child that jumps to a random address (a random sigreturn
 * frame) may scribble on it, so the parent clamps each to CALLS. */
static volatile uint64_t *shared_calls;
static volatile uint64_t *my_calls;

static const char *const POOL[] = {"f0", "f1", "f2", "d0", "d1", "p0", ".", "f0/x", ""};
#define NPOOL (sizeof POOL / sizeof POOL[0])

static void handler(int sig) { (void)sig; }
static uint64_t restorer; /* glibc's, read back after sigaction */

/* A hostile or plausible pointer. */
static uint64_t ptr(void)
{
    switch (below(12)) {
    case 0: return 0;
    case 1: return 0x1000 + below(0x10000) ; /* unmapped low */
    case 2: return 0xffff800000000000ULL + (r64() & 0x7fffffffffffULL); /* kernel half */
    case 3: return 0x0000800000000000ULL + (r64() & 0xffffffffffULL); /* non-canonical */
    case 4: return r64();
    case 5: return (uint64_t)ro_page + below(4096);
    case 6: return (uint64_t)none_page + below(4096);
    case 7: return (uint64_t)scratch + SCRATCH_LEN - below(64); /* runs off the end */
    case 8: return ARENA + (below(ARENA_LEN) & ~0xfffULL);
    default: return (uint64_t)scratch + below(SCRATCH_LEN / 2);
    }
}

/* An address for a call that changes mappings: the arena, or hostile. */
static uint64_t maddr(void)
{
    switch (below(8)) {
    case 0: return 0;
    case 1: return 0xffff800000000000ULL + (below(1ULL << 40) << 12);
    case 2: return 0x0000800000000000ULL - 4096 * below(4);
    case 3: return ARENA + below(ARENA_LEN); /* unaligned */
    default: return ARENA + (below(ARENA_LEN >> 12) << 12);
    }
}

static uint64_t len(void)
{
    switch (below(10)) {
    case 0: return 0;
    case 1: return (uint64_t)-1;
    case 2: return 1ULL << (40 + below(24));
    case 3: return r64();
    case 4: return 0x7fffffff;
    case 5: return 4096 * (1 + below(512));
    case 6: return 1 + below(16);
    default: return below(8192);
    }
}

static uint64_t num(void)
{
    switch (below(8)) {
    case 0: return 0;
    case 1: return (uint64_t)-1;
    case 2: return (uint64_t)(int64_t)(int32_t)r64(); /* negative ints */
    case 3: return r64();
    case 4: return 1ULL << below(64);
    default: return below(64);
    }
}

static uint64_t flags(void) { return chance(30) ? r64() : (r64() & r64() & 0xfffff); }

static uint64_t fd(void)
{
    if (nfds && chance(80))
        return (uint64_t)fds[below(nfds)];
    switch (below(3)) {
    case 0: return (uint64_t)-1;
    case 1: return 1u << 20;
    default: return (uint64_t)(int64_t)INT32_MIN;
    }
}

static uint64_t path(void)
{
    if (chance(85))
        return (uint64_t)POOL[below(NPOOL)];
    /* never a pointer into memory that could spell an outside path */
    switch (below(3)) {
    case 0: return 0;
    case 1: return 0xffff800000000000ULL + (r64() & 0xfffffffffULL);
    default: return (uint64_t)none_page;
    }
}

/* A signal to send itself: rarely one it cannot catch (SIGKILL, SIGSTOP)
 * or glibc's own 32 and 33, whose handlers it cannot install. */
static uint64_t sig(void)
{
    if (!below(10))
        return num();
    uint64_t s = 1 + below(64);
    if ((s == SIGKILL || s == SIGSTOP || s == 32 || s == 33) && !chance(5))
        s = SIGUSR1;
    return s;
}

static void keep_fd(long r)
{
    if (r >= 0 && r < (1 << 20)) {
        if (nfds < 16)
            fds[nfds++] = (int)r;
        else
            close((int)r);
    }
}

/* A clone whose child, thread or process, exits at once without touching
 * memory (it may share the caller's stack). */
static long raw_clone(uint64_t fl, uint64_t ptid, uint64_t ctid, uint64_t tls)
{
    long ret;
    register uint64_t r10 __asm__("r10") = ctid;
    register uint64_t r8 __asm__("r8") = tls;
    __asm__ volatile("syscall\n\t"
                     "test %%rax, %%rax\n\t"
                     "jnz 1f\n\t"
                     "mov $60, %%eax\n\t"
                     "xor %%edi, %%edi\n\t"
                     "syscall\n\t"
                     "ud2\n"
                     "1:"
                     : "=a"(ret)
                     : "0"((long)SYS_clone), "D"(fl), "S"(0UL), "d"(ptid), "r"(r10), "r"(r8)
                     : "rcx", "r11", "memory");
    return ret;
}

static long sc(long nr, uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e, uint64_t f)
{
    return syscall(nr, a, b, c, d, e, f);
}

static int verbose; /* FUZZ_VERBOSE: each call's case on stderr */

/* One random call. */
static void one_call(void)
{
    long r;
    uint64_t which = below(64);
    if (verbose) {
        char b[32];
        int n = snprintf(b, sizeof b, "[%llu]", (unsigned long long)which);
        if (write(2, b, (size_t)n) < 0)
            verbose = 0;
    }
    switch (which) {
    /* memory */
    case 0: case 1: {
        uint64_t fl = (r64() & (MAP_SHARED | MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS |
                                MAP_NORESERVE | MAP_POPULATE | MAP_GROWSDOWN |
                                MAP_FIXED_NOREPLACE | MAP_STACK | MAP_HUGETLB)) | (chance(5) ? r64() : 0);
        if ((fl & (MAP_FIXED | MAP_FIXED_NOREPLACE)) == 0 || chance(90))
            fl |= chance(90) ? MAP_ANONYMOUS : 0;
        uint64_t a = maddr();
        if (fl & MAP_FIXED && (a < ARENA || a >= ARENA + ARENA_LEN))
            fl &= ~MAP_FIXED;
        uint64_t l = chance(70) ? 4096 * (1 + below(256)) : len();
        r = sc(SYS_mmap, a, l, below(8) | (chance(5) ? r64() : 0), fl,
               fl & MAP_ANONYMOUS ? (uint64_t)-1 : fd(), chance(80) ? 0 : num());
        break;
    }
    case 2: sc(SYS_munmap, maddr(), chance(70) ? 4096 * below(512) : len(), 0, 0, 0, 0); break;
    case 3: sc(SYS_mprotect, maddr(), chance(70) ? 4096 * below(512) : len(), chance(80) ? below(8) : num(), 0, 0, 0); break;
    case 4: {
        uint64_t nf = below(8);
        uint64_t na = maddr();
        sc(SYS_mremap, maddr(), chance(70) ? 4096 * below(256) : len(),
           chance(70) ? 4096 * below(256) : len(), nf, na, 0);
        break;
    }
    case 5: sc(SYS_madvise, maddr(), len(), chance(80) ? below(30) : num(), 0, 0, 0); break;
    case 6: sc(SYS_brk, chance(50) ? 0 : (chance(50) ? r64() : (uint64_t)sbrk(0) + (int64_t)(below(1 << 24)) - (1 << 22)), 0, 0, 0, 0, 0); break;
    case 7: sc(SYS_mincore, maddr(), len(), ptr(), 0, 0, 0); break;
    case 8: sc(SYS_msync, maddr(), len(), flags(), 0, 0, 0); break;
    /* futex */
    case 9: case 10: {
        uint64_t op = chance(80) ? below(14) | (chance(50) ? 128 : 0) | (chance(10) ? 256 : 0) : num();
        struct timespec ts = {0, (long)below(2000000)};
        uint64_t t = chance(95) ? (uint64_t)&ts : ptr();
        uint64_t uaddr = chance(60) ? (uint64_t)scratch + 4 * below(64) : ptr();
        sc(SYS_futex, uaddr, op, chance(50) ? below(4) : num(), t,
           chance(60) ? (uint64_t)scratch + 4 * below(64) : ptr(), num());
        break;
    }
    case 11: sc(SYS_set_robust_list, ptr(), chance(70) ? 24 : num(), 0, 0, 0, 0); break;
    case 12: sc(SYS_get_robust_list, chance(50) ? 0 : num(), ptr(), ptr(), 0, 0, 0); break;
    case 13: sc(SYS_set_tid_address, ptr(), 0, 0, 0, 0, 0); break;
    /* scheduling */
    case 14: sc(SYS_sched_yield, 0, 0, 0, 0, 0, 0); break;
    case 15: sc(SYS_sched_getaffinity, chance(70) ? 0 : num(), len(), ptr(), 0, 0, 0); break;
    case 16: sc(SYS_sched_setaffinity, 0, len(), ptr(), 0, 0, 0); break;
    case 17: sc(SYS_sched_getparam, 0, ptr(), 0, 0, 0, 0); break;
    case 18: sc(SYS_sched_getscheduler, chance(50) ? 0 : num(), 0, 0, 0, 0, 0); break;
    case 19: sc(SYS_getcpu, ptr(), ptr(), ptr(), 0, 0, 0); break;
    /* signals */
    case 20: case 21: {
        uint64_t act = ptr();
        if (chance(50)) {
            struct {
                uint64_t handler, flags, restorer, mask;
            } *k = (void *)scratch;
            /* mostly a real handler, so later signals do not end the child */
            uint64_t hs[] = {0, 1, 1, 1, r64()};
            k->handler = chance(70) ? (uint64_t)handler : hs[below(5)];
            k->flags = chance(50) ? 0x04000000 /* SA_RESTORER */ | (r64() & 0x1f000007) : r64();
            k->restorer = chance(95) ? restorer : r64();
            k->mask = r64();
            act = (uint64_t)k;
        }
        sc(SYS_rt_sigaction, sig(), act, chance(50) ? 0 : ptr(), chance(80) ? 8 : num(), 0, 0);
        break;
    }
    case 22: {
        uint64_t m = r64();
        sc(SYS_rt_sigprocmask, chance(80) ? below(3) : num(), chance(60) ? (uint64_t)&m : ptr(),
           chance(50) ? 0 : ptr(), chance(80) ? 8 : num(), 0, 0);
        break;
    }
    case 23: sc(SYS_rt_sigpending, ptr(), chance(80) ? 8 : num(), 0, 0, 0, 0); break;
    case 24: sc(SYS_sigaltstack, chance(20) ? ptr() : 0, ptr(), 0, 0, 0, 0); break;
    case 25: sc(SYS_kill, getpid(), sig(), 0, 0, 0, 0); break;
    case 26: sc(SYS_tgkill, getpid(), chance(80) ? (uint64_t)gettid() : num(), sig(), 0, 0, 0); break;
    case 27: {
        struct timespec ts = {0, (long)below(1000000)};
        uint64_t m = r64();
        sc(SYS_rt_sigtimedwait, chance(70) ? (uint64_t)&m : ptr(), ptr(),
           chance(97) ? (uint64_t)&ts : ptr(), chance(80) ? 8 : num(), 0, 0);
        break;
    }
    case 28:
        if (chance(3)) {
            /* A random signal frame: the child likely dies. */
            uint64_t *f = (uint64_t *)(scratch + SCRATCH_LEN / 2);
            for (int i = 0; i < 64; i++)
                f[i] = chance(50) ? r64() : (uint64_t)scratch + below(SCRATCH_LEN);
            __asm__ volatile("mov %0, %%rsp\n\tmov $15, %%eax\n\tsyscall\n\tud2" ::"r"(f) : "memory");
        }
        break;
    /* time */
    case 29: sc(SYS_clock_gettime, chance(80) ? below(12) : num(), ptr(), 0, 0, 0, 0); break;
    case 30: sc(SYS_clock_getres, chance(80) ? below(12) : num(), ptr(), 0, 0, 0, 0); break;
    case 31: sc(SYS_gettimeofday, ptr(), ptr(), 0, 0, 0, 0); break;
    case 32: {
        struct timespec ts = {0, chance(80) ? (long)below(1000000) : (long)r64()};
        sc(SYS_nanosleep, chance(80) ? (uint64_t)&ts : ptr(), ptr(), 0, 0, 0, 0);
        break;
    }
    case 33: {
        struct timespec ts = {0, (long)below(1000000)};
        sc(SYS_clock_nanosleep, below(12), chance(90) ? 0 : num(), chance(80) ? (uint64_t)&ts : ptr(), ptr(), 0, 0);
        break;
    }
    case 34: sc(SYS_getitimer, chance(80) ? below(3) : num(), ptr(), 0, 0, 0, 0); break;
    case 35: {
        struct { long a, b, c, d; } it = {0, (long)below(100000), 0, (long)below(100000)};
        sc(SYS_setitimer, chance(80) ? below(3) : num(), chance(70) ? (uint64_t)&it : ptr(), ptr(), 0, 0, 0);
        break;
    }
    case 36: sc(SYS_alarm, chance(90) ? below(3) : num(), 0, 0, 0, 0, 0); break;
    case 37: sc(SYS_times, ptr(), 0, 0, 0, 0, 0); break;
    /* identity */
    case 38: sc(SYS_getpid + below(2) * (SYS_gettid - SYS_getpid), 0, 0, 0, 0, 0, 0); break;
    case 39: sc(SYS_getppid, 0, 0, 0, 0, 0, 0); break;
    case 40: sc(SYS_uname, ptr(), 0, 0, 0, 0, 0); break;
    case 41: sc(SYS_getrlimit, num(), ptr(), 0, 0, 0, 0); break;
    case 42: {
        /* new limits only through bad pointers: a real RLIMIT_CPU would end the proxy */
        uint64_t bad[] = {0, 0xffff800000000000ULL, 0x0000800000000000ULL, (uint64_t)none_page};
        sc(SYS_prlimit64, 0, chance(80) ? below(16) : num(), bad[below(4)], ptr(), 0, 0);
        break;
    }
    case 43: sc(SYS_sysinfo, ptr(), 0, 0, 0, 0, 0); break;
    case 44: sc(SYS_getrusage, chance(80) ? below(3) - 1 : num(), ptr(), 0, 0, 0, 0); break;
    case 45: sc(SYS_getresuid, ptr(), ptr(), ptr(), 0, 0, 0); break;
    /* its own files */
    case 46: r = sc(SYS_openat, chance(90) ? (uint64_t)AT_FDCWD : fd(), path(),
                    chance(70) ? (r64() & (O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_NONBLOCK | O_DIRECTORY | O_CLOEXEC | O_EXCL)) : flags(),
                    0600, 0, 0);
        keep_fd(r);
        break;
    case 47: sc(SYS_read, fd(), ptr(), len(), 0, 0, 0); break;
    case 48: sc(SYS_write, fd(), ptr(), chance(70) ? below(8192) : len(), 0, 0, 0); break;
    case 49: sc(chance(50) ? SYS_pread64 : SYS_pwrite64, fd(), ptr(), chance(70) ? below(8192) : len(), chance(80) ? below(1 << 20) : num(), 0, 0); break;
    case 50: sc(SYS_lseek, fd(), num(), chance(80) ? below(5) : num(), 0, 0, 0); break;
    case 51:
        if (nfds) {
            int i = (int)below(nfds);
            close(fds[i]);
            fds[i] = fds[--nfds];
        }
        break;
    case 52: r = sc(chance(50) ? SYS_dup : SYS_fcntl, fd(), chance(50) ? 0 : below(12), 0, 0, 0, 0); keep_fd(r); break;
    case 53: sc(SYS_fstat, fd(), ptr(), 0, 0, 0, 0); break;
    case 54: sc(SYS_newfstatat, AT_FDCWD, path(), ptr(), chance(80) ? 0 : flags(), 0, 0); break;
    case 55: sc(SYS_ftruncate, fd(), chance(80) ? below(1 << 20) : num(), 0, 0, 0, 0); break;
    case 56: sc(SYS_getdents64, fd(), ptr(), len(), 0, 0, 0); break;
    case 57: {
        int p[2];
        if (nfds < 14 && sc(SYS_pipe2, chance(80) ? (uint64_t)p : ptr(), chance(80) ? O_NONBLOCK : flags(), 0, 0, 0, 0) == 0 &&
            nfds < 14) {
            keep_fd(p[0]);
            keep_fd(p[1]);
        }
        break;
    }
    case 58: sc(chance(50) ? SYS_mkdirat : SYS_unlinkat, AT_FDCWD, path(), chance(70) ? 0 : (below(2) ? AT_REMOVEDIR : num()), 0, 0, 0); break;
    case 59: sc(SYS_renameat2, AT_FDCWD, path(), AT_FDCWD, path(), chance(80) ? 0 : flags(), 0); break;
    case 60: r = sc(SYS_eventfd2, num(), chance(80) ? 0x800 : flags(), 0, 0, 0, 0); keep_fd(r); break;
    case 61: sc(SYS_getcwd, ptr(), len(), 0, 0, 0, 0); break;
    /* threads and processes */
    case 62:
        if (chance(30)) {
            uint64_t fl = r64() & (CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
                                   CLONE_SYSVSEM | CLONE_SETTLS | CLONE_PARENT_SETTID |
                                   CLONE_CHILD_CLEARTID | CLONE_CHILD_SETTID | CLONE_VFORK | 0xff);
            if (chance(5))
                fl = r64();
            if (fl & CLONE_SETTLS)
                fl &= ~(uint64_t)CLONE_SETTLS; /* a random fs base would be read by libc in the parent */
            long c = raw_clone(fl, ptr(), ptr(), 0);
            if (c > 0 && !(fl & CLONE_THREAD))
                waitpid((pid_t)c, NULL, __WALL);
        }
        break;
    default: {
        /* execve of a scratch file (not a program) with hostile vectors */
        if (chance(10)) {
            uint64_t av[4] = {ptr(), ptr(), 0, 0};
            sc(SYS_execve, path(), chance(50) ? (uint64_t)av : ptr(), chance(50) ? 0 : ptr(), 0, 0, 0);
        }
        break;
    }
    }
}

static void child(uint64_t seed, int idx, long calls)
{
    rng = seed * 0x9E3779B97F4A7C15ULL + (uint64_t)idx * 0xBF58476D1CE4E5B9ULL + 1;
    if (!rng)
        rng = 1;
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        if (!verbose)
            dup2(null, 2);
        if (null > 2)
            close(null);
    }
    scratch = mmap(NULL, SCRATCH_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ro_page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    none_page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (scratch == MAP_FAILED || ro_page == MAP_FAILED || none_page == MAP_FAILED)
        _exit(3);
    /* Signals it sends itself are caught, so the child lives on. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    for (int s = 1; s < 65; s++)
        if (s != SIGKILL && s != SIGSTOP)
            sigaction(s, &sa, NULL);
    uint64_t k[4];
    if (syscall(SYS_rt_sigaction, SIGUSR1, NULL, k, 8) == 0)
        restorer = k[2];
    my_calls = &shared_calls[idx];
    for (long i = 0; i < calls; i++) {
        one_call();
        *my_calls = (uint64_t)i + 1;
    }
    _exit(0);
}

static void rm_tree(const char *p)
{
    struct stat st;
    if (lstat(p, &st) != 0)
        return;
    if (!S_ISDIR(st.st_mode)) {
        unlink(p);
        return;
    }
    chmod(p, 0700);
    DIR *d = opendir(p);
    if (d) {
        struct dirent *e;
        char sub[4096];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            snprintf(sub, sizeof sub, "%s/%s", p, e->d_name);
            rm_tree(sub);
        }
        closedir(d);
    }
    rmdir(p);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: fuzz SEED CHILDREN CALLS [PARALLEL [DEADLINE_S]]\n");
        return 2;
    }
    uint64_t seed = strtoull(argv[1], NULL, 0);
    int children = atoi(argv[2]);
    long calls = atol(argv[3]);
    int parallel = argc > 4 ? atoi(argv[4]) : 2;
    /* To reproduce one child: FUZZ_ONLY=i runs child i alone. */
    const char *only = getenv("FUZZ_ONLY");
    int first = only ? atoi(only) : 0;
    if (first < 0)
        first = 0;
    if (first >= children)
        children = first + 1;
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    int deadline = argc > 5 ? atoi(argv[5]) : 10;
    if (parallel < 1)
        parallel = 1;
    setvbuf(stdout, NULL, _IONBF, 0);

    const char *tmp = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/margay-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir) || chdir(dir) != 0) {
        perror("fuzz: scratch directory");
        return 1;
    }
    if (children < 1)
        children = 1;
    shared_calls = mmap(NULL, (size_t)children * 8, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared_calls == MAP_FAILED) {
        perror("fuzz: shared counter");
        return 1;
    }
    pid_t running[64];
    struct timespec started[64];
    int nrun = 0, next = first, exited = 0, killed = 0, stuck = 0, forkfail = 0;
    int sigs[65] = {0};
    if (parallel > 64)
        parallel = 64;
    int end = only ? first + 1 : children;
    while (next < end || nrun > 0) {
        while (nrun < parallel && next < end) {
            pid_t p = fork();
            if (p == 0)
                child(seed, next, calls);
            if (p < 0) {
                forkfail++;
                if (nrun == 0) {
                    next++;
                    continue;
                }
                break;
            }
            running[nrun] = p;
            clock_gettime(CLOCK_MONOTONIC, &started[nrun]);
            nrun++;
            next++;
        }
        int st;
        pid_t w = waitpid(-1, &st, WNOHANG);
        if (w > 0) {
            for (int i = 0; i < nrun; i++) {
                if (running[i] != w)
                    continue;
                running[i] = running[--nrun];
                started[i] = started[nrun];
                if (WIFSIGNALED(st)) {
                    killed++;
                    sigs[WTERMSIG(st) & 63]++;
                } else {
                    exited++;
                }
                break;
            }
            continue;
        }
        struct timespec now, nap = {0, 20 * 1000 * 1000};
        clock_gettime(CLOCK_MONOTONIC, &now);
        for (int i = 0; i < nrun; i++) {
            if (now.tv_sec - started[i].tv_sec >= deadline && running[i] > 0) {
                kill(running[i], SIGKILL);
                stuck++;
                killed--; /* counted again as killed when reaped */
                started[i].tv_sec = now.tv_sec + 1000000;
            }
        }
        nanosleep(&nap, NULL);
    }
    uint64_t total = 0;
    for (int i = 0; i < children; i++)
        total += shared_calls[i] > (uint64_t)calls ? (uint64_t)calls : shared_calls[i];
    /* Remove what the children left (no symbolic links are ever made). */
    if (chdir("/") == 0)
        rm_tree(dir);
    printf("fuzz: seed %llu: %llu calls in %d children: %d exited, %d killed by signals, %d stuck",
           (unsigned long long)seed, (unsigned long long)total, children, exited, killed, stuck);
    if (forkfail)
        printf(", %d forks failed", forkfail);
    printf(" (signals:");
    for (int s = 1; s < 64; s++)
        if (sigs[s])
            printf(" %d x%d", s, sigs[s]);
    printf(")\n");
    return 0;
}
