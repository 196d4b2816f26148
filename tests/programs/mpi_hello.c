/* MPI hello, allreduce and a ring exchange: each rank prints one line
 * (the launcher interleaves them; the test sorts). */
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size; MPI_Comm_rank(MPI_COMM_WORLD, &rank); MPI_Comm_size(MPI_COMM_WORLD, &size);
    int v = rank + 1, sum = 0;
    MPI_Allreduce(&v, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    int next = (rank + 1) % size, prev = (rank + size - 1) % size, tok = rank, got = -1;
    MPI_Sendrecv(&tok, 1, MPI_INT, next, 0, &got, 1, MPI_INT, prev, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    printf("rank %d of %d: sum %d got %d\n", rank, size, sum, got);
    MPI_Finalize();
    return 0;
}
