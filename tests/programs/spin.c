/* spin: a single thread computing for N iterations (argv[1]) without syscalls. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100000000;
    volatile unsigned long x = 1;
    for (long i = 0; i < n; i++)
        x = x * 6364136223846793005UL + 1442695040888963407UL;
    printf("spin done %lu\n", (unsigned long)(x & 1));
    return 0;
}
