// GoogleTest entry point of the MPI tests (tests/mpi/, run under mpiexec -n 1, 2 and 4): MPI,
// then Kokkos on this rank's device, for the whole run. Only rank 0 prints results; every
// rank's failures still count in the exit code.
#include <gtest/gtest.h>
#include <mpi.h>

#include "parallel/runtime.hpp"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  int rc = 0;
  {
    moe::Runtime rt(argc, argv);
    if (rt.rank() != 0) {
      auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
      delete listeners.Release(listeners.default_result_printer());
    }
    rc = RUN_ALL_TESTS();
    MPI_Allreduce(MPI_IN_PLACE, &rc, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  }
  return rc;
}
