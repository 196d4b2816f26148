/* stress_hog: a memory hog. Usage: stress_hog ROUNDS. Each round maps
 * anonymous memory in 4 MiB pieces (then 64 KiB ones) until mmap fails with
 * ENOMEM, writes every page, and unmaps it all; brk is driven to its limit
 * and back too. Free memory (sysinfo) must come back to the same figure
 * after every round (from the figure after a warm-up round). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#define MAXP 65536
static void *piece[MAXP];
static size_t piece_len[MAXP];

static unsigned long long free_bytes(void)
{
    struct sysinfo si;
    if (sysinfo(&si) != 0)
        return 0;
    return (unsigned long long)si.freeram * si.mem_unit;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    setvbuf(stdout, NULL, _IONBF, 0);
    unsigned long long start = 0;
    int bad = 0;
    /* Round 0 warms up: the kernel heap keeps the pages its records took,
     * and brk keeps one step mapped above the break. */
    for (int r = 0; r <= rounds; r++) {
        int n = 0;
        unsigned long long took = 0;
        size_t sizes[] = {4 << 20, 64 << 10};
        for (int s = 0; s < 2; s++) {
            while (n < MAXP) {
                void *p = mmap(NULL, sizes[s], PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (p == MAP_FAILED) {
                    if (errno != ENOMEM) {
                        printf("round %d: mmap failed with %s, not ENOMEM\n", r, strerror(errno));
                        bad++;
                    }
                    break;
                }
                for (size_t o = 0; o < sizes[s]; o += 4096)
                    ((volatile char *)p)[o] = (char)o;
                piece[n] = p;
                piece_len[n++] = sizes[s];
                took += sizes[s];
            }
        }
        unsigned long long low = free_bytes();
        for (int i = 0; i < n; i++)
            munmap(piece[i], piece_len[i]);
        /* brk: grow in 1 MiB steps until refused, then back */
        char *base = sbrk(0);
        size_t grown = 0;
        while (brk(base + grown + (1 << 20)) == 0) {
            grown += 1 << 20;
            base[grown - 1] = 1;
        }
        if (brk(base) != 0) {
            printf("round %d: brk back failed\n", r);
            bad++;
        }
        unsigned long long now = free_bytes();
        if (r == 0)
            start = now;
        if (r <= 1 || r == rounds || now != start)
            printf("round %d: took %llu MiB in %d mappings (free %llu KiB at the top), brk grew %zu MiB; free %llu KiB (start %llu KiB)\n",
                   r, took >> 20, n, low / 1024, grown >> 20, now / 1024, start / 1024);
        if (now != start)
            bad++;
    }
    printf("memory hog: %s\n", bad ? "FAILED" : "ok");
    return bad != 0;
}
