/* exitcode: exits with atoi(argv[1]). */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: exitcode N\n");
        return 2;
    }
    int code = atoi(argv[1]);
    printf("exiting with %d\n", code);
    fflush(stdout);
    exit(code);
}
