/* files: file I/O in the directory argv[1]. Prints one "ok" line per step
 * and the first fd returned by open (3, as natively). Exits 1 on the first
 * failed check. The directory path never appears in the output. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define SIZE (1 << 20)
#define CHUNK 4000 /* deliberately not a power of two */

static char path_a[4096], path_b[4096], path_d[4096];

static void fail(const char *what)
{
    printf("FAIL %s: %s\n", what, strerror(errno));
    exit(1);
}

#define CHECK(cond, what)                                                     \
    do {                                                                      \
        if (!(cond))                                                          \
            fail(what);                                                       \
    } while (0)

static unsigned char pat(size_t i)
{
    return (unsigned char)((i * 131u + (i >> 11) * 7u + 1u) & 0xff);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: files DIR\n");
        return 2;
    }
    snprintf(path_a, sizeof path_a, "%s/data.bin", argv[1]);
    snprintf(path_b, sizeof path_b, "%s/renamed.bin", argv[1]);
    snprintf(path_d, sizeof path_d, "%s/subdir", argv[1]);

    unsigned char *buf = malloc(SIZE), *back = malloc(SIZE);
    CHECK(buf && back, "malloc");
    for (size_t i = 0; i < SIZE; i++)
        buf[i] = pat(i);

    int fd = open(path_a, O_CREAT | O_EXCL | O_RDWR, 0644);
    CHECK(fd >= 0, "open O_CREAT|O_EXCL");
    printf("first fd=%d\n", fd);

    errno = 0;
    int fd2 = open(path_a, O_CREAT | O_EXCL | O_RDWR, 0644);
    CHECK(fd2 < 0 && errno == EEXIST, "second O_EXCL open must fail EEXIST");
    printf("ok O_EXCL EEXIST\n");

    size_t done = 0;
    while (done < SIZE) {
        size_t n = SIZE - done < CHUNK ? SIZE - done : CHUNK;
        ssize_t w = write(fd, buf + done, n);
        CHECK(w > 0, "write");
        done += (size_t)w;
    }
    printf("ok write %d bytes\n", SIZE);

    off_t o = lseek(fd, 0, SEEK_CUR);
    CHECK(o == SIZE, "lseek SEEK_CUR after write");
    o = lseek(fd, 12345, SEEK_SET);
    CHECK(o == 12345, "lseek SEEK_SET");
    o = lseek(fd, 100, SEEK_CUR);
    CHECK(o == 12445, "lseek SEEK_CUR");
    o = lseek(fd, -10, SEEK_END);
    CHECK(o == SIZE - 10, "lseek SEEK_END");
    errno = 0;
    o = lseek(fd, -1, SEEK_SET);
    CHECK(o == -1 && errno == EINVAL, "lseek negative must fail EINVAL");
    printf("ok lseek\n");

    unsigned char small[10];
    o = lseek(fd, -10, SEEK_END);
    CHECK(o == SIZE - 10, "lseek SEEK_END 2");
    ssize_t r = read(fd, small, sizeof small);
    CHECK(r == 10 && memcmp(small, buf + SIZE - 10, 10) == 0, "read at end");
    r = read(fd, small, sizeof small);
    CHECK(r == 0, "read at EOF returns 0");
    printf("ok read at end, EOF\n");

    /* pwrite/pread must not move the file offset. */
    o = lseek(fd, 777, SEEK_SET);
    CHECK(o == 777, "lseek before pwrite");
    const char msg[] = "MARGAY-PWRITE";
    ssize_t pw = pwrite(fd, msg, sizeof msg - 1, 500000);
    CHECK(pw == (ssize_t)(sizeof msg - 1), "pwrite");
    memcpy(buf + 500000, msg, sizeof msg - 1);
    char pbuf[sizeof msg];
    ssize_t pr = pread(fd, pbuf, sizeof msg - 1, 500000);
    CHECK(pr == (ssize_t)(sizeof msg - 1) && memcmp(pbuf, msg, sizeof msg - 1) == 0,
          "pread");
    CHECK(lseek(fd, 0, SEEK_CUR) == 777, "offset unchanged by pread/pwrite");
    printf("ok pread/pwrite\n");

    /* Read everything back in odd-sized pieces and verify. */
    CHECK(lseek(fd, 0, SEEK_SET) == 0, "rewind");
    done = 0;
    while (done < SIZE) {
        size_t n = SIZE - done < 7777 ? SIZE - done : 7777;
        ssize_t rr = read(fd, back + done, n);
        CHECK(rr > 0, "read back");
        done += (size_t)rr;
    }
    CHECK(memcmp(buf, back, SIZE) == 0, "verify contents");
    printf("ok read back and verify\n");

    struct stat st;
    CHECK(fstat(fd, &st) == 0, "fstat");
    CHECK(st.st_size == SIZE && S_ISREG(st.st_mode), "fstat size/type");
    printf("ok fstat size=%lld mode=%o\n", (long long)st.st_size,
           (unsigned)(st.st_mode & 0777));

    CHECK(ftruncate(fd, SIZE / 2) == 0, "ftruncate");
    CHECK(fstat(fd, &st) == 0 && st.st_size == SIZE / 2, "size after ftruncate");
    printf("ok ftruncate size=%lld\n", (long long)st.st_size);

    CHECK(close(fd) == 0, "close");
    errno = 0;
    CHECK(close(fd) == -1 && errno == EBADF, "double close EBADF");
    printf("ok close\n");

    CHECK(rename(path_a, path_b) == 0, "rename");
    errno = 0;
    CHECK(stat(path_a, &st) == -1 && errno == ENOENT, "old name gone");
    CHECK(stat(path_b, &st) == 0 && st.st_size == SIZE / 2, "stat new name");
    printf("ok rename, stat size=%lld\n", (long long)st.st_size);

    /* Reopen: the lowest free fd is reused. */
    fd = open(path_b, O_RDONLY);
    CHECK(fd >= 0, "reopen");
    printf("reopen fd=%d\n", fd);
    CHECK(read(fd, back, 64) == 64 && memcmp(back, buf, 64) == 0, "reread");
    close(fd);
    printf("ok reopen\n");

    CHECK(unlink(path_b) == 0, "unlink");
    errno = 0;
    CHECK(stat(path_b, &st) == -1 && errno == ENOENT, "unlinked name gone");
    errno = 0;
    CHECK(open(path_b, O_RDONLY) == -1 && errno == ENOENT, "open missing ENOENT");
    printf("ok unlink\n");

    CHECK(mkdir(path_d, 0755) == 0, "mkdir");
    CHECK(stat(path_d, &st) == 0 && S_ISDIR(st.st_mode), "stat dir");
    errno = 0;
    CHECK(mkdir(path_d, 0755) == -1 && errno == EEXIST, "mkdir EEXIST");
    CHECK(rmdir(path_d) == 0, "rmdir");
    errno = 0;
    CHECK(stat(path_d, &st) == -1 && errno == ENOENT, "dir gone");
    printf("ok mkdir/rmdir\n");

    free(buf);
    free(back);
    printf("all ok\n");
    return 0;
}
