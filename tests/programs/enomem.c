/* enomem: mmap argv[1] MiB of anonymous memory with MAP_POPULATE and touch
 * it. Prints "mmap: ENOMEM" if mmap fails with ENOMEM, "mmap: mapped" if it
 * succeeds; then the same for malloc ("malloc: NULL" / "malloc: ok").
 * Natively Linux overcommits, so this is only meaningful under Margay with a
 * small --mem. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoull(argv[1], NULL, 0) : 1024;
    size_t len = mib << 20;
    long page = sysconf(_SC_PAGESIZE);

    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) {
        printf("mmap: %s\n", errno == ENOMEM ? "ENOMEM" : strerror(errno));
    } else {
        volatile unsigned char *c = p;
        for (size_t off = 0; off < len; off += (size_t)page)
            c[off] = (unsigned char)(off >> 12);
        munmap(p, len);
        printf("mmap: mapped\n");
    }
    fflush(stdout);

    errno = 0;
    unsigned char *m = malloc(len);
    if (!m) {
        printf("malloc: NULL%s\n", errno == ENOMEM ? " ENOMEM" : "");
    } else {
        for (size_t off = 0; off < len; off += (size_t)page)
            m[off] = 1;
        free(m);
        printf("malloc: ok\n");
    }
    /* The process must still work after a failed allocation. */
    void *small = malloc(4096);
    printf("small malloc: %s\n", small ? "ok" : "NULL");
    free(small);
    return 0;
}
