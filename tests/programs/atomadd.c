/* atomadd PATH N P: add 1 to the first word of PATH (a zeroed page) N times
 * with `lock xadd`, after all P concurrent processes (LWK in any partition,
 * or Linux) have arrived (the second word counts arrivals). Together they
 * must reach exactly N * P: an atomic instruction on memory shared with
 * other partitions and Linux processes is atomic. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: atomadd PATH N P\n");
        return 2;
    }
    int fd = open(argv[1], O_RDWR);
    long n = atol(argv[2]), parties = atol(argv[3]);
    long *p = fd < 0 ? MAP_FAILED : mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        perror(argv[1]);
        return 1;
    }
    __atomic_fetch_add(&p[1], 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&p[1], __ATOMIC_SEQ_CST) < parties)
        ;
    for (long i = 0; i < n; i++)
        __atomic_fetch_add(&p[0], 1, __ATOMIC_SEQ_CST);
    printf("added %ld\n", n);
    return 0;
}
