/* Address space reserved with PROT_NONE costs no memory on Margay (as on
 * Linux): glibc reserves 64 MiB per malloc arena (one per thread that
 * mallocs), and runtimes reserve large ranges and open pieces with mprotect.
 * In a 512 MiB partition: 24 threads that malloc, a 4 GiB PROT_NONE
 * reservation with pieces opened, written, inherited by a fork, moved with
 * mremap and closed again; a store to a reserved page is SIGSEGV. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define THREADS 24

static pthread_barrier_t all_in;

static void *worker(void *arg)
{
    char *p = malloc(1000);
    if (p)
        memset(p, (int)(long)arg, 1000);
    /* Every thread holds its arena at once. */
    pthread_barrier_wait(&all_in);
    long ok = p && p[999] == (char)(long)arg;
    free(p);
    return (void *)ok;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    pthread_t t[THREADS];
    pthread_barrier_init(&all_in, NULL, THREADS);
    for (long i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)(i + 1)) != 0) {
            perror("pthread_create");
            return 1;
        }
    long ok = 0;
    for (int i = 0; i < THREADS; i++) {
        void *r;
        pthread_join(t[i], &r);
        ok += (long)r;
    }
    printf("%ld of %d threads malloc'd in their own arenas\n", ok, THREADS);

    size_t big = 4UL << 30;
    char *r = mmap(NULL, big, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED) {
        perror("mmap PROT_NONE 4 GiB");
        return 1;
    }
    /* /proc/self/maps lists the reservation, inaccessible. */
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[512], perms[8] = "none";
    while (maps && fgets(line, sizeof line, maps)) {
        unsigned long lo, hi;
        char p[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, p) == 3 && lo == (unsigned long)r)
            strcpy(perms, p);
    }
    if (maps)
        fclose(maps);
    printf("maps shows the reservation as %s\n", perms);
    char *mid = r + (1UL << 30);
    printf("mprotect of 1 MiB inside: %d\n", mprotect(mid, 1 << 20, PROT_READ | PROT_WRITE));
    int zero = 1;
    for (int i = 0; i < 1 << 20; i += 4096)
        zero &= mid[i] == 0;
    strcpy(mid, "opened");
    printf("opened piece zeroed %d holds \"%s\"\n", zero, mid);
    pid_t pid = fork();
    if (pid == 0) {
        printf("child sees \"%s\"\n", mid);
        mid[-1] = 1; /* still reserved: SIGSEGV */
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("child's store below the piece: %s\n",
           WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "no signal");
    printf("mprotect back to PROT_NONE: %d\n", mprotect(mid, 1 << 20, PROT_NONE));
    printf("mprotect again: %d, holds \"%s\"\n", mprotect(mid, 4096, PROT_READ), mid);
    char *moved = mremap(r + (2UL << 30), 1UL << 30, 2UL << 30, MREMAP_MAYMOVE);
    printf("mremap of a reserved GiB to 2 GiB: %s\n", moved == MAP_FAILED ? "failed" : "ok");
    printf("munmap: %d %d\n", munmap(r, 2UL << 30), moved == MAP_FAILED ? 0 : munmap(moved, 2UL << 30));
    return 0;
}
