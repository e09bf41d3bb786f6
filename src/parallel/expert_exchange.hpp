// Expert parallelism's token exchange. Before it, every rank holds its token copies grouped by
// expert (all E experts, rows [offsets[e], offsets[e+1])). Expert e lives on ep-rank
// e / (E / ep_size). forward() sends each block of rows to its expert's owner with
// MPI_Alltoall (row counts) + MPI_Alltoallv (rows) and regroups what arrives expert-major
// (for each local expert, the rows of source rank 0, then 1, ...), so the owner runs one gemm
// per local expert; reverse() sends rows back the same way, into the sender's original order.
// The backward pass uses the same two moves: gradients of expert outputs go forward to the
// owners, gradients of expert inputs come back in reverse.
// Builds with NCCL (MOE_HAVE_NCCL, a CUDA Kokkos) move the rows with grouped ncclSend/ncclRecv
// on Kokkos' stream, straight between device buffers; the row counts still go through MPI.
#pragma once

#include <vector>

#include "common.hpp"
#include "parallel/comm.hpp"

namespace moe {

template <class Real>
class ExpertExchange {
 public:
  // Agrees on the row counts for one grouping (host_offsets: [E+1] of this rank's copies).
  void plan(const std::vector<int>& host_offsets, int E, const Comm& comm);
  // rows [M_local, C] in local expert order -> [received(), C] expert-major on the owner.
  void forward(View1<const Real> rows, View1<Real> out, int C);
  // [received(), C] expert-major on the owner -> [M_local, C] back in the local order.
  void reverse(View1<const Real> rows, View1<Real> out, int C);

  int received() const { return received_; }
  int first_expert() const { return first_expert_; }
  int local_experts() const { return E_local_; }
  // Row offsets of the local experts in the expert-major received buffer ([local_experts()+1]).
  const std::vector<int>& local_offsets() const { return local_offsets_; }

 private:
  void exchange(const Real* send, const std::vector<int>& send_rows, Real* recv,
                const std::vector<int>& recv_rows, int C);
  // Rows from `send` to the peers and theirs into `recv` (both in the execution space).
  void move(View1<const Real> send, const std::vector<int>& send_rows, View1<Real> recv,
            const std::vector<int>& recv_rows, int C);
  // Device-to-device through NCCL (only in NCCL builds).
  void exchange_device(const Real* send, const std::vector<int>& send_rows, Real* recv,
                       const std::vector<int>& recv_rows, int C);
  const Comm* comm_ = nullptr;
  int G_ = 1, E_local_ = 0, first_expert_ = 0, sent_ = 0, received_ = 0;
  std::vector<int> send_rows_, recv_rows_;  // per ep-rank
  std::vector<int> local_offsets_;
  Buffer<int> order_;  // [received] arrival row of each expert-major row
  Buffer<Real> arrival_;
};

}  // namespace moe
