/* SysV shared memory on the LWK, compared with a native run.
 *   basic            shmget/shmat/shmdt/shmctl: attach counts, sharing
 *                    across fork, SHM_RDONLY, a second attach, IPC_RMID with
 *                    attachments left, and the errors Linux gives
 *   concurrent N     N children attach one segment at the same time (the
 *                    first attach plugs it while the others wait), each
 *                    stores its number; the parent sees every store
 *   put KEY TEXT     create segment KEY (4096 bytes), store TEXT, detach,
 *                    leave it for another process (LWK or Linux)
 *   take KEY         attach segment KEY, print its text, remove it
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

static int nattch(int id)
{
    struct shmid_ds ds;
    if (shmctl(id, IPC_STAT, &ds) != 0)
        return -errno;
    return (int)ds.shm_nattch;
}

/* The /proc/self/maps line of address p: its permissions and name. */
static void maps_line(const void *p)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char perms[8], name[256] = "";
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %255[^\n]", &lo, &hi, perms, name) >= 3 &&
            (unsigned long)p >= lo && (unsigned long)p < hi) {
            /* The key of an IPC_PRIVATE segment is 0: "/SYSV00000000 (deleted)". */
            printf("maps: %s %s\n", perms, name);
        }
    }
    if (f)
        fclose(f);
}

static void basic(void)
{
    int id = shmget(IPC_PRIVATE, 10000, IPC_CREAT | 0600);
    if (id < 0) {
        perror("shmget");
        exit(1);
    }
    struct shmid_ds ds;
    shmctl(id, IPC_STAT, &ds);
    printf("size %zu nattch %d mode %o\n", (size_t)ds.shm_segsz, (int)ds.shm_nattch,
           ds.shm_perm.mode & 0777);
    char *p = shmat(id, NULL, 0);
    if (p == (void *)-1) {
        perror("shmat");
        exit(1);
    }
    int zero = 1;
    for (int i = 0; i < 10000; i++)
        zero &= p[i] == 0;
    strcpy(p, "parent");
    printf("attached: zeroed %d nattch %d\n", zero, nattch(id));
    maps_line(p);
    pid_t pid = fork();
    if (pid == 0) {
        printf("child sees \"%s\" nattch %d\n", p, nattch(id));
        strcpy(p + 5000, "from the child");
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("parent sees \"%s\" nattch %d\n", p + 5000, nattch(id));
    char *q = shmat(id, NULL, SHM_RDONLY);
    printf("read-only attach sees \"%s\" nattch %d distinct %d\n", q, nattch(id), q != p);
    maps_line(q);
    pid = fork();
    if (pid == 0) {
        q[0] = 'x'; /* SIGSEGV: attached read-only */
        _exit(0);
    }
    waitpid(pid, &st, 0);
    printf("store through read-only attach: %s\n",
           WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "no signal");
    int rc = shmdt(q);
    printf("shmdt ro %d nattch %d\n", rc, nattch(id));
    /* A fixed address, and SHM_RND. */
    char *want = p + (1 << 24);
    char *r = shmat(id, want + 100, SHM_RND);
    printf("SHM_RND attach at the rounded address %d sees \"%s\"\n", r == want, r);
    printf("attach over it without SHM_REMAP: %s\n",
           shmat(id, want, 0) == (void *)-1 ? strerror(errno) : "attached");
    printf("shmdt inside a segment: %s\n", shmdt(r + 4096) == -1 ? strerror(errno) : "ok");
    shmdt(r);
    /* Removed while attached: lives until the last detach. */
    rc = shmctl(id, IPC_RMID, NULL);
    printf("IPC_RMID %d nattch %d\n", rc, nattch(id));
    strcpy(p + 100, "still here");
    printf("after IPC_RMID: \"%s\"\n", p + 100);
    rc = shmdt(p);
    int n = nattch(id);
    printf("shmdt %d, then IPC_STAT: %s\n", rc, n < 0 ? strerror(-n) : "still there");
    printf("shmdt again: %s\n", shmdt(p) == -1 ? strerror(errno) : "ok");
    printf("shmat of a bad id: %s\n", shmat(-1, NULL, 0) == (void *)-1 ? strerror(errno) : "ok");
    printf("shmget of 1 TiB: %s\n",
           shmget(IPC_PRIVATE, 1ULL << 40, IPC_CREAT | 0600) < 0 ? strerror(errno) : "ok");
}

static void concurrent(int n)
{
    int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
    pid_t kids[64];
    for (int i = 0; i < n && i < 64; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            char *p = shmat(id, NULL, 0);
            if (p == (void *)-1)
                _exit(1);
            p[i] = (char)(i + 1);
            _exit(shmdt(p) == 0 ? 0 : 1);
        }
    }
    int ok = 0;
    for (int i = 0; i < n && i < 64; i++) {
        int st;
        waitpid(kids[i], &st, 0);
        ok += WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    char *p = shmat(id, NULL, SHM_RDONLY);
    int seen = 0;
    for (int i = 0; i < n && i < 64; i++)
        seen += p[i] == (char)(i + 1);
    shmdt(p);
    shmctl(id, IPC_RMID, NULL);
    printf("%d children attached, %d stores seen\n", ok, seen);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc >= 3 && !strcmp(argv[1], "concurrent")) {
        concurrent(atoi(argv[2]));
        return 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "basic")) {
        basic();
        return 0;
    }
    if (argc >= 4 && !strcmp(argv[1], "put")) {
        int id = shmget((key_t)strtol(argv[2], NULL, 0), 4096, IPC_CREAT | IPC_EXCL | 0600);
        char *p = id < 0 ? (void *)-1 : shmat(id, NULL, 0);
        if (p == (void *)-1) {
            perror("put");
            return 1;
        }
        strcpy(p, argv[3]);
        shmdt(p);
        printf("put %s\n", argv[3]);
        return 0;
    }
    if (argc >= 3 && !strcmp(argv[1], "take")) {
        int id = shmget((key_t)strtol(argv[2], NULL, 0), 0, 0);
        char *p = id < 0 ? (void *)-1 : shmat(id, NULL, SHM_RDONLY);
        if (p == (void *)-1) {
            perror("take");
            return 1;
        }
        printf("took \"%s\"\n", p);
        shmdt(p);
        shmctl(id, IPC_RMID, NULL);
        return 0;
    }
    fprintf(stderr, "usage: sysvshm basic | put KEY TEXT | take KEY\n");
    return 2;
}
