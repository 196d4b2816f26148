/* syscall: cost of a null system call served locally by the kernel (getpid)
 * and of a cheap one Margay offloads to its Linux proxy (getppid); on Linux
 * both are local. Usage: syscall [CALLS_PER_BATCH] [BATCHES]. Reports the
 * best and median batch's average per call in ns. */
#include "probe.h"
#include <sys/syscall.h>
#include <unistd.h>

static void measure(long nr, long per, long batches, int64_t *min, int64_t *med)
{
    int64_t *avg = xalloc(sizeof(int64_t) * (size_t)batches);
    for (long i = 0; i < per / 10 + 1; i++) /* warm-up */
        syscall(nr);
    for (long b = 0; b < batches; b++) {
        int64_t t0 = now_ns();
        for (long i = 0; i < per; i++)
            syscall(nr);
        avg[b] = (now_ns() - t0) / per;
    }
    *med = quantile(avg, batches, 0.5);
    *min = avg[0];
    free(avg);
}

int main(int argc, char **argv)
{
    probe_name = "syscall";
    long per = arg_long(argc, argv, 1, 2000);
    long batches = arg_long(argc, argv, 2, 20);
    int64_t lmin, lmed, omin, omed;
    if (syscall(SYS_getppid) < 0)
        fail("getppid: %s", strerror(errno));
    measure(SYS_getpid, per, batches, &lmin, &lmed);
    measure(SYS_getppid, per, batches, &omin, &omed);
    printf("MARGAY-RESULT probe=syscall local_min_ns=%lld local_med_ns=%lld "
           "offload_min_ns=%lld offload_med_ns=%lld\n",
           (long long)lmin, (long long)lmed, (long long)omin, (long long)omed);
    return 0;
}
