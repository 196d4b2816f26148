/* threads: pthread behaviours the LWK must get exactly right.
 * Usage: threads TEST [NTHREADS]
 *   counter   N threads increment a mutex-protected counter 100000 times each
 *   condvar   producer/consumer through a bounded queue with condition variables
 *   barrier   rounds of pthread_barrier_wait with a shared checksum
 *   tls       __thread values stay per thread
 *   join      pthread_join returns each thread's value
 *   detached  detached threads finish and signal through a semaphore-like counter
 *   piperead  one thread blocks in read() on a pipe while others compute
 *   affinity  a thread pins itself to each core in turn; getcpu agrees
 *   robust    a thread dies holding a robust mutex: the next lock gets EOWNERDEAD
 *   slice     two threads spin until each sees the other progress (needs preemption on one core)
 * Output is deterministic (no timings, no tids). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int nthreads = 4;

/* ---- counter ---- */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;
static void *count_worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100000; i++) {
        pthread_mutex_lock(&lock);
        counter++;
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

static int test_counter(void)
{
    pthread_t t[64];
    for (int i = 0; i < nthreads; i++)
        pthread_create(&t[i], NULL, count_worker, NULL);
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    printf("counter=%ld expected=%ld\n", counter, 100000L * nthreads);
    return counter == 100000L * nthreads ? 0 : 1;
}

/* ---- condvar ---- */
#define QCAP 8
static int q[QCAP], qhead, qlen;
static pthread_cond_t notempty = PTHREAD_COND_INITIALIZER, notfull = PTHREAD_COND_INITIALIZER;
static const int ITEMS = 20000;
static void *producer(void *arg)
{
    (void)arg;
    for (int i = 1; i <= ITEMS; i++) {
        pthread_mutex_lock(&lock);
        while (qlen == QCAP)
            pthread_cond_wait(&notfull, &lock);
        q[(qhead + qlen) % QCAP] = i;
        qlen++;
        pthread_cond_signal(&notempty);
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    long sum = 0;
    (void)arg;
    for (int i = 0; i < ITEMS; i++) {
        pthread_mutex_lock(&lock);
        while (qlen == 0)
            pthread_cond_wait(&notempty, &lock);
        sum += q[qhead];
        qhead = (qhead + 1) % QCAP;
        qlen--;
        pthread_cond_signal(&notfull);
        pthread_mutex_unlock(&lock);
    }
    return (void *)sum;
}

static int test_condvar(void)
{
    pthread_t p, c;
    void *sum;
    pthread_create(&c, NULL, consumer, NULL);
    pthread_create(&p, NULL, producer, NULL);
    pthread_join(p, NULL);
    pthread_join(c, &sum);
    long expect = (long)ITEMS * (ITEMS + 1) / 2;
    printf("condvar sum=%ld expected=%ld\n", (long)sum, expect);
    return (long)sum == expect ? 0 : 1;
}

/* ---- barrier ---- */
static pthread_barrier_t bar;
static long slots[64];
static const int ROUNDS = 50;
static void *barrier_worker(void *arg)
{
    long id = (long)arg;
    for (int r = 0; r < ROUNDS; r++) {
        slots[id] = id * 1000 + r;
        pthread_barrier_wait(&bar);
        /* everyone sees everyone's value of this round */
        for (int j = 0; j < nthreads; j++)
            if (slots[j] != j * 1000 + r)
                return (void *)1;
        pthread_barrier_wait(&bar);
    }
    return NULL;
}

static int test_barrier(void)
{
    pthread_t t[64];
    pthread_barrier_init(&bar, NULL, nthreads);
    for (long i = 0; i < nthreads; i++)
        pthread_create(&t[i], NULL, barrier_worker, (void *)i);
    int bad = 0;
    for (int i = 0; i < nthreads; i++) {
        void *r;
        pthread_join(t[i], &r);
        bad |= r != NULL;
    }
    printf("barrier rounds=%d threads=%d %s\n", ROUNDS, nthreads, bad ? "MISMATCH" : "ok");
    return bad;
}

/* ---- tls ---- */
static __thread long tls_value = 7;
static __thread char tls_buf[64];
static void *tls_worker(void *arg)
{
    long id = (long)arg;
    if (tls_value != 7)
        return (void *)1;
    tls_value = id * 11;
    snprintf(tls_buf, sizeof tls_buf, "thread-%ld", id);
    sched_yield();
    usleep(1000);
    char want[64];
    snprintf(want, sizeof want, "thread-%ld", id);
    return (void *)(long)(tls_value != id * 11 || strcmp(tls_buf, want) != 0);
}

static int test_tls(void)
{
    pthread_t t[64];
    for (long i = 0; i < nthreads; i++)
        pthread_create(&t[i], NULL, tls_worker, (void *)(i + 1));
    int bad = 0;
    for (int i = 0; i < nthreads; i++) {
        void *r;
        pthread_join(t[i], &r);
        bad |= r != NULL;
    }
    printf("tls main=%ld threads %s\n", tls_value, bad ? "MIXED" : "ok");
    return bad || tls_value != 7;
}

/* ---- join ---- */
static void *join_worker(void *arg)
{
    return (void *)((long)arg * (long)arg);
}

static int test_join(void)
{
    pthread_t t[64];
    for (long i = 0; i < nthreads; i++)
        pthread_create(&t[i], NULL, join_worker, (void *)(i + 2));
    int bad = 0;
    for (long i = 0; i < nthreads; i++) {
        void *r;
        pthread_join(t[i], &r);
        printf("join %ld -> %ld\n", i, (long)r);
        bad |= (long)r != (i + 2) * (i + 2);
    }
    return bad;
}

/* ---- detached ---- */
static int finished;
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;
static void *detached_worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    finished++;
    pthread_cond_broadcast(&done_cv);
    pthread_mutex_unlock(&lock);
    return NULL;
}

static int test_detached(void)
{
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < nthreads; i++) {
            pthread_t t;
            if (pthread_create(&t, &a, detached_worker, NULL) != 0)
                return 1;
        }
    pthread_mutex_lock(&lock);
    while (finished < 3 * nthreads)
        pthread_cond_wait(&done_cv, &lock);
    pthread_mutex_unlock(&lock);
    printf("detached finished=%d\n", finished);
    return 0;
}

/* ---- piperead ---- */
static int pfd[2];
static volatile int compute_done;
static void *reader(void *arg)
{
    char buf[32] = {0};
    (void)arg;
    ssize_t n = read(pfd[0], buf, sizeof buf - 1);
    return (void *)(long)(n == 5 && strcmp(buf, "ready") == 0 && compute_done);
}

static void *computer(void *arg)
{
    volatile unsigned long x = (unsigned long)arg;
    for (long i = 0; i < 3000000; i++)
        x = x * 6364136223846793005UL + 1442695040888963407UL;
    return (void *)(x | 1);
}

static int test_piperead(void)
{
    pthread_t r, c[64];
    if (pipe(pfd))
        return 1;
    pthread_create(&r, NULL, reader, NULL);
    for (long i = 0; i < nthreads; i++)
        pthread_create(&c[i], NULL, computer, (void *)(i + 1));
    for (int i = 0; i < nthreads; i++)
        pthread_join(c[i], NULL);
    compute_done = 1;
    if (write(pfd[1], "ready", 5) != 5)
        return 1;
    void *ok;
    pthread_join(r, &ok);
    printf("piperead computed while blocked: %s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}

/* ---- slice: two threads that spin (no syscalls) until each sees the other
 * make progress; on one core this finishes only with preemption ---- */
static volatile long progress[2];
static void *slicer(void *arg)
{
    long me = (long)arg, other = 1 - me;
    while (progress[other] < 3 || progress[me] < 3) {
        progress[me]++;
        for (volatile long i = 0; i < 200000; i++)
            ;
    }
    return NULL;
}

static int test_slice(void)
{
    pthread_t t[2];
    for (long i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, slicer, (void *)i);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    printf("slice: both spinning threads progressed\n");
    return 0;
}

/* ---- robust: a thread dies holding a robust mutex; the next locker gets
 * EOWNERDEAD (the kernel walks the dead thread's robust list) ---- */
static pthread_mutex_t robust_m;
static void *robust_owner(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&robust_m);
    return NULL; /* exits holding it */
}

static int test_robust(void)
{
    pthread_mutexattr_t at;
    pthread_mutexattr_init(&at);
    pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&robust_m, &at);
    pthread_t t;
    pthread_create(&t, NULL, robust_owner, NULL);
    pthread_join(t, NULL);
    int r = pthread_mutex_lock(&robust_m);
    printf("robust lock after owner died: %s\n", r == EOWNERDEAD ? "EOWNERDEAD" : "other");
    if (r != EOWNERDEAD)
        return 1;
    pthread_mutex_consistent(&robust_m);
    pthread_mutex_unlock(&robust_m);
    return 0;
}

/* ---- affinity ---- */
static int test_affinity(void)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int bad = 0;
    for (int round = 0; round < 2; round++)
        for (int c = 0; c < ncpu; c++) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(c, &set);
            if (sched_setaffinity(0, sizeof set, &set) != 0) {
                perror("sched_setaffinity");
                return 1;
            }
            unsigned cpu = 999, node = 999;
            syscall(SYS_getcpu, &cpu, &node, NULL);
            if ((int)cpu != c)
                bad = 1;
            printf("pinned to %d: getcpu says %u\n", c, cpu);
        }
    return bad;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: threads TEST [NTHREADS]\n");
        return 2;
    }
    if (argc > 2)
        nthreads = atoi(argv[2]);
    if (nthreads < 1 || nthreads > 64)
        return 2;
    const char *t = argv[1];
    if (!strcmp(t, "counter")) return test_counter();
    if (!strcmp(t, "condvar")) return test_condvar();
    if (!strcmp(t, "barrier")) return test_barrier();
    if (!strcmp(t, "tls")) return test_tls();
    if (!strcmp(t, "join")) return test_join();
    if (!strcmp(t, "detached")) return test_detached();
    if (!strcmp(t, "piperead")) return test_piperead();
    if (!strcmp(t, "affinity")) return test_affinity();
    if (!strcmp(t, "slice")) return test_slice();
    if (!strcmp(t, "robust")) return test_robust();
    fprintf(stderr, "unknown test %s\n", t);
    return 2;
}
