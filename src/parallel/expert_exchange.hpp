// Expert parallelism's token exchange. Before it, every rank holds its token copies grouped by
// expert (all E experts, rows [offsets[e], offsets[e+1])). Expert e lives on ep-rank
// e / (E / ep_size). plan() agrees on the row counts (MPI_Alltoall); forward() then sends every
// (expert, source) block of rows straight to its place on the owner, expert-major (for each
// local expert, the rows of source rank 0, then 1, ...), so the owner runs one gemm per local
// expert with no regroup pass; reverse() sends the rows back to where they came from.
// The backward pass uses the same two moves: gradients of expert outputs go forward to the
// owners, gradients of expert inputs come back in reverse.
// Transport: one point-to-point message per non-empty block, all posted together and matched
// in order per peer. MPI_Isend/MPI_Irecv carry them (from host mirrors when the execution
// space's memory is not host-accessible); builds with NCCL (MOE_HAVE_NCCL, a CUDA Kokkos) issue
// the same blocks as grouped ncclSend/ncclRecv on Kokkos' stream, device to device, when
// parallel.nccl allows and the group can (one GPU per rank, NCCL initialised on every rank;
// otherwise MPI, with one line on stderr). Both walk the
// one block list below, so the CPU tests exercise the layout the GPU path moves.
#pragma once

#include <vector>

#include "common.hpp"
#include "parallel/comm.hpp"

namespace moe {

// Whether this build can use NCCL (MOE_HAVE_NCCL: a CUDA Kokkos, MOE_ENABLE_NCCL=ON, NCCL
// found). Whether a run uses it is parallel.nccl's choice, made at the first exchange.
bool nccl_built();

// Whether the token exchange of comm's expert group uses NCCL, decided once per Comm (at the
// first call) by every rank of the group together (collective over comm.ep(); device_policy's
// decide_nccl): its devices, then NCCL's initialisation. A fallback to MPI says so in one line
// on stderr (group rank 0); parallel.nccl = on that cannot be honoured throws UserError.
bool exchange_uses_nccl(const Comm& comm);

// One contiguous run of rows between this rank and ep-rank `peer`: rows [row, row + rows) of the
// local buffer. The blocks with one peer are listed in the receiver's local-expert order on both
// sides, so the k-th send to a peer pairs with that peer's k-th receive from us.
struct ExchangeBlock {
  int peer = 0, row = 0, rows = 0;
};

template <class Real>
class ExpertExchange {
 public:
  // Agrees on the row counts for one grouping (host_offsets: [E+1] of this rank's copies).
  void plan(const std::vector<int>& host_offsets, int E, const Comm& comm);
  // rows [M_local, C] in local expert order -> [received(), C] expert-major on the owner.
  void forward(View1<const Real> rows, View1<Real> out, int C);
  // [received(), C] expert-major on the owner -> [M_local, C] back in the local order.
  void reverse(View1<const Real> rows, View1<Real> out, int C);

  int sent() const { return sent_; }
  int received() const { return received_; }
  int first_expert() const { return first_expert_; }
  int local_experts() const { return E_local_; }
  // Row offsets of the local experts in the expert-major received buffer ([local_experts()+1]).
  const std::vector<int>& local_offsets() const { return local_offsets_; }
  // This rank's outgoing blocks (rows of its local buffer) and incoming ones (rows of the
  // expert-major buffer), in posting order.
  const std::vector<ExchangeBlock>& send_blocks() const { return send_blocks_; }
  const std::vector<ExchangeBlock>& recv_blocks() const { return recv_blocks_; }

 private:
  // Moves `from` blocks of `src` ([n_src rows, C]) into `to` blocks of `dst` ([n_dst rows, C]).
  void move(View1<const Real> src, int n_src, const std::vector<ExchangeBlock>& from,
            View1<Real> dst, int n_dst, const std::vector<ExchangeBlock>& to, int C);
  void move_mpi(const Real* src, const std::vector<ExchangeBlock>& from, Real* dst,
                const std::vector<ExchangeBlock>& to, int C);
  // Device to device through NCCL (only in NCCL builds).
  void move_nccl(const Real* src, const std::vector<ExchangeBlock>& from, Real* dst,
                 const std::vector<ExchangeBlock>& to, int C);
  const Comm* comm_ = nullptr;
  int G_ = 1, E_local_ = 0, first_expert_ = 0, sent_ = 0, received_ = 0;
  std::vector<int> local_offsets_;
  std::vector<ExchangeBlock> send_blocks_, recv_blocks_;
};

}  // namespace moe
