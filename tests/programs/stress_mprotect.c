/* stress_mprotect: TLB coherence. A writer thread stores to a page in a
 * loop while the main thread (on another core) makes the page read-only.
 * Once mprotect has returned, the writer's next store must fault: no core
 * may keep a stale writable translation. The writer records each store's
 * value after it lands; the main thread notes how many had landed when
 * mprotect returned, and checks afterwards that at most one more (a store
 * already past its translation) reached the page. */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static volatile uint64_t *page;
static volatile uint64_t landed; /* stores the writer saw complete */
static volatile int faulted;
static sigjmp_buf out;

static void on_segv(int sig)
{
    (void)sig;
    faulted = 1;
    siglongjmp(out, 1);
}

static void *writer(void *arg)
{
    (void)arg;
    if (sigsetjmp(out, 1) == 0) {
        for (uint64_t i = 1;; i++) {
            page[0] = i;
            landed = i;
        }
    }
    return NULL;
}

int main(void)
{
    int rounds = 20, bad = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_segv;
    sigaction(SIGSEGV, &sa, NULL);
    for (int r = 0; r < rounds; r++) {
        page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (page == MAP_FAILED) {
            perror("mmap");
            return 1;
        }
        landed = 0;
        faulted = 0;
        pthread_t t;
        pthread_create(&t, NULL, writer, NULL);
        while (landed < 100000)
            ;
        if (mprotect((void *)page, 4096, PROT_READ) != 0) {
            perror("mprotect");
            return 1;
        }
        uint64_t at_return = landed;
        pthread_join(t, NULL);
        uint64_t last = page[0];
        if (!faulted || last > at_return + 1) {
            printf("round %d: %llu stores had landed when mprotect returned, the page holds %llu%s\n", r,
                   (unsigned long long)at_return, (unsigned long long)last, faulted ? "" : ", no fault");
            bad++;
        }
        munmap((void *)page, 4096);
    }
    printf("mprotect: %d of %d rounds with stores after the downgrade\n", bad, rounds);
    return bad != 0;
}
