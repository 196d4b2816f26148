/* CHECK(c) for the test programs: on failure, print the line, the condition
 * and errno, and exit 1 (the test compares the output with a native run). */
#ifndef MARGAY_TEST_CHECK_H
#define MARGAY_TEST_CHECK_H
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c)                                                        \
    do {                                                                \
        if (!(c)) {                                                     \
            printf("FAILED line %d: %s (%s)\n", __LINE__, #c, strerror(errno)); \
            exit(1);                                                    \
        }                                                               \
    } while (0)
#endif
