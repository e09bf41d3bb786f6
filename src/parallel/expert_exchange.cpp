#include "parallel/expert_exchange.hpp"

#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstring>
#include <string>
#include <type_traits>

#include "fence.hpp"
#include "parallel/device_policy.hpp"
#include "util/user_error.hpp"

#if defined(MOE_HAVE_NCCL)
#include <nccl.h>
#endif

namespace moe {
namespace {

constexpr int kExchangeTag = 7;  // point-to-point messages of the exchange on the ep communicator

#if defined(MOE_HAVE_NCCL)
// NCCL's initialisation on this rank of the group (rank 0 makes the id, MPI broadcasts it): ""
// with the communicator kept by the Comm (which destroys it with the MPI communicators), or
// NCCL's error. A failure is returned, never fatal: the caller falls back to MPI or stops.
std::string nccl_init(const Comm& comm) {
  ncclUniqueId id{};
  int id_ok = 1;
  if (comm.ep_rank() == 0) id_ok = ncclGetUniqueId(&id) == ncclSuccess ? 1 : 0;
  MPI_Bcast(&id_ok, 1, MPI_INT, 0, comm.ep());
  if (!id_ok) return "ncclGetUniqueId failed on group rank 0";
  MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, comm.ep());
  ncclComm_t n;
  const ncclResult_t r = ncclCommInitRank(&n, comm.ep_size(), id, comm.ep_rank());
  if (r != ncclSuccess) return ncclGetErrorString(r);
  comm.set_nccl_ep(n, [](void* c) { ncclCommDestroy(static_cast<ncclComm_t>(c)); });
  return "";
}

void nccl_drop(const Comm& comm) {
  if (comm.nccl_ep()) ncclCommDestroy(static_cast<ncclComm_t>(comm.nccl_ep()));
  comm.set_nccl_ep(nullptr, nullptr);
}

int this_device() {
  int d = -1;
  return cudaGetDevice(&d) == cudaSuccess ? d : -1;
}

template <class Real>
ncclDataType_t nccl_type() {
  return std::is_same_v<Real, float> ? ncclFloat : ncclDouble;
}
#else
std::string nccl_init(const Comm&) {
  return "this build has no NCCL";
}
void nccl_drop(const Comm&) {}
int this_device() {
  return -1;
}
#endif

}  // namespace

bool nccl_built() {
#if defined(MOE_HAVE_NCCL)
  return true;
#else
  return false;
#endif
}

bool exchange_uses_nccl(const Comm& comm) {
  if (comm.nccl_state() >= 0) return comm.nccl_state() == 1;
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  const RankDevice me{node_hash(host), this_device()};
  std::vector<RankDevice> group(std::size_t(comm.ep_size()));
  MPI_Allgather(&me, sizeof me, MPI_BYTE, group.data(), sizeof me, MPI_BYTE, comm.ep());
  const auto all_ok = [&](bool mine) {
    int ok = mine ? 1 : 0;
    MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, comm.ep());
    return ok == 1;
  };
  const NcclDecision d = decide_nccl(
      nccl_built(), comm.nccl_mode(), group, [&] { return nccl_init(comm); }, all_ok);
  if (!d.use) nccl_drop(comm);
  if (d.error) throw UserError(d.message);
  if (!d.message.empty() && comm.ep_rank() == 0) std::fprintf(stderr, "%s\n", d.message.c_str());
  comm.set_nccl_state(d.use ? 1 : 0);
  return d.use;
}

template <class Real>
void ExpertExchange<Real>::plan(const std::vector<int>& host_offsets, int E, const Comm& comm) {
  comm_ = &comm;
  G_ = comm.ep_size();
  E_local_ = E / G_;
  first_expert_ = comm.ep_rank() * E_local_;
  // Rows for every expert (ours to send), and what each ep-rank sends to our local experts:
  // recv_counts[s * E_local + j] = rows of source s for our local expert j.
  std::vector<int> send_counts(E, 0), recv_counts(E, 0);
  for (int e = 0; e < E; ++e) send_counts[e] = host_offsets[e + 1] - host_offsets[e];
  {
    MpiTimer timer;
    MPI_Alltoall(send_counts.data(), E_local_, MPI_INT, recv_counts.data(), E_local_, MPI_INT,
                 comm.ep());
  }
  sent_ = host_offsets[E];

  // Expert-major layout on the owner: local expert j's rows from source 0, then 1, ...
  local_offsets_.assign(E_local_ + 1, 0);
  for (int j = 0; j < E_local_; ++j) {
    int n = 0;
    for (int s = 0; s < G_; ++s) n += recv_counts[s * E_local_ + j];
    local_offsets_[j + 1] = local_offsets_[j] + n;
  }
  received_ = local_offsets_[E_local_];

  // One block per (peer, receiver's local expert) with rows; both sides list a peer's blocks in
  // the receiver's expert order, which is what pairs them.
  send_blocks_.clear();
  recv_blocks_.clear();
  std::vector<int> filled(local_offsets_.begin(), local_offsets_.end() - 1);
  for (int p = 0; p < G_; ++p)
    for (int j = 0; j < E_local_; ++j) {
      const int e = p * E_local_ + j;
      if (send_counts[e] > 0) send_blocks_.push_back({p, host_offsets[e], send_counts[e]});
      const int n = recv_counts[p * E_local_ + j];
      if (n > 0) recv_blocks_.push_back({p, filled[j], n});
      filled[j] += n;
    }
}

template <class Real>
void ExpertExchange<Real>::move_mpi(const Real* src, const std::vector<ExchangeBlock>& from,
                                    Real* dst, const std::vector<ExchangeBlock>& to, int C) {
  std::vector<MPI_Request> requests;
  requests.reserve(from.size() + to.size());
  auto count = [C](const ExchangeBlock& b) {
    const Index n = Index(b.rows) * C;
    MOE_CHECK(n <= INT_MAX, "an expert exchange block exceeds MPI's int count");
    return int(n);
  };
  MpiTimer timer;
  fence("moe::before_mpi");  // MPI touches the buffers directly
  const int me = comm_->ep_rank();
  // Receives first, so that every send finds its receive posted.
  for (const auto& b : to) {
    if (b.peer == me) continue;
    requests.emplace_back();
    MPI_Irecv(dst + Index(b.row) * C, count(b), mpi_type<Real>(), b.peer, kExchangeTag, comm_->ep(),
              &requests.back());
  }
  // Our own blocks: plain copies, paired in order like the messages.
  for (std::size_t i = 0, k = 0; i < from.size(); ++i) {
    if (from[i].peer != me) continue;
    while (to[k].peer != me) ++k;
    std::memcpy(dst + Index(to[k].row) * C, src + Index(from[i].row) * C,
                sizeof(Real) * std::size_t(from[i].rows) * C);
    ++k;
  }
  for (const auto& b : from) {
    if (b.peer == me) continue;
    requests.emplace_back();
    MPI_Isend(src + Index(b.row) * C, count(b), mpi_type<Real>(), b.peer, kExchangeTag, comm_->ep(),
              &requests.back());
  }
  MPI_Waitall(int(requests.size()), requests.data(), MPI_STATUSES_IGNORE);
}

template <class Real>
void ExpertExchange<Real>::move_nccl(const Real* src, const std::vector<ExchangeBlock>& from,
                                     Real* dst, const std::vector<ExchangeBlock>& to, int C) {
#if defined(MOE_HAVE_NCCL)
  MpiTimer timer;
  ncclComm_t nccl = static_cast<ncclComm_t>(comm_->nccl_ep());
  cudaStream_t stream = ExecSpace().cuda_stream();
  // One group: NCCL runs the calls to one peer in order, so the blocks pair up as in MPI.
  MOE_CHECK(ncclGroupStart() == ncclSuccess, "ncclGroupStart failed");
  for (const auto& b : to)
    ncclRecv(dst + Index(b.row) * C, std::size_t(b.rows) * C, nccl_type<Real>(), b.peer, nccl,
             stream);
  for (const auto& b : from)
    ncclSend(src + Index(b.row) * C, std::size_t(b.rows) * C, nccl_type<Real>(), b.peer, nccl,
             stream);
  MOE_CHECK(ncclGroupEnd() == ncclSuccess, "NCCL exchange failed");
  // No fence: the transfers run on Kokkos' stream, ordered with the kernels before and after
  // them, and the host reads nothing of them.
#else
  (void)src, (void)from, (void)dst, (void)to, (void)C;
  MOE_CHECK(false, "move_nccl needs an NCCL build");
#endif
}

template <class Real>
void ExpertExchange<Real>::move(View1<const Real> src, int n_src,
                                const std::vector<ExchangeBlock>& from, View1<Real> dst, int n_dst,
                                const std::vector<ExchangeBlock>& to, int C) {
  if (comm_->ep_size() > 1 && exchange_uses_nccl(*comm_)) {
    move_nccl(src.data(), from, dst.data(), to, C);
    return;
  }
  if constexpr (Kokkos::SpaceAccessibility<HostSpace, MemSpace>::accessible) {
    (void)n_src, (void)n_dst;
    move_mpi(src.data(), from, dst.data(), to, C);  // MPI reads the views' memory directly
  } else {
    // Device memory without NCCL: MPI works on host copies.
    auto s_dev = Kokkos::subview(src, std::make_pair(Index(0), Index(n_src) * C));
    auto d_dev = Kokkos::subview(dst, std::make_pair(Index(0), Index(n_dst) * C));
    auto s = Kokkos::create_mirror_view_and_copy(HostSpace(), s_dev);
    auto d = Kokkos::create_mirror_view(Kokkos::WithoutInitializing, d_dev);
    move_mpi(s.data(), from, d.data(), to, C);
    Kokkos::deep_copy(d_dev, d);
  }
}

template <class Real>
void ExpertExchange<Real>::forward(View1<const Real> rows, View1<Real> out, int C) {
  move(rows, sent_, send_blocks_, out, received_, recv_blocks_, C);
}

template <class Real>
void ExpertExchange<Real>::reverse(View1<const Real> rows, View1<Real> out, int C) {
  move(rows, received_, recv_blocks_, out, sent_, send_blocks_, C);
}

template class ExpertExchange<float>;
template class ExpertExchange<double>;

}  // namespace moe
