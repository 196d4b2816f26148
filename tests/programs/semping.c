/* POSIX named semaphores between two processes: sem_open makes a 32-byte
 * file in /dev/shm and maps it shared (its one page is partial). Parent and
 * child play ping-pong ROUNDS times through two semaphores and a counter in a
 * shared file mapping of a 100-byte /dev/shm file; the count must be exact. */
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 1000;
    char ping[64], pong[64], shm[64];
    snprintf(ping, sizeof ping, "/margay-ping-%d", getpid());
    snprintf(pong, sizeof pong, "/margay-pong-%d", getpid());
    snprintf(shm, sizeof shm, "/margay-count-%d", getpid());
    sem_t *a = sem_open(ping, O_CREAT | O_EXCL, 0600, 0);
    sem_t *b = sem_open(pong, O_CREAT | O_EXCL, 0600, 0);
    if (a == SEM_FAILED || b == SEM_FAILED) {
        perror("sem_open");
        return 1;
    }
    int fd = shm_open(shm, O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0 || ftruncate(fd, 100) != 0) {
        perror("shm_open");
        return 1;
    }
    volatile long *count = mmap(NULL, 100, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (count == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        for (int i = 0; i < rounds; i++) {
            sem_wait(a);
            (*count)++;
            sem_post(b);
        }
        _exit(0);
    }
    for (int i = 0; i < rounds; i++) {
        (*count)++;
        sem_post(a);
        sem_wait(b);
    }
    int st;
    waitpid(pid, &st, 0);
    /* The file holds the count too: read() sees the mapping's bytes. */
    long from_file = 0;
    if (pread(fd, &from_file, sizeof from_file, 0) != sizeof from_file) {
        perror("pread");
        return 1;
    }
    struct stat sb;
    fstat(fd, &sb);
    printf("count %ld file %ld size %lld child %d\n", *count, from_file, (long long)sb.st_size,
           WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    sem_unlink(ping);
    sem_unlink(pong);
    shm_unlink(shm);
    return *count == 2L * rounds && from_file == *count && sb.st_size == 100 ? 0 : 1;
}
