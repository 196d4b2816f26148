/* hello: stdout, stderr, argv and one environment variable. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    printf("hello from margay test\n");
    fprintf(stderr, "hello on stderr\n");
    printf("argc=%d\n", argc);
    for (int i = 0; i < argc; i++)
        printf("argv[%d]=%s\n", i, argv[i]);
    const char *v = getenv("MARGAY_TEST_VAR");
    printf("MARGAY_TEST_VAR=%s\n", v ? v : "(unset)");
    return 0;
}
