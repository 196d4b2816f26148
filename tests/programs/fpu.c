/* fpu: user FPU/SSE state must survive system calls, local and offloaded.
 * Loads known patterns into xmm0-15, sets a non-default MXCSR rounding mode
 * and an x87 value, makes syscalls (getpid: local on Margay; getppid and
 * write: offloaded), then checks every register. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int check_xmm_across(long nr)
{
    uint8_t in[16][16], out[16][16];
    for (int r = 0; r < 16; r++)
        for (int b = 0; b < 16; b++)
            in[r][b] = (uint8_t)(r * 16 + b + nr);
    long ret;
    __asm__ volatile(
        "movdqu 0(%[i]), %%xmm0\n movdqu 16(%[i]), %%xmm1\n movdqu 32(%[i]), %%xmm2\n movdqu 48(%[i]), %%xmm3\n"
        "movdqu 64(%[i]), %%xmm4\n movdqu 80(%[i]), %%xmm5\n movdqu 96(%[i]), %%xmm6\n movdqu 112(%[i]), %%xmm7\n"
        "movdqu 128(%[i]), %%xmm8\n movdqu 144(%[i]), %%xmm9\n movdqu 160(%[i]), %%xmm10\n movdqu 176(%[i]), %%xmm11\n"
        "movdqu 192(%[i]), %%xmm12\n movdqu 208(%[i]), %%xmm13\n movdqu 224(%[i]), %%xmm14\n movdqu 240(%[i]), %%xmm15\n"
        "syscall\n"
        "movdqu %%xmm0, 0(%[o])\n movdqu %%xmm1, 16(%[o])\n movdqu %%xmm2, 32(%[o])\n movdqu %%xmm3, 48(%[o])\n"
        "movdqu %%xmm4, 64(%[o])\n movdqu %%xmm5, 80(%[o])\n movdqu %%xmm6, 96(%[o])\n movdqu %%xmm7, 112(%[o])\n"
        "movdqu %%xmm8, 128(%[o])\n movdqu %%xmm9, 144(%[o])\n movdqu %%xmm10, 160(%[o])\n movdqu %%xmm11, 176(%[o])\n"
        "movdqu %%xmm12, 192(%[o])\n movdqu %%xmm13, 208(%[o])\n movdqu %%xmm14, 224(%[o])\n movdqu %%xmm15, 240(%[o])\n"
        : "=a"(ret)
        : "a"(nr), [i] "r"(in), [o] "r"(out)
        : "rcx", "r11", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
          "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
    (void)ret;
    return memcmp(in, out, sizeof(in)) == 0;
}

static int check_mxcsr_across(long nr)
{
    uint32_t set = 0x1f80 | (3u << 13); /* round toward zero */
    uint32_t got;
    long ret;
    __asm__ volatile("ldmxcsr %[s]\n syscall\n stmxcsr %[g]\n"
                     : [g] "=m"(got), "=a"(ret)
                     : [s] "m"(set), "a"(nr)
                     : "rcx", "r11", "memory");
    uint32_t dflt = 0x1f80;
    __asm__ volatile("ldmxcsr %0" ::"m"(dflt));
    (void)ret;
    return (got & ~0x3fu) == (set & ~0x3fu);
}

static int check_x87_across(long nr)
{
    long double x = 1.0L / 3.0L, y = 0;
    long ret;
    __asm__ volatile("fldt %[x]\n syscall\n fstpt %[y]\n"
                     : [y] "=m"(y), "=a"(ret)
                     : [x] "m"(x), "a"(nr)
                     : "rcx", "r11", "memory");
    (void)ret;
    return x == y;
}

int main(void)
{
    long calls[] = {SYS_getpid, SYS_getppid, SYS_getuid, SYS_clock_gettime};
    const char *names[] = {"getpid", "getppid", "getuid", "clock_gettime"};
    int ok = 1;
    for (int i = 0; i < 4; i++) {
        int a = check_xmm_across(calls[i]);
        int b = check_mxcsr_across(calls[i]);
        int c = check_x87_across(calls[i]);
        printf("%s: xmm %s, mxcsr %s, x87 %s\n", names[i], a ? "kept" : "CLOBBERED", b ? "kept" : "CLOBBERED",
               c ? "kept" : "CLOBBERED");
        ok &= a && b && c;
    }
    /* Floating point through printf after many syscalls. */
    double acc = 0;
    for (int i = 1; i <= 1000; i++) {
        acc += 1.0 / i;
        if (i % 100 == 0)
            syscall(SYS_getpid);
    }
    printf("harmonic(1000)=%.12f\n", acc);
    return ok ? 0 : 1;
}
