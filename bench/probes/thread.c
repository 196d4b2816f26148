/* thread: pthread_create + pthread_join of a thread that returns at once.
 * Usage: thread [COUNT]. Reports min and median in ns. */
#include "probe.h"
#include <pthread.h>

static void *nothing(void *arg)
{
    return arg;
}

int main(int argc, char **argv)
{
    probe_name = "thread";
    long n = arg_long(argc, argv, 1, 200);
    int64_t *t = xalloc(sizeof(int64_t) * (size_t)n);
    for (long i = 0; i < n; i++) {
        pthread_t th;
        int64_t t0 = now_ns();
        int e = pthread_create(&th, NULL, nothing, NULL);
        if (e)
            fail("pthread_create: %s", strerror(e));
        if ((e = pthread_join(th, NULL)))
            fail("pthread_join: %s", strerror(e));
        t[i] = now_ns() - t0;
    }
    int64_t med = quantile(t, n, 0.5);
    printf("MARGAY-RESULT probe=thread min_ns=%lld med_ns=%lld\n", (long long)t[0],
           (long long)med);
    return 0;
}
