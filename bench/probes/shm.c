/* shm: shared memory between processes.
 *   - ping-pong: two processes pinned to two cores spin on a word of a
 *     MAP_SHARED|MAP_ANONYMOUS page, each hop a store the other side sees;
 *   - segment: shm_open + ftruncate + mmap(MAP_SHARED) + a store to every
 *     4 KiB page + munmap + shm_unlink of a SEG_MIB segment, per page;
 *   - fork: fork + _exit + waitpid of a process holding a BIG_MIB shared
 *     mapping (touched), against the same without it: a shared mapping is
 *     mapped by the child, never copied, so the two should be close.
 * Usage: shm ROUND_TRIPS REPS SEG_MIB BIG_MIB. */
#include "probe.h"
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int64_t fork_once(void)
{
    int64_t t0 = now_ns();
    pid_t pid = fork();
    if (pid < 0)
        fail("fork: %s", strerror(errno));
    if (pid == 0)
        _exit(0);
    int st;
    if (waitpid(pid, &st, 0) != pid)
        fail("waitpid: %s", strerror(errno));
    return now_ns() - t0;
}

int main(int argc, char **argv)
{
    probe_name = "shm";
    long n = arg_long(argc, argv, 1, 200);
    long reps = arg_long(argc, argv, 2, 3);
    long seg_mib = arg_long(argc, argv, 3, 64);
    long big_mib = arg_long(argc, argv, 4, 256);
    int cpus[2];
    int have = allowed_cpus(cpus, 2);

    /* Ping-pong on a shared word. */
    _Atomic long *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (w == MAP_FAILED)
        fail("mmap shared page: %s", strerror(errno));
    pid_t partner = fork();
    if (partner < 0)
        fail("fork: %s", strerror(errno));
    if (partner == 0) {
        if (have > 1)
            pin_to(cpus[1]);
        for (long i = 1; i <= n; i++) {
            while (atomic_load(w) != 2 * i - 1)
                ;
            atomic_store(w, 2 * i);
        }
        _exit(0);
    }
    pin_to(cpus[0]);
    int64_t *rt = xalloc(sizeof(int64_t) * (size_t)n);
    for (long i = 1; i <= n; i++) {
        int64_t t0 = now_ns();
        atomic_store(w, 2 * i - 1);
        while (atomic_load(w) != 2 * i)
            ;
        rt[i - 1] = now_ns() - t0;
    }
    waitpid(partner, NULL, 0);
    int64_t rt_med = quantile(rt, n, 0.5);

    /* fork with and without a big shared mapping. */
    int64_t *plain = xalloc(sizeof(int64_t) * (size_t)reps);
    int64_t *with = xalloc(sizeof(int64_t) * (size_t)reps);
    for (long r = 0; r < reps; r++)
        plain[r] = fork_once();
    size_t big = (size_t)big_mib << 20;
    char *b = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED)
        fail("mmap %ld MiB shared: %s", big_mib, strerror(errno));
    for (size_t i = 0; i < big; i += 4096)
        b[i] = 1;
    for (long r = 0; r < reps; r++)
        with[r] = fork_once();
    munmap(b, big);
    /* A POSIX shared memory segment, touched page by page. */
    size_t seg = (size_t)seg_mib << 20;
    long pages = (long)(seg / 4096);
    int64_t *per = xalloc(sizeof(int64_t) * (size_t)reps);
    char name[64];
    snprintf(name, sizeof name, "/margay-probe-shm-%d", getpid());
    for (long r = 0; r < reps; r++) {
        int64_t t0 = now_ns();
        int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
        if (fd < 0)
            fail("shm_open %s: %s", name, strerror(errno));
        if (ftruncate(fd, (off_t)seg) != 0)
            fail("ftruncate %ld MiB: %s", seg_mib, strerror(errno));
        volatile char *p = mmap(NULL, seg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            fail("mmap %ld MiB segment: %s", seg_mib, strerror(errno));
        for (long i = 0; i < pages; i++)
            p[i * 4096] = 1;
        munmap((void *)p, seg);
        close(fd);
        shm_unlink(name);
        per[r] = (now_ns() - t0) / pages;
    }
    int64_t seg_med = quantile(per, reps, 0.5);

    printf("MARGAY-RESULT probe=shm cores=%d pingpong_min_ns=%lld pingpong_med_ns=%lld "
           "segment_page_ns=%lld fork_plain_ns=%lld fork_shared_ns=%lld\n",
           have > 1 ? 2 : 1, (long long)rt[0], (long long)rt_med, (long long)seg_med,
           (long long)quantile(plain, reps, 0.5), (long long)quantile(with, reps, 0.5));
    return 0;
}
