// The optimizer's gradient sum over ranks (run under mpiexec -n 1, 2 and 4): the bucketed sum
// (the whole flat buffer in one all-reduce with one expert group; runs of dense tensors and
// each expert tensor's owned block otherwise) equals the per-tensor sum, for every expert-group
// size that divides the ranks. The gradients are small multiples of 1/8, so every order of
// summation is exact and the comparison is bitwise.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "model/transformer.hpp"
#include "parallel/comm.hpp"
#include "support.hpp"
#include "tiny_config.hpp"
#include "train/optimizer.hpp"

namespace grad_sync_test {

using moe::Index;

int world(int* rank) {
  int p = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, rank);
  MPI_Comm_size(MPI_COMM_WORLD, &p);
  return p;
}

// Sets every gradient to a rank- and index-dependent multiple of 1/8.
void fill(moe::Transformer<float>& model, int rank) {
  auto h = Kokkos::create_mirror_view(model.grads());
  for (std::size_t i = 0; i < h.extent(0); ++i)
    h(i) = float(int((i * 7 + std::size_t(rank) * 13) % 17) - 8) / 8;
  Kokkos::deep_copy(model.grads(), h);
}

void check(int ep_size) {
  int rank = 0;
  const int P = world(&rank);
  if (P % ep_size != 0) GTEST_SKIP() << "expert groups of " << ep_size << " do not divide " << P;
  const moe::Config cfg = moe::test::tiny_config("topk", 4, 2);
  const moe::Comm comm(MPI_COMM_WORLD, ep_size);
  moe::Transformer<float> model(cfg, 2, false, nullptr, &comm);
  moe::Optimizer opt(cfg.train, model, comm);
  fill(model, rank);
  opt.sync_gradients();
  const auto bucketed = moe::test::to_host(model.grads());
  fill(model, rank);
  opt.sync_gradients_per_tensor();
  const auto per_tensor = moe::test::to_host(model.grads());
  ASSERT_EQ(bucketed.size(), per_tensor.size());
  int differ = 0;
  for (std::size_t i = 0; i < bucketed.size(); ++i) differ += bucketed[i] != per_tensor[i];
  EXPECT_EQ(differ, 0) << "of " << bucketed.size() << " gradients at ep_size " << ep_size;
  if (P > 1) {  // the sum did happen: element 0 (a dense tensor) is the sum over the ranks
    float want = 0;
    for (int r = 0; r < P; ++r) want += float(int((r * 13) % 17) - 8) / 8;
    EXPECT_EQ(bucketed[0], want);
  }
}

TEST(GradSync, OneExpertGroupIsOneAllReduce) {
  check(1);
}
TEST(GradSync, WholeWorldExpertGroup) {
  int rank = 0;
  check(world(&rank));
}
TEST(GradSync, GroupsOfTwo) {
  check(2);
}
// The path MPI takes to the gradients: the pointer itself on host backends, or the pinned
// staging buffer when MOE_GPU_AWARE_MPI=0 (CTest runs this file a second time with it set, so
// the checks above also cover the staged copies).
TEST(GradSync, DeviceMpiPathFollowsTheEnvironment) {
  const moe::Comm comm(MPI_COMM_WORLD, 1);
  const char* env = std::getenv("MOE_GPU_AWARE_MPI");
  const bool staged = env && std::string(env) == "0";
  EXPECT_EQ(comm.device_mpi().mode, staged ? moe::DeviceMpi::Staged : moe::DeviceMpi::Direct)
      << comm.device_mpi().reason;
}

}  // namespace grad_sync_test
