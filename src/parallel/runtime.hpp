// Process start-up and shut-down: the GPU, MPI, then Kokkos on that GPU. The device comes from
// the node-local rank the launcher exports (before MPI_Init, so a CUDA-aware MPI and NCCL bind
// to it), else from MPI_Comm_split_type SHARED after it; it is passed as --kokkos-device-id
// (Kokkos 3.4 would put every rank of a node on GPU 0 under MPICH).
#pragma once

namespace moe {

class Runtime {
 public:
  Runtime(int& argc, char**& argv);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }
  int device_id() const { return device_id_; }  // -1 on host-only builds

  // Backend description for logs and run files, e.g. "Serial" or "Cuda (device 1)".
  static const char* backend_name();

 private:
  int rank_ = 0, size_ = 1, local_rank_ = 0, device_id_ = -1;
};

}  // namespace moe
