/* segv: print, then store to an unmapped address; must die with SIGSEGV. */
#include <stdint.h>
#include <stdio.h>

int main(void)
{
    printf("before\n");
    fflush(stdout);
    volatile uintptr_t a = 0x8;
    *(volatile int *)a = 42;
    printf("after (should not be reached)\n");
    return 0;
}
