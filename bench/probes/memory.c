/* memory: (1) mmap + touch every 4 KiB page + munmap of 64 MiB of anonymous
 * memory, as cost per page; (2) a GUPS-style random read-modify-write over a
 * table of TABLE_MIB MiB.
 * Usage: memory [REPS] [TABLE_MIB] [UPDATES_K] [MAP_MIB].
 * Reports per-page ns (min, median) and million updates per second. */
#include "probe.h"
#include <sys/mman.h>

int main(int argc, char **argv)
{
    probe_name = "memory";
    long reps = arg_long(argc, argv, 1, 5);
    long table_mib = arg_long(argc, argv, 2, 256);
    long updates = arg_long(argc, argv, 3, 4096) * 1000;
    long map_mib = arg_long(argc, argv, 4, 64);
    size_t len = (size_t)map_mib << 20, pages = len / 4096;
    int64_t *per_page = xalloc(sizeof(int64_t) * (size_t)reps);
    for (long r = 0; r < reps; r++) {
        int64_t t0 = now_ns();
        char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            fail("mmap of %ld MiB: %s", map_mib, strerror(errno));
        for (size_t i = 0; i < len; i += 4096)
            p[i] = 1;
        if (munmap(p, len) != 0)
            fail("munmap: %s", strerror(errno));
        per_page[r] = (now_ns() - t0) / (int64_t)pages;
    }
    int64_t med = quantile(per_page, reps, 0.5);

    /* GUPS: the table size is a power of two. */
    size_t entries = ((size_t)table_mib << 20) / sizeof(uint64_t);
    size_t mask = 1;
    while (mask * 2 <= entries)
        mask *= 2;
    entries = mask;
    mask -= 1;
    uint64_t *t = mmap(NULL, entries * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
    if (t == MAP_FAILED)
        fail("mmap of the %ld MiB GUPS table: %s", table_mib, strerror(errno));
    for (size_t i = 0; i < entries; i++)
        t[i] = i;
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    int64_t t0 = now_ns();
    for (long i = 0; i < updates; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        t[x & mask] ^= x;
    }
    int64_t dt = now_ns() - t0;
    uint64_t check = 0;
    for (size_t i = 0; i < entries; i += 4096)
        check += t[i];
    munmap(t, entries * 8);
    printf("MARGAY-RESULT probe=memory touch_min_ns=%lld touch_med_ns=%lld gups_mups=%.3f "
           "gups_table_mib=%zu check=%llu\n",
           (long long)per_page[0], (long long)med, (double)updates * 1e3 / (double)(dt ? dt : 1),
           (entries * 8) >> 20, (unsigned long long)(check & 0xff));
    return 0;
}
