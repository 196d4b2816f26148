/* nprocs: what glibc reports for the number of processors (sysconf reads
 * /sys/devices/system/cpu/online and /proc/cpuinfo-style sources), and the
 * affinity mask the process starts with. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <sys/sysinfo.h>
#include <unistd.h>

int main(void)
{
    printf("onln=%ld\n", sysconf(_SC_NPROCESSORS_ONLN));
    printf("conf=%ld\n", sysconf(_SC_NPROCESSORS_CONF));
    printf("get_nprocs=%d\n", get_nprocs());
    return 0;
}
