/* getdents: create N files (argv[2], default 200) in argv[1], list them with
 * readdir and with the raw getdents64 syscall (small buffer, many calls),
 * print sorted names and counts, clean up. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void print_sorted(const char *how, char **names, int n)
{
    qsort(names, (size_t)n, sizeof *names, cmp);
    printf("%s: %d entries\n", how, n);
    for (int i = 0; i < n; i++) {
        printf("  %s\n", names[i]);
        free(names[i]);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: getdents DIR [N]\n");
        return 2;
    }
    const char *dir = argv[1];
    int n = argc > 2 ? atoi(argv[2]) : 200;
    char path[4096];

    for (int i = 0; i < n; i++) {
        /* Vary the name length so records have different sizes. */
        snprintf(path, sizeof path, "%s/file-%04d%.*s", dir, i, i % 23,
                 "-abcdefghijklmnopqrstuvwxyz");
        int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
        if (fd < 0) {
            printf("FAIL create %d: %s\n", i, strerror(errno));
            return 1;
        }
        close(fd);
    }
    snprintf(path, sizeof path, "%s/a-subdir", dir);
    if (mkdir(path, 0755) != 0) {
        printf("FAIL mkdir: %s\n", strerror(errno));
        return 1;
    }

    char **names = calloc((size_t)n + 16, sizeof *names);
    int count = 0;

    DIR *d = opendir(dir);
    if (!d) {
        printf("FAIL opendir: %s\n", strerror(errno));
        return 1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (count >= n + 16) {
            printf("FAIL too many entries\n");
            return 1;
        }
        char tmp[512];
        snprintf(tmp, sizeof tmp, "%s%s", e->d_name,
                 e->d_type == DT_DIR ? "/" : e->d_type == DT_REG ? "" : "?");
        names[count++] = strdup(tmp);
    }
    closedir(d);
    print_sorted("readdir", names, count);

    /* Raw getdents64 with a small buffer to force many calls. */
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        printf("FAIL open dir: %s\n", strerror(errno));
        return 1;
    }
    char buf[512] __attribute__((aligned(8)));
    count = 0;
    int calls = 0;
    for (;;) {
        long r = syscall(SYS_getdents64, fd, buf, sizeof buf);
        if (r < 0) {
            printf("FAIL getdents64: %s\n", strerror(errno));
            return 1;
        }
        if (r == 0)
            break;
        calls++;
        for (long off = 0; off < r;) {
            struct linux_dirent64 *de = (struct linux_dirent64 *)(buf + off);
            if (de->d_reclen == 0 || off + de->d_reclen > r || count >= n + 16) {
                printf("FAIL bad dirent record\n");
                return 1;
            }
            char tmp[512];
            snprintf(tmp, sizeof tmp, "%s%s", de->d_name,
                     de->d_type == DT_DIR ? "/" : de->d_type == DT_REG ? "" : "?");
            names[count++] = strdup(tmp);
            off += de->d_reclen;
        }
    }
    /* A second call at EOF keeps returning 0. */
    long again = syscall(SYS_getdents64, fd, buf, sizeof buf);
    close(fd);
    printf("getdents64 needed more than one call: %s\n", calls > 1 ? "yes" : "no");
    printf("getdents64 at EOF: %ld\n", again);
    print_sorted("getdents64", names, count);

    /* Too-small buffer: EINVAL. */
    fd = open(dir, O_RDONLY | O_DIRECTORY);
    errno = 0;
    long tiny = syscall(SYS_getdents64, fd, buf, 8);
    printf("getdents64 tiny buffer: %ld %s\n", tiny, errno == EINVAL ? "EINVAL" : strerror(errno));
    close(fd);

    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/file-%04d%.*s", dir, i, i % 23,
                 "-abcdefghijklmnopqrstuvwxyz");
        if (unlink(path) != 0) {
            printf("FAIL unlink %d: %s\n", i, strerror(errno));
            return 1;
        }
    }
    snprintf(path, sizeof path, "%s/a-subdir", dir);
    if (rmdir(path) != 0) {
        printf("FAIL rmdir: %s\n", strerror(errno));
        return 1;
    }
    free(names);
    printf("cleaned up\n");
    return 0;
}
