/* stdin: read stdin to EOF, print the byte count and an FNV-1a checksum. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
    static unsigned char buf[65536];
    uint64_t total = 0, h = 0xcbf29ce484222325ULL;
    uint64_t reads = 0;
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            printf("read error: %s\n", strerror(errno));
            return 1;
        }
        if (n == 0)
            break;
        reads++;
        for (ssize_t i = 0; i < n; i++) {
            h ^= buf[i];
            h *= 0x100000001b3ULL;
        }
        total += (uint64_t)n;
    }
    (void)reads; /* the number of reads depends on pipe timing: not printed */
    printf("bytes=%" PRIu64 "\n", total);
    printf("fnv1a=%016" PRIx64 "\n", h);
    return 0;
}
