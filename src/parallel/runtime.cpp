#include "parallel/runtime.hpp"

#include <mpi.h>

#include <Kokkos_Core.hpp>
#include <csignal>
#include <string>
#include <vector>

#if defined(KOKKOS_ENABLE_CUDA)
#include <cuda_runtime.h>
#endif

namespace moe {

Runtime::Runtime(int& argc, char**& argv) {
  // Past a file-size limit (ulimit -f) write() must fail with EFBIG, reported like a full disk
  // naming the file, instead of SIGXFSZ killing the process (MPI_Init writes files too).
  std::signal(SIGXFSZ, SIG_IGN);
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local);
  MPI_Comm_rank(local, &local_rank_);
  MPI_Comm_free(&local);

  std::vector<char*> args(argv, argv + argc);
  std::string device_arg;
#if defined(KOKKOS_ENABLE_CUDA)
  int ngpu = 0;
  if (cudaGetDeviceCount(&ngpu) == cudaSuccess && ngpu > 0) {
    device_id_ = local_rank_ % ngpu;
    device_arg = "--kokkos-device-id=" + std::to_string(device_id_);
    args.push_back(device_arg.data());
  }
#endif
  int kargc = int(args.size());
  args.push_back(nullptr);
  Kokkos::initialize(kargc, args.data());
}

Runtime::~Runtime() {
  Kokkos::finalize();
  MPI_Finalize();
}

const char* Runtime::backend_name() {
  return Kokkos::DefaultExecutionSpace::name();
}

}  // namespace moe
