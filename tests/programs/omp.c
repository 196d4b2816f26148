/* omp: OpenMP on the LWK. Prints the team size and checked results; the
 * expected team size is argv[1] (OMP_NUM_THREADS is set by the caller).
 *   - parallel-for reduction of sum(i) for i < N, exact
 *   - omp_get_num_threads() inside a parallel region equals the request
 *   - phases separated by barriers: every thread sees all writes of the
 *     previous phase (several barriers in a row, and in nested worksharing) */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    int want = argc > 1 ? atoi(argv[1]) : 0;
    const long n = 3000000;
    long sum = 0;
#pragma omp parallel for reduction(+ : sum) schedule(static)
    for (long i = 0; i < n; i++)
        sum += i;
    int ok = sum == n * (n - 1) / 2;
    printf("reduction sum=%ld %s\n", sum, ok ? "ok" : "WRONG");

    int team = 0;
    int phase_errors = 0;
    int marks[256] = {0};
#pragma omp parallel shared(team, marks) reduction(+ : phase_errors)
    {
        int me = omp_get_thread_num();
        int nt = omp_get_num_threads();
#pragma omp single
        team = nt;
        for (int phase = 1; phase <= 20; phase++) {
            marks[me] = phase;
#pragma omp barrier
            for (int j = 0; j < nt; j++)
                if (marks[j] != phase)
                    phase_errors++;
#pragma omp barrier
        }
#pragma omp for schedule(dynamic, 7)
        for (int i = 0; i < 1000; i++)
            marks[i % nt] += 0;
    }
    printf("team=%d requested=%d %s\n", team, want, team == want ? "ok" : "WRONG");
    printf("barrier phases %s\n", phase_errors == 0 ? "ok" : "WRONG");
    return ok && team == want && phase_errors == 0 ? 0 : 1;
}
