/* hang: a TEST-ONLY probe (`margay bench hang`, hidden from --help) that
 * never finishes: it announces its start, blocks SIGTERM (so the Linux
 * guest's own `timeout` cannot end it either) and sleeps forever. The test
 * of the bench's deadlines runs it to check that the harness kills the guest
 * at the probe's deadline, reports it, retries once and goes on. */
#include "probe.h"
#include <signal.h>

int main(void)
{
    probe_name = "hang";
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGTERM);
    sigprocmask(SIG_BLOCK, &s, NULL);
    printf("MARGAY-START probe=hang\n");
    fflush(stdout);
    for (;;) {
        struct timespec t = {3600, 0};
        nanosleep(&t, NULL);
    }
    printf("MARGAY-RESULT probe=hang slept_s=3600\n");
    return 0;
}
