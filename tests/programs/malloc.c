/* malloc: malloc/free cycles from 16 B to 64 MiB (large ones come from mmap
 * in glibc), every page touched and all contents verified, realloc growth,
 * calloc zeroing of recycled memory. Prints a deterministic checksum. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t sum = 0xcbf29ce484222325ULL;

static void mix(uint64_t v)
{
    sum ^= v;
    sum *= 0x100000001b3ULL;
}

static uint64_t rng = 0x2545F4914F6CDD1DULL;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void fail(const char *what, size_t size)
{
    printf("FAIL %s (size %zu)\n", what, size);
    exit(1);
}

static void fill(unsigned char *p, size_t n, uint64_t seed)
{
    size_t words = n / 8;
    uint64_t *w = (uint64_t *)p;
    for (size_t i = 0; i < words; i++)
        w[i] = seed ^ (i * 0x9E3779B97F4A7C15ULL);
    for (size_t i = words * 8; i < n; i++)
        p[i] = (unsigned char)(seed + i);
}

static void verify(const unsigned char *p, size_t n, uint64_t seed, const char *what)
{
    size_t words = n / 8;
    const uint64_t *w = (const uint64_t *)p;
    uint64_t acc = 0;
    for (size_t i = 0; i < words; i++) {
        if (w[i] != (seed ^ (i * 0x9E3779B97F4A7C15ULL)))
            fail(what, n);
        acc += w[i];
    }
    for (size_t i = words * 8; i < n; i++) {
        if (p[i] != (unsigned char)(seed + i))
            fail(what, n);
        acc += p[i];
    }
    mix(acc);
    mix(n);
}

int main(void)
{
    long page = sysconf(_SC_PAGESIZE);
    const size_t max = 64u << 20;

    /* 1: power-of-two and odd sizes, several rounds. */
    for (int round = 0; round < 3; round++) {
        for (size_t s = 16; s <= max; s *= 2) {
            size_t sizes[2] = { s, s + s / 2 + 3 };
            for (int k = 0; k < 2; k++) {
                size_t n = sizes[k];
                if (n > max)
                    continue;
                unsigned char *p = malloc(n);
                if (!p)
                    fail("malloc", n);
                if (((uintptr_t)p & 15) != 0)
                    fail("alignment", n);
                uint64_t seed = (uint64_t)round * 1000003u + n;
                fill(p, n, seed);
                /* touch every page again explicitly */
                for (size_t off = 0; off < n; off += (size_t)page)
                    mix(p[off]);
                verify(p, n, seed, "verify after fill");
                free(p);
            }
        }
    }
    printf("ok sizes 16 B .. 64 MiB\n");

    /* 2: many small live allocations with random frees. */
    enum { SLOTS = 4096 };
    static unsigned char *ptr[SLOTS];
    static size_t len[SLOTS];
    for (int it = 0; it < 200000; it++) {
        int i = (int)(next() % SLOTS);
        if (ptr[i]) {
            verify(ptr[i], len[i], (uint64_t)i * 77 + len[i], "small verify");
            free(ptr[i]);
            ptr[i] = NULL;
        } else {
            size_t n = 16 + next() % ((it % 100 == 0) ? 300000 : 2000);
            ptr[i] = malloc(n);
            if (!ptr[i])
                fail("small malloc", n);
            len[i] = n;
            fill(ptr[i], n, (uint64_t)i * 77 + n);
        }
    }
    for (int i = 0; i < SLOTS; i++) {
        if (ptr[i]) {
            verify(ptr[i], len[i], (uint64_t)i * 77 + len[i], "small verify end");
            free(ptr[i]);
        }
    }
    printf("ok random small allocations\n");

    /* 3: realloc growth keeps the prefix. */
    size_t n = 16;
    unsigned char *p = malloc(n);
    if (!p)
        fail("realloc start", n);
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 7 + 3);
    while (n < (32u << 20)) {
        size_t m = n + n / 2 + 1;
        unsigned char *q = realloc(p, m);
        if (!q)
            fail("realloc", m);
        for (size_t i = 0; i < n; i += (i < 4096 ? 1 : 61))
            if (q[i] != (unsigned char)(i * 7 + 3))
                fail("realloc prefix", m);
        for (size_t i = n; i < m; i++)
            q[i] = (unsigned char)(i * 7 + 3);
        p = q;
        n = m;
        mix(n);
    }
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(i * 7 + 3))
            fail("realloc final", n);
    /* shrink too */
    p = realloc(p, 1000);
    if (!p)
        fail("realloc shrink", 1000);
    for (size_t i = 0; i < 1000; i++)
        if (p[i] != (unsigned char)(i * 7 + 3))
            fail("realloc shrink contents", 1000);
    free(p);
    printf("ok realloc growth to %zu bytes\n", n);

    /* 4: calloc returns zeroed memory, also when recycling dirty memory. */
    size_t csizes[] = { 24, 1000, 100000, 200000, 1u << 20, 8u << 20, 64u << 20 };
    for (size_t k = 0; k < sizeof csizes / sizeof csizes[0]; k++) {
        size_t cs = csizes[k];
        unsigned char *d = malloc(cs);
        if (!d)
            fail("dirty malloc", cs);
        memset(d, 0xA5, cs);
        free(d);
        unsigned char *z = calloc(cs, 1);
        if (!z)
            fail("calloc", cs);
        for (size_t i = 0; i < cs; i++)
            if (z[i] != 0)
                fail("calloc not zero", cs);
        mix(cs);
        free(z);
    }
    printf("ok calloc zeroing\n");

    printf("checksum=%016llx\n", (unsigned long long)sum);
    return 0;
}
