/* A static program with a 200 MiB bss: needs a partition larger than 200 MiB. */
#include <stdio.h>
#include <string.h>

static volatile char big[200 << 20];

int main(void)
{
    big[0] = 1;
    big[sizeof(big) - 1] = 2;
    long sum = 0;
    for (size_t i = 0; i < sizeof(big); i += 1 << 20)
        sum += big[i];
    printf("bss ok sum=%ld last=%d\n", sum, big[sizeof(big) - 1]);
    return 0;
}
