/* Anonymous shared memory across fork: MAP_SHARED|MAP_ANONYMOUS and shared
 * /dev/zero stay shared with children (private mappings keep their copy),
 * process-shared mutexes and semaphores work between processes, and
 * madvise/mremap/mprotect/munmap behave as on Linux for shared mappings.
 * Usage: shmanon MODE (counter, devzero, madvise, mremap, sem, mprotect,
 * maps, big, many). Prints results compared with a native run. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static void die(const char *what) {
    printf("FAIL %s: %s\n", what, strerror(errno));
    exit(1);
}

static void *shared(size_t len) {
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        die("mmap shared");
    return p;
}

static int child_status(pid_t pid) {
    int st;
    if (waitpid(pid, &st, 0) != pid)
        die("waitpid");
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

struct counter {
    pthread_mutex_t lock;
    long count;
};

static void bump(struct counter *c, int n) {
    for (int i = 0; i < n; i++) {
        pthread_mutex_lock(&c->lock);
        c->count++;
        pthread_mutex_unlock(&c->lock);
    }
}

/* Parent and child increment one shared counter under a process-shared
 * mutex; a private page written by the child keeps the parent's value. */
static void counter(void) {
    struct counter *c = shared(4096);
    int *priv = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (priv == MAP_FAILED)
        die("mmap private");
    *priv = 7;
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(&c->lock, &a);
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        *priv = 42;
        bump(c, 100000);
        _exit(0);
    }
    bump(c, 100000);
    int st = child_status(pid);
    printf("child %d count %ld private %d\n", st, c->count, *priv);
}

/* /dev/zero mapped shared is anonymous shared memory. */
static void devzero(void) {
    int fd = open("/dev/zero", O_RDWR);
    if (fd < 0)
        die("open /dev/zero");
    int *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        die("mmap /dev/zero");
    close(fd);
    printf("initially %d %d\n", p[0], p[2047]);
    pid_t pid = fork();
    if (pid == 0) {
        p[0] = 42;
        p[2047] = 43;
        _exit(0);
    }
    int st = child_status(pid);
    printf("child %d sees %d %d\n", st, p[0], p[2047]);
}

/* MADV_DONTNEED keeps a shared object's contents; MADV_REMOVE zeroes them
 * (for every process mapping it); MADV_REMOVE on private memory is EINVAL. */
static void madvise_mode(void) {
    int *p = shared(3 * 4096);
    p[0] = 1;
    p[1024] = 2;
    p[2048] = 3;
    printf("dontneed %d", madvise(p, 3 * 4096, MADV_DONTNEED));
    printf(" -> %d %d %d\n", p[0], p[1024], p[2048]);
    pid_t pid = fork();
    if (pid == 0) {
        int r = madvise((char *)p + 4096, 4096, MADV_REMOVE);
        _exit(r == 0 ? 0 : 1);
    }
    int st = child_status(pid);
    printf("remove in child %d -> %d %d %d\n", st, p[0], p[1024], p[2048]);
    int *q = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    errno = 0;
    int r = madvise(q, 4096, MADV_REMOVE);
    printf("remove private %d %s\n", r, r ? strerror(errno) : "");
}

/* A shared mapping moved with mremap is still the same object; shrinking
 * keeps the rest shared; munmap of part of it leaves the rest working. */
static void mremap_mode(void) {
    char *p = shared(4 * 4096);
    strcpy(p, "before");
    char *hint = mmap(NULL, 8 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (hint == MAP_FAILED)
        die("mmap hint");
    char *q = mremap(p, 4 * 4096, 4 * 4096, MREMAP_MAYMOVE | MREMAP_FIXED, hint + 4096);
    if (q == MAP_FAILED)
        die("mremap move");
    printf("moved %s same-contents %s\n", q == hint + 4096 ? "to the fixed address" : "elsewhere", q);
    char *r = mremap(q, 4 * 4096, 2 * 4096, 0);
    if (r != q)
        die("mremap shrink");
    if (munmap(q + 4096, 4096))
        die("munmap part");
    pid_t pid = fork();
    if (pid == 0) {
        strcpy(q, "after");
        _exit(0);
    }
    int st = child_status(pid);
    printf("child %d wrote %s\n", st, q);
}

/* Semaphores with pshared=1 in shared memory: ping-pong between processes. */
static void sem_mode(void) {
    sem_t *s = shared(4096);
    int *turns = (int *)(s + 2);
    if (sem_init(&s[0], 1, 0) || sem_init(&s[1], 1, 0))
        die("sem_init");
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 2000; i++) {
            sem_wait(&s[0]);
            (*turns)++;
            sem_post(&s[1]);
        }
        _exit(0);
    }
    for (int i = 0; i < 2000; i++) {
        (*turns)++;
        sem_post(&s[0]);
        sem_wait(&s[1]);
    }
    int st = child_status(pid);
    printf("child %d turns %d\n", st, *turns);
}

/* mprotect of a shared mapping in one process does not change the other's. */
static void mprotect_mode(void) {
    volatile int *p = shared(4096);
    int pipefd[2];
    if (pipe(pipefd))
        die("pipe");
    pid_t pid = fork();
    if (pid == 0) {
        if (mprotect((void *)p, 4096, PROT_READ))
            _exit(2);
        char c;
        if (read(pipefd[0], &c, 1) != 1) /* the parent wrote */
            _exit(3);
        _exit(p[0] == 99 ? 0 : 4);
    }
    p[0] = 99; /* still writable here */
    if (write(pipefd[1], "x", 1) != 1)
        die("write");
    printf("child %d\n", child_status(pid));
}

/* /proc/self/maps shows a shared anonymous mapping as Linux does. */
static void maps(void) {
    char *p = shared(2 * 4096);
    char want[32];
    snprintf(want, sizeof want, "%lx-", (unsigned long)p);
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        die("open maps");
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, want, strlen(want)))
            continue;
        char perms[8], name[256] = "";
        unsigned long lo, hi, off, inode;
        char dev[16];
        sscanf(line, "%lx-%lx %7s %lx %15s %lu %255[^\n]", &lo, &hi, perms, &off, dev, &inode, name);
        printf("%lu pages %s %s\n", (hi - lo) / 4096, perms, name);
    }
    fclose(f);
}

/* A large shared mapping (2 MiB pages inside): children write at many
 * offsets, the parent sees every write. */
static void big(void) {
    size_t len = 8 << 20;
    unsigned char *p = shared(len);
    pid_t pid = fork();
    if (pid == 0) {
        for (size_t off = 0; off < len; off += 4096)
            p[off] = (unsigned char)(off >> 12);
        _exit(0);
    }
    int st = child_status(pid);
    size_t bad = 0;
    for (size_t off = 0; off < len; off += 4096)
        bad += p[off] != (unsigned char)(off >> 12);
    printf("child %d bad %zu\n", st, bad);
}

/* Many shared mappings and many processes: mappings and objects are freed
 * when the last process unmaps them (the loop would exhaust memory otherwise). */
static void many(void) {
    long total = 0;
    for (int round = 0; round < 40; round++) {
        long *p = shared(32 << 20);
        pid_t pid = fork();
        if (pid == 0) {
            p[0] = round;
            _exit(0);
        }
        child_status(pid);
        total += p[0];
        if (munmap(p, 32 << 20))
            die("munmap");
    }
    printf("total %ld\n", total);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *m = argc > 1 ? argv[1] : "counter";
    if (!strcmp(m, "counter"))
        counter();
    else if (!strcmp(m, "devzero"))
        devzero();
    else if (!strcmp(m, "madvise"))
        madvise_mode();
    else if (!strcmp(m, "mremap"))
        mremap_mode();
    else if (!strcmp(m, "sem"))
        sem_mode();
    else if (!strcmp(m, "mprotect"))
        mprotect_mode();
    else if (!strcmp(m, "maps"))
        maps();
    else if (!strcmp(m, "big"))
        big();
    else if (!strcmp(m, "many"))
        many();
    else {
        printf("unknown mode %s\n", m);
        return 2;
    }
    return 0;
}
