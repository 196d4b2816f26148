/* Shared file mappings: MAP_SHARED of /dev/shm files, memfds and regular
 * files share the bytes of the host file (Linux's page cache) with read(),
 * write() and every other process, Linux processes included.
 * Usage: shmfile MODE [PATH]. Modes:
 *   coherent PATH  map PATH (16 KiB, made by the caller with bytes i & 0xff),
 *                  check it, store "lwk" at 8192, msync, check read() sees it,
 *                  print "stored", wait for a line on stdin (the caller has
 *                  written "host" at 12288 with write()), print what the
 *                  mapping shows there
 *   access PATH    EACCES for PROT_WRITE+MAP_SHARED of an O_RDONLY fd, and
 *                  a read-only shared mapping reads the file
 *   private PATH   MAP_PRIVATE stores stay private (the file keeps its bytes)
 *   fork PATH      parent and child count to 200000 under a process-shared
 *                  mutex in a shared file mapping; the file holds the result
 *   memfd          memfd_create + ftruncate + MAP_SHARED, twice mapped: both
 *                  views and read() agree
 *   shmopen        shm_open + MAP_SHARED + fork; munmap/close; shm_unlink
 *   many           map and unmap 100 different files, one at a time
 *   subpage DIR    a fresh 100-byte file in DIR mapped shared for a whole
 *                  page: the bytes past its end read as zero, stores reach
 *                  read() (those past the end do not grow the file), and
 *                  write() reaches the mapping
 *   pasteof DIR    a fresh 100-byte file in DIR mapped shared for three
 *                  pages: the first is the file's, touching the others is
 *                  SIGBUS (BUS_ADRERR), and a read() into them EFAULT
 *   shrink DIR     a 3-page file in DIR mapped shared, truncated to 100
 *                  bytes, then its third page touched by a child (Linux:
 *                  SIGBUS in the child); the first page still works
 *   futexwait PATH / futexwake PATH
 *                  FUTEX_WAIT on the first word of PATH (a zeroed page) until
 *                  woken / FUTEX_WAKE it until a waiter was woken: together
 *                  they end only when a wake reached the waiter
 *   count PATH N P add N to a counter in PATH (a page, zeroed by the caller)
 *                  under a process-shared mutex that the first of P
 *                  concurrent processes (LWK or Linux) initialises; all start
 *                  together and yield while holding the mutex now and then,
 *                  so that each side waits for the other on the mutex
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/futex.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void die(const char *what) {
    printf("FAIL %s: %s\n", what, strerror(errno));
    exit(1);
}

static int open_or_die(const char *path, int flags) {
    int fd = open(path, flags, 0600);
    if (fd < 0)
        die(path);
    return fd;
}

static void coherent(const char *path) {
    int fd = open_or_die(path, O_RDWR);
    unsigned char *p = mmap(NULL, 16384, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        die("mmap");
    size_t bad = 0;
    for (size_t i = 0; i < 16384; i++)
        bad += p[i] != (unsigned char)i;
    printf("initial bytes wrong: %zu\n", bad);
    memcpy(p + 8192, "lwk", 4);
    if (msync(p, 16384, MS_SYNC))
        die("msync");
    char buf[4] = "";
    if (pread(fd, buf, 4, 8192) != 4)
        die("pread");
    printf("read() sees: %s\n", buf);
    printf("stored\n");
    char line[16];
    if (!fgets(line, sizeof line, stdin))
        die("stdin");
    printf("mapping sees: %s\n", (char *)p + 12288);
    munmap(p, 16384);
    close(fd);
}

static void access_mode(const char *path) {
    int fd = open_or_die(path, O_RDONLY);
    void *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    printf("rw shared of O_RDONLY: %s\n", w == MAP_FAILED ? strerror(errno) : "mapped");
    unsigned char *r = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    if (r == MAP_FAILED)
        die("mmap read-only");
    printf("read-only shared: %d %d\n", r[1], r[4095]);
    void *pw = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    printf("rw private of O_RDONLY: %s\n", pw == MAP_FAILED ? strerror(errno) : "mapped");
}

static void private_mode(const char *path) {
    int fd = open_or_die(path, O_RDWR);
    unsigned char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED)
        die("mmap");
    p[10] = 0xee;
    unsigned char c;
    if (pread(fd, &c, 1, 10) != 1)
        die("pread");
    printf("private store %d, file keeps %d\n", p[10], c);
}

struct shared_counter {
    pthread_mutex_t lock;
    long count;
};

static void fork_mode(const char *path) {
    int fd = open_or_die(path, O_RDWR);
    struct shared_counter *c = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (c == MAP_FAILED)
        die("mmap");
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(&c->lock, &a);
    c->count = 0;
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    for (int i = 0; i < 100000; i++) {
        pthread_mutex_lock(&c->lock);
        c->count++;
        pthread_mutex_unlock(&c->lock);
    }
    if (pid == 0)
        _exit(0);
    int st;
    waitpid(pid, &st, 0);
    long in_file;
    if (pread(fd, &in_file, sizeof in_file, offsetof(struct shared_counter, count)) != sizeof in_file)
        die("pread");
    printf("child %d count %ld file %ld\n", WEXITSTATUS(st), c->count, in_file);
}

static void memfd_mode(void) {
    int fd = memfd_create("margay-test", 0);
    if (fd < 0)
        die("memfd_create");
    if (ftruncate(fd, 3 * 4096))
        die("ftruncate");
    char *a = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    char *b = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 4096);
    if (a == MAP_FAILED || b == MAP_FAILED)
        die("mmap");
    strcpy(a + 4096, "through a");
    if (pwrite(fd, "by write", 9, 8192) != 9)
        die("pwrite");
    char buf[16] = "";
    if (pread(fd, buf, 10, 4096) != 10)
        die("pread");
    printf("b sees '%s', read sees '%s', a sees '%s'\n", b, buf, a + 8192);
}

static void shmopen_mode(void) {
    char name[64];
    snprintf(name, sizeof name, "/margay-test-%d", getpid());
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        die("shm_open");
    if (ftruncate(fd, 65536))
        die("ftruncate");
    long *p = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        die("mmap");
    close(fd);
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 8192; i++)
            p[i] = i;
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    long sum = 0;
    for (int i = 0; i < 8192; i++)
        sum += p[i];
    munmap(p, 65536);
    fd = shm_open(name, O_RDONLY, 0);
    long last;
    if (pread(fd, &last, sizeof last, 8191 * sizeof(long)) != sizeof last)
        die("pread");
    close(fd);
    printf("sum %ld last %ld unlink %d\n", sum, last, shm_unlink(name));
}

static void many(void) {
    long total = 0;
    for (int i = 0; i < 100; i++) {
        char name[64];
        snprintf(name, sizeof name, "/margay-many-%d-%d", getpid(), i);
        int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
        if (fd < 0)
            die("shm_open");
        if (ftruncate(fd, 4096))
            die("ftruncate");
        int *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            die("mmap");
        p[0] = i;
        int v;
        if (pread(fd, &v, sizeof v, 0) != sizeof v)
            die("pread");
        total += v;
        munmap(p, 4096);
        close(fd);
        shm_unlink(name);
    }
    printf("total %ld\n", total);
}

static void subpage(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/small-%d", dir, getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || ftruncate(fd, 100) != 0) {
        perror(path);
        exit(1);
    }
    unlink(path);
    unsigned char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        printf("mmap of a 100-byte file: %s\n", strerror(errno));
        exit(1);
    }
    int zero = 1;
    for (int i = 0; i < 4096; i++)
        zero &= p[i] == 0;
    memcpy(p, "through the mapping", 19);
    p[200] = 'x';
    char buf[32] = {0};
    if (pread(fd, buf, 19, 0) != 19 || pwrite(fd, "written", 7, 50) != 7) {
        perror("pread/pwrite");
        exit(1);
    }
    struct stat sb;
    fstat(fd, &sb);
    printf("page zero %d, read() sees \"%s\", size %lld, mapping sees \"%.7s\"\n", zero, buf,
           (long long)sb.st_size, (const char *)p + 50);
}

static void on_bus(int sig, siginfo_t *si, void *ctx) {
    (void)ctx;
    printf("signal %s code %s\n", sig == SIGBUS ? "SIGBUS" : "other",
           si->si_code == BUS_ADRERR ? "BUS_ADRERR" : "other");
    _exit(0);
}

static void pasteof(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/short-%d", dir, getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || ftruncate(fd, 100) != 0) {
        perror(path);
        exit(1);
    }
    unlink(path);
    char *p = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        printf("mmap of 3 pages of a 100-byte file: %s\n", strerror(errno));
        exit(1);
    }
    p[0] = 'a';
    printf("first page usable: %c\n", p[0]);
    int pipefd[2];
    if (pipe(pipefd) != 0 || write(pipefd[1], "xy", 2) != 2) {
        perror("pipe");
        exit(1);
    }
    ssize_t n = read(pipefd[0], p + 4096, 2);
    printf("read() into the second page: %s\n", n < 0 ? strerror(errno) : "ok");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_bus;
        sa.sa_flags = SA_SIGINFO;
        sigaction(SIGBUS, &sa, NULL);
        p[2 * 4096] = 'z';
        printf("no signal\n");
        _exit(1);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("munmap: %d\n", munmap(p, 3 * 4096));
}

static void shrink(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/shrink-%d", dir, getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || ftruncate(fd, 3 * 4096) != 0) {
        perror(path);
        exit(1);
    }
    unlink(path);
    char *p = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    p[2 * 4096] = 'x';
    if (ftruncate(fd, 100) != 0) {
        perror("ftruncate");
        exit(1);
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        p[2 * 4096] = 'y';
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("child: %s\n", WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "exited");
    p[0] = 'k';
    char c = 0;
    printf("first page still shared: %d\n", pread(fd, &c, 1, 0) == 1 && c == 'k');
}

struct shared_page {
    pthread_mutex_t lock;
    long count;
    int state; /* 0 new, 1 being initialised, 2 ready */
    int arrived;
};

static void count_mode(const char *path, long n, int parties) {
    int fd = open_or_die(path, O_RDWR);
    struct shared_page *s = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (s == MAP_FAILED)
        die("mmap");
    int expected = 0;
    if (__atomic_compare_exchange_n(&s->state, &expected, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        pthread_mutexattr_t a;
        pthread_mutexattr_init(&a);
        pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
        pthread_mutex_init(&s->lock, &a);
        __atomic_store_n(&s->state, 2, __ATOMIC_RELEASE);
    }
    while (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != 2)
        sched_yield();
    __atomic_add_fetch(&s->arrived, 1, __ATOMIC_ACQ_REL);
    while (__atomic_load_n(&s->arrived, __ATOMIC_ACQUIRE) < parties)
        sched_yield();
    for (long i = 0; i < n; i++) {
        pthread_mutex_lock(&s->lock);
        s->count++;
        if (i % 64 == 0)
            sched_yield(); /* the others find the mutex taken and wait */
        pthread_mutex_unlock(&s->lock);
    }
    printf("added %ld\n", n);
}

static void futex_mode(const char *path, int wait) {
    int fd = open_or_die(path, O_RDWR);
    int *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (w == MAP_FAILED)
        die("mmap");
    if (wait) {
        long r;
        do
            r = syscall(SYS_futex, w, FUTEX_WAIT, 0, NULL, NULL, 0);
        while (r != 0 && errno == EINTR);
        printf("woken %ld\n", r);
    } else {
        while (syscall(SYS_futex, w, FUTEX_WAKE, 1, NULL, NULL, 0) != 1)
            sched_yield();
        printf("woke a waiter\n");
    }
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *m = argc > 1 ? argv[1] : "";
    const char *path = argc > 2 ? argv[2] : "";
    if (!strcmp(m, "coherent"))
        coherent(path);
    else if (!strcmp(m, "access"))
        access_mode(path);
    else if (!strcmp(m, "private"))
        private_mode(path);
    else if (!strcmp(m, "fork"))
        fork_mode(path);
    else if (!strcmp(m, "memfd"))
        memfd_mode();
    else if (!strcmp(m, "shmopen"))
        shmopen_mode();
    else if (!strcmp(m, "many"))
        many();
    else if (!strcmp(m, "subpage"))
        subpage(path);
    else if (!strcmp(m, "pasteof"))
        pasteof(path);
    else if (!strcmp(m, "shrink"))
        shrink(path);
    else if (!strcmp(m, "futexwait") || !strcmp(m, "futexwake"))
        futex_mode(path, !strcmp(m, "futexwait"));
    else if (!strcmp(m, "count"))
        count_mode(path, argc > 3 ? atol(argv[3]) : 0, argc > 4 ? atoi(argv[4]) : 1);
    else {
        printf("unknown mode %s\n", m);
        return 2;
    }
    return 0;
}
