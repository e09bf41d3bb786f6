#include "parallel/expert_exchange.hpp"

#include <numeric>
#include <type_traits>

#if defined(MOE_HAVE_NCCL)
#include <nccl.h>
#endif

namespace moe {
namespace {

#if defined(MOE_HAVE_NCCL)
// One NCCL communicator per MPI communicator of expert groups, created on first use (rank 0 of
// the group makes the id, MPI broadcasts it).
ncclComm_t nccl_comm_for(MPI_Comm comm) {
  static std::vector<std::pair<MPI_Comm, ncclComm_t>> known;
  for (auto& [m, n] : known) {
    int same = MPI_UNEQUAL;
    MPI_Comm_compare(m, comm, &same);
    if (same == MPI_IDENT) return n;
  }
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  ncclUniqueId id;
  if (rank == 0) MOE_CHECK(ncclGetUniqueId(&id) == ncclSuccess, "ncclGetUniqueId failed");
  MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, comm);
  ncclComm_t n;
  MOE_CHECK(ncclCommInitRank(&n, size, id, rank) == ncclSuccess, "ncclCommInitRank failed");
  known.emplace_back(comm, n);
  return n;
}

template <class Real>
ncclDataType_t nccl_type() {
  return std::is_same_v<Real, float> ? ncclFloat : ncclDouble;
}
#endif

template <class T>
void grow(Buffer<T>& b, Index n, const char* label) {
  if (Index(b.extent(0)) < n) b = Buffer<T>(std::string(label), std::size_t(n));
}

}  // namespace

template <class Real>
void ExpertExchange<Real>::plan(const std::vector<int>& host_offsets, int E, const Comm& comm) {
  comm_ = &comm;
  G_ = comm.ep_size();
  E_local_ = E / G_;
  first_expert_ = comm.ep_rank() * E_local_;
  // Rows per local expert to every ep-rank, and what each ep-rank sends us.
  std::vector<int> send_counts(E, 0), recv_counts(E, 0);
  for (int e = 0; e < E; ++e) send_counts[e] = host_offsets[e + 1] - host_offsets[e];
  MpiTimer timer;
  MPI_Alltoall(send_counts.data(), E_local_, MPI_INT, recv_counts.data(), E_local_, MPI_INT,
               comm.ep());
  send_rows_.assign(G_, 0);
  recv_rows_.assign(G_, 0);
  for (int d = 0; d < G_; ++d)
    for (int j = 0; j < E_local_; ++j) {
      send_rows_[d] += send_counts[d * E_local_ + j];
      recv_rows_[d] += recv_counts[d * E_local_ + j];
    }
  sent_ = host_offsets[E];
  received_ = std::accumulate(recv_rows_.begin(), recv_rows_.end(), 0);

  // Arrival order is source-major; the experts want expert-major. order[p] = arrival row of
  // expert-major row p (a host table of a few thousand ints, copied once per layer and step).
  std::vector<int> source_start(G_, 0);
  for (int s = 1; s < G_; ++s) source_start[s] = source_start[s - 1] + recv_rows_[s - 1];
  std::vector<int> order;
  order.reserve(received_);
  local_offsets_.assign(E_local_ + 1, 0);
  for (int j = 0; j < E_local_; ++j) {
    for (int s = 0; s < G_; ++s) {
      int before = 0;  // rows of earlier local experts in source s's block
      for (int i = 0; i < j; ++i) before += recv_counts[s * E_local_ + i];
      const int n = recv_counts[s * E_local_ + j];
      for (int r = 0; r < n; ++r) order.push_back(source_start[s] + before + r);
    }
    local_offsets_[j + 1] = int(order.size());
  }
  grow(order_, std::max(received_, 1), "moe::ep.order");
  Kokkos::deep_copy(Kokkos::subview(order_, std::make_pair(0, received_)),
                    Kokkos::View<const int*, HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>(
                        order.data(), std::size_t(received_)));
}

template <class Real>
void ExpertExchange<Real>::exchange(const Real* send, const std::vector<int>& send_rows, Real* recv,
                                    const std::vector<int>& recv_rows, int C) {
  std::vector<int> sc(G_), sd(G_), rc(G_), rd(G_);
  for (int d = 0, so = 0, ro = 0; d < G_; ++d) {
    sc[d] = send_rows[d] * C;
    rc[d] = recv_rows[d] * C;
    sd[d] = so;
    rd[d] = ro;
    so += sc[d];
    ro += rc[d];
  }
  MpiTimer timer;
  ExecSpace().fence();  // MPI touches the buffers directly
  MPI_Alltoallv(send, sc.data(), sd.data(), mpi_type<Real>(), recv, rc.data(), rd.data(),
                mpi_type<Real>(), comm_->ep());
}

template <class Real>
void ExpertExchange<Real>::exchange_device(const Real* send, const std::vector<int>& send_rows,
                                           Real* recv, const std::vector<int>& recv_rows, int C) {
#if defined(MOE_HAVE_NCCL)
  MpiTimer timer;
  ncclComm_t nccl = nccl_comm_for(comm_->ep());
  cudaStream_t stream = ExecSpace().cuda_stream();
  // Grouped point-to-point: one send and one receive per peer, issued together.
  MOE_CHECK(ncclGroupStart() == ncclSuccess, "ncclGroupStart failed");
  for (int d = 0, so = 0, ro = 0; d < G_; ++d) {
    const std::size_t sc = std::size_t(send_rows[d]) * C, rc = std::size_t(recv_rows[d]) * C;
    if (sc > 0) ncclSend(send + so, sc, nccl_type<Real>(), d, nccl, stream);
    if (rc > 0) ncclRecv(recv + ro, rc, nccl_type<Real>(), d, nccl, stream);
    so += int(sc);
    ro += int(rc);
  }
  MOE_CHECK(ncclGroupEnd() == ncclSuccess, "NCCL exchange failed");
  ExecSpace().fence();
#else
  (void)send, (void)send_rows, (void)recv, (void)recv_rows, (void)C;
  MOE_CHECK(false, "exchange_device needs an NCCL build");
#endif
}

template <class Real>
void ExpertExchange<Real>::move(View1<const Real> send, const std::vector<int>& send_rows,
                                View1<Real> recv, const std::vector<int>& recv_rows, int C) {
#if defined(MOE_HAVE_NCCL)
  exchange_device(send.data(), send_rows, recv.data(), recv_rows, C);
#else
  // MPI reads host memory: the views themselves when the memory is host-accessible (no copy),
  // host mirrors otherwise.
  const Index ns = Index(std::accumulate(send_rows.begin(), send_rows.end(), 0)) * C;
  const Index nr = Index(std::accumulate(recv_rows.begin(), recv_rows.end(), 0)) * C;
  auto s = Kokkos::create_mirror_view(Kokkos::subview(send, std::make_pair(Index(0), ns)));
  auto r = Kokkos::create_mirror_view(Kokkos::subview(recv, std::make_pair(Index(0), nr)));
  Kokkos::deep_copy(s, Kokkos::subview(send, std::make_pair(Index(0), ns)));
  exchange(s.data(), send_rows, r.data(), recv_rows, C);
  Kokkos::deep_copy(Kokkos::subview(recv, std::make_pair(Index(0), nr)), r);
#endif
}

template <class Real>
void ExpertExchange<Real>::forward(View1<const Real> rows, View1<Real> out, int C) {
  grow(arrival_, Index(std::max(received_, 1)) * C, "moe::ep.arrival");
  move(rows, send_rows_, arrival_, recv_rows_, C);
  View1<const Real> arrival = arrival_;
  View1<const int> order = order_;
  Kokkos::parallel_for(
      "moe::ep_regroup", range(Index(received_) * C), KOKKOS_LAMBDA(const Index i) {
        const Index p = i / C, c = i - p * C;
        out(i) = arrival(Index(order(p)) * C + c);
      });
}

template <class Real>
void ExpertExchange<Real>::reverse(View1<const Real> rows, View1<Real> out, int C) {
  grow(arrival_, Index(std::max(received_, 1)) * C, "moe::ep.arrival");
  View1<Real> arrival = arrival_;
  View1<const int> order = order_;
  Kokkos::parallel_for(
      "moe::ep_ungroup", range(Index(received_) * C), KOKKOS_LAMBDA(const Index i) {
        const Index p = i / C, c = i - p * C;
        arrival(Index(order(p)) * C + c) = rows(i);
      });
  move(arrival_, recv_rows_, out, send_rows_, C);
}

template class ExpertExchange<float>;
template class ExpertExchange<double>;

}  // namespace moe
