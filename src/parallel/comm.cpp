#include "parallel/comm.hpp"

#include <chrono>
#include <cstdlib>
#include <string>

#include "fence.hpp"

#if defined(OPEN_MPI) && defined(__has_include)
#if __has_include(<mpi-ext.h>)
#include <mpi-ext.h>  // MPIX_CUDA_AWARE_SUPPORT, MPIX_Query_cuda_support
#endif
#endif

namespace moe {

template <>
MPI_Datatype mpi_type<float>() {
  return MPI_FLOAT;
}
template <>
MPI_Datatype mpi_type<double>() {
  return MPI_DOUBLE;
}
template <>
MPI_Datatype mpi_type<int>() {
  return MPI_INT;
}
template <>
MPI_Datatype mpi_type<std::int64_t>() {
  return MPI_INT64_T;
}

namespace {
double g_mpi_seconds = 0;
}
double mpi_seconds() {
  return g_mpi_seconds;
}
// A steady clock, not MPI_Wtime: one-rank runs (and unit tests) never initialise MPI.
static double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
MpiTimer::MpiTimer() : start_(now_seconds()) {}
MpiTimer::~MpiTimer() {
  g_mpi_seconds += now_seconds() - start_;
}

namespace {
// What the MPI library says about CUDA device buffers: 1 yes, 0 no, -1 it cannot be asked.
// MPICH (>= 4) and Open MPI (built with CUDA, through mpi-ext.h) answer at run time.
int mpi_cuda_support() {
#if defined(MPICH_VERSION)
  return MPIX_Query_cuda_support() ? 1 : 0;
#elif defined(OPEN_MPI) && defined(MPIX_CUDA_AWARE_SUPPORT) && MPIX_CUDA_AWARE_SUPPORT
  return MPIX_Query_cuda_support() ? 1 : 0;
#else
  return -1;
#endif
}

// Ranks of `comm`; 1 for MPI_COMM_NULL (a one-rank Comm never initialises MPI).
int comm_size(MPI_Comm comm) {
  int n = 1;
  if (comm != MPI_COMM_NULL) MPI_Comm_size(comm, &n);
  return n;
}
}  // namespace

Comm::Comm() = default;

Comm::Comm(MPI_Comm world, int ep_size) : owns_(true) {
  MPI_Comm_dup(world, &world_);
  MPI_Comm_rank(world_, &rank_);
  MPI_Comm_size(world_, &size_);
  ep_size_ = ep_size;
  // Consecutive ranks form an expert-parallel group; equal ep-ranks across groups are replicas.
  MPI_Comm_split(world_, rank_ / ep_size_, rank_, &ep_);
  MPI_Comm_rank(ep_, &ep_rank_);
  MPI_Comm_split(world_, ep_rank_, rank_, &replica_);
  constexpr bool host_accessible =
      Kokkos::SpaceAccessibility<Kokkos::HostSpace, MemSpace>::accessible;
  device_mpi_ =
      decide_device_mpi(host_accessible, std::getenv("MOE_GPU_AWARE_MPI"), mpi_cuda_support());
}

template <class Real>
Kokkos::View<Real*, StagingSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>> Comm::staging(
    Index n) const {
  const std::size_t bytes = std::size_t(n) * sizeof(Real);
  if (staging_.extent(0) < bytes)
    staging_ = Kokkos::View<char*, StagingSpace>(
        Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string("moe::comm.staging")), bytes);
  return Kokkos::View<Real*, StagingSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>(
      reinterpret_cast<Real*>(staging_.data()), n);
}

Comm::~Comm() {
  if (nccl_ep_ && nccl_destroy_) nccl_destroy_(nccl_ep_);
  if (!owns_) return;
  MPI_Comm_free(&replica_);
  MPI_Comm_free(&ep_);
  MPI_Comm_free(&world_);
}

void Comm::sum(double* v, int n) const {
  MpiTimer t;
  if (distributed()) MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, world_);
}
void Comm::sum(std::int64_t* v, int n) const {
  MpiTimer t;
  if (distributed()) MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_INT64_T, MPI_SUM, world_);
}
double Comm::sum(double v) const {
  sum(&v, 1);
  return v;
}

double Comm::sum(double v, MPI_Comm comm) const {
  if (comm_size(comm) <= 1) return v;
  MpiTimer t;
  MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_DOUBLE, MPI_SUM, comm);
  return v;
}

template <class Real>
void Comm::sum(View1<Real> v, Index n, MPI_Comm comm) const {
  if (comm_size(comm) <= 1 || n == 0) return;
  MpiTimer t;
  fence("moe::before_mpi");  // MPI reads and writes the memory directly
  const auto mine = Kokkos::subview(v, std::make_pair(Index(0), n));
  if (device_mpi_.mode == DeviceMpi::Direct) {
    MPI_Allreduce(MPI_IN_PLACE, mine.data(), int(n), mpi_type<Real>(), MPI_SUM, comm);
    return;
  }
  const auto h = staging<Real>(n);
  Kokkos::deep_copy(h, mine);
  MPI_Allreduce(MPI_IN_PLACE, h.data(), int(n), mpi_type<Real>(), MPI_SUM, comm);
  Kokkos::deep_copy(mine, h);
}

template <class Real>
void Comm::allgather_blocks(View1<Real> v, Index block, MPI_Comm comm) const {
  const int csize = comm_size(comm);
  if (csize <= 1 || block == 0) return;
  MpiTimer t;
  fence("moe::before_mpi");  // MPI reads and writes the memory directly
  const auto all = Kokkos::subview(v, std::make_pair(Index(0), block * csize));
  if (device_mpi_.mode == DeviceMpi::Direct) {
    MPI_Allgather(MPI_IN_PLACE, 0, mpi_type<Real>(), all.data(), int(block), mpi_type<Real>(),
                  comm);
    return;
  }
  const auto h = staging<Real>(block * csize);
  Kokkos::deep_copy(h, all);
  MPI_Allgather(MPI_IN_PLACE, 0, mpi_type<Real>(), h.data(), int(block), mpi_type<Real>(), comm);
  Kokkos::deep_copy(all, h);
}

template <class Real>
void Comm::allgather(View1<const Real> mine, Index n, View1<Real> all) const {
  const auto in = Kokkos::subview(mine, std::make_pair(Index(0), n));
  const auto out = Kokkos::subview(all, std::make_pair(Index(0), n * size_));
  if (!distributed()) {
    Kokkos::deep_copy(out, in);
    return;
  }
  MpiTimer t;
  fence("moe::before_mpi");  // MPI reads and writes the memory directly
  if (device_mpi_.mode == DeviceMpi::Direct) {
    MPI_Allgather(in.data(), int(n), mpi_type<Real>(), out.data(), int(n), mpi_type<Real>(),
                  world_);
    return;
  }
  // One staging region: this rank's n values, then everyone's.
  const auto h = staging<Real>(n * (size_ + 1));
  const auto h_in = Kokkos::subview(h, std::make_pair(Index(0), n));
  const auto h_out = Kokkos::subview(h, std::make_pair(n, n * (size_ + 1)));
  Kokkos::deep_copy(h_in, in);
  MPI_Allgather(h_in.data(), int(n), mpi_type<Real>(), h_out.data(), int(n), mpi_type<Real>(),
                world_);
  Kokkos::deep_copy(out, h_out);
}

void Comm::exscan(const std::int64_t* in, std::int64_t* out, int n) const {
  for (int i = 0; i < n; ++i) out[i] = 0;
  if (!distributed()) return;
  MpiTimer t;
  MPI_Exscan(in, out, n, MPI_INT64_T, MPI_SUM, world_);
  if (rank_ == 0)
    for (int i = 0; i < n; ++i) out[i] = 0;  // MPI leaves rank 0's result undefined
}

std::string agreed_error(MPI_Comm comm, const std::string& mine) {
  int initialized = 0, size = 1, rank = 0;
  MPI_Initialized(&initialized);
  if (initialized && comm != MPI_COMM_NULL) {
    MPI_Comm_size(comm, &size);
    MPI_Comm_rank(comm, &rank);
  }
  if (size <= 1) return mine;
  MpiTimer t;
  int failing = mine.empty() ? size : rank;
  MPI_Allreduce(MPI_IN_PLACE, &failing, 1, MPI_INT, MPI_MIN, comm);
  if (failing == size) return std::string();
  std::string error = mine;
  int len = int(error.size());
  MPI_Bcast(&len, 1, MPI_INT, failing, comm);
  error.resize(std::size_t(len));
  MPI_Bcast(error.data(), len, MPI_CHAR, failing, comm);
  return "rank " + std::to_string(failing) + ": " + error;
}

template <class T>
std::vector<T> Comm::allgather(const std::vector<T>& mine) const {
  if (!distributed()) return mine;
  MpiTimer t;
  std::vector<T> all(mine.size() * std::size_t(size_));
  MPI_Allgather(mine.data(), int(mine.size()), mpi_type<T>(), all.data(), int(mine.size()),
                mpi_type<T>(), world_);
  return all;
}

template void Comm::sum<float>(View1<float>, Index, MPI_Comm) const;
template void Comm::sum<double>(View1<double>, Index, MPI_Comm) const;
template void Comm::allgather<float>(View1<const float>, Index, View1<float>) const;
template void Comm::allgather<double>(View1<const double>, Index, View1<double>) const;
template void Comm::allgather_blocks<float>(View1<float>, Index, MPI_Comm) const;
template void Comm::allgather_blocks<double>(View1<double>, Index, MPI_Comm) const;
template std::vector<float> Comm::allgather(const std::vector<float>&) const;
template std::vector<double> Comm::allgather(const std::vector<double>&) const;
template std::vector<int> Comm::allgather(const std::vector<int>&) const;
template std::vector<std::int64_t> Comm::allgather(const std::vector<std::int64_t>&) const;

}  // namespace moe
