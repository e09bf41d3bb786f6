// The ranks of one training run and how they divide the work:
// - data parallel over all P ranks (`world`): each rank takes B/P sequences of the global batch;
// - expert parallel over groups of `ep_size` consecutive ranks (`ep`): expert e lives on
//   ep-rank e / (E / ep_size) of every group; tokens travel to their expert's owner and back;
// - the P / ep_size ranks that own the same experts (`replica`) sum those experts' gradients.
// Every reduction here runs in MPI's fixed order for a given P, so runs are reproducible.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common.hpp"
#include "parallel/device_policy.hpp"

namespace moe {

// Host memory MPI can read while the device copies into it: pinned on GPU backends.
#if defined(KOKKOS_ENABLE_CUDA)
using StagingSpace = Kokkos::CudaHostPinnedSpace;
#elif defined(KOKKOS_ENABLE_HIP) && KOKKOS_VERSION >= 40000
using StagingSpace = Kokkos::HIPHostPinnedSpace;
#else
using StagingSpace = Kokkos::HostSpace;
#endif

class Comm {
 public:
  // A one-rank run (no MPI communication at all).
  Comm();
  // Splits `world` into expert-parallel groups of ep_size ranks (ep_size divides the size).
  Comm(MPI_Comm world, int ep_size);
  ~Comm();
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int ep_rank() const { return ep_rank_; }
  int ep_size() const { return ep_size_; }
  int replicas() const { return size_ / ep_size_; }
  MPI_Comm world() const { return world_; }
  MPI_Comm ep() const { return ep_; }
  MPI_Comm replica() const { return replica_; }
  bool distributed() const { return size_ > 1; }

  // In-place sums over all ranks (host arrays).
  void sum(double* v, int n) const;
  void sum(std::int64_t* v, int n) const;
  double sum(double v) const;
  // The sum of v over the ranks of `comm` (MPI_COMM_NULL or one rank: v itself).
  double sum(double v, MPI_Comm comm) const;
  // How MPI reaches device arrays here (decided once, in the constructor; see decide_device_mpi).
  const DeviceMpiDecision& device_mpi() const { return device_mpi_; }
  // In-place sum of a device array over `comm` (fenced; staged through the pinned host buffer
  // unless MPI takes the device pointer).
  template <class Real>
  void sum(View1<Real> v, Index n, MPI_Comm comm) const;
  // In-place all-gather over `comm` of a device array made of one block of `block` elements per
  // rank, in rank order: each rank holds its own block, afterwards every rank holds all of them
  // (fenced; staged as sum() is).
  template <class Real>
  void allgather_blocks(View1<Real> v, Index block, MPI_Comm comm) const;
  // Every rank's n device values `mine`, in rank order, into `all` [n * size()] on every rank
  // (fenced; staged as sum() is).
  template <class Real>
  void allgather(View1<const Real> mine, Index n, View1<Real> all) const;
  // Exclusive prefix sum over the ranks of `world` (rank 0 gets zeros).
  void exscan(const std::int64_t* in, std::int64_t* out, int n) const;
  // Concatenates every rank's `n` values, in rank order, on every rank.
  template <class T>
  std::vector<T> allgather(const std::vector<T>& mine) const;

  // The NCCL communicator over ep() in NCCL builds: made on first use by the token exchange and
  // destroyed with this object (a handle cached elsewhere could outlive ep(), whose handle
  // value MPI may give to a later communicator). Opaque here, so only NCCL code sees nccl.h.
  void* nccl_ep() const { return nccl_ep_; }
  // parallel.nccl of the run, and what the token exchange decided on first use (-1: not yet,
  // 0: MPI, 1: NCCL; see exchange_uses_nccl in expert_exchange.hpp).
  void set_nccl_mode(NcclMode m) const { nccl_mode_ = m; }
  NcclMode nccl_mode() const { return nccl_mode_; }
  int nccl_state() const { return nccl_state_; }
  void set_nccl_state(int s) const { nccl_state_ = s; }
  void set_nccl_ep(void* nccl_comm, void (*destroy)(void*)) const {
    nccl_ep_ = nccl_comm;
    nccl_destroy_ = destroy;
  }

 private:
  // The first n elements of the staging buffer (grown, never shrunk: steady-state steps
  // allocate nothing).
  template <class Real>
  Kokkos::View<Real*, StagingSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>> staging(Index n) const;

  DeviceMpiDecision device_mpi_;
  mutable Kokkos::View<char*, StagingSpace> staging_;
  mutable void* nccl_ep_ = nullptr;
  mutable NcclMode nccl_mode_ = NcclMode::Auto;
  mutable int nccl_state_ = -1;
  mutable void (*nccl_destroy_)(void*) = nullptr;
  MPI_Comm world_ = MPI_COMM_NULL, ep_ = MPI_COMM_NULL, replica_ = MPI_COMM_NULL;
  bool owns_ = false;
  int rank_ = 0, size_ = 1, ep_rank_ = 0, ep_size_ = 1;
};

// Agreement on a failure, a collective over `comm`: every rank passes its own error ("" for
// none) and every rank gets back "" when none failed, else the lowest failing rank's message,
// prefixed "rank r: " when the communicator has several ranks. Used wherever a rank-local
// failure (unreadable data, a bad checkpoint, an exception in a step) must end every rank
// instead of leaving the others waiting in their next collective.
std::string agreed_error(MPI_Comm comm, const std::string& mine);

// Wall seconds this process has spent inside MPI calls of training (reductions, exchanges),
// fences before them included: the communication time benchmarks report.
double mpi_seconds();
// Adds the lifetime of the object to mpi_seconds().
class MpiTimer {
 public:
  MpiTimer();
  ~MpiTimer();
  MpiTimer(const MpiTimer&) = delete;
  MpiTimer& operator=(const MpiTimer&) = delete;

 private:
  double start_;
};

// The MPI datatype of a scalar.
template <class T>
MPI_Datatype mpi_type();

}  // namespace moe
