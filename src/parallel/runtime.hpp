// Process start-up and shut-down: MPI, then Kokkos on this rank's device. Under MPICH, Kokkos
// 3.4 would put every rank of a node on GPU 0, so the device is chosen here from the
// node-local rank (MPI_Comm_split_type SHARED) and passed as --kokkos-device-id.
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
