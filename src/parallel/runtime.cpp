#include "parallel/runtime.hpp"

#include <mpi.h>

#include <Kokkos_Core.hpp>
#include <csignal>
#include <string>
#include <vector>

#include "parallel/device_policy.hpp"

#if defined(KOKKOS_ENABLE_CUDA)
#include <cuda_runtime.h>
#endif

namespace moe {

Runtime::Runtime(int& argc, char**& argv) {
  // The device is chosen before MPI_Init when the launcher says which node-local rank this is:
  // a CUDA-aware MPI (and NCCL) then binds its context to the right GPU from the start.
#if defined(KOKKOS_ENABLE_CUDA)
  const int env_local_rank = local_rank_from_env();
  int ngpu = 0;
  if (cudaGetDeviceCount(&ngpu) != cudaSuccess) ngpu = 0;
  if (env_local_rank >= 0 && ngpu > 0) {
    device_id_ = device_for_local_rank(env_local_rank, ngpu);
    cudaSetDevice(device_id_);
  }
#endif
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
  // No launcher variable: the node-local rank from MPI (Kokkos 3.4 would otherwise put every
  // rank of a node on GPU 0 under MPICH).
  if (device_id_ < 0 && ngpu > 0) device_id_ = device_for_local_rank(local_rank_, ngpu);
  if (device_id_ >= 0) {
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
