// Expert-dropout mask: dropped experts become -inf logits, kept ones pass unchanged (no backward
// kernel: see expert_dropout.hpp).
#include <cmath>
#include <vector>

#include "expert_dropout.hpp"
#include "support.hpp"

using namespace moe;
using namespace moe::test;

TEST(ExpertMask, ForwardMasksDroppedColumns) {
  const int N = 5, E = 6;
  std::vector<int> keep = {1, 0, 1, 1, 0, 1};
  auto x = random_vector(std::size_t(N) * E, 3);
  auto dx = to_device(x);
  auto dkeep = to_device(keep);
  Buffer<double> masked("masked", N * E);
  expert_mask_forward<double>(dx, dkeep, masked, N, E);
  auto m = to_host(masked);
  for (int i = 0; i < N * E; ++i) {
    if (keep[i % E])
      EXPECT_EQ(m[i], x[i]);
    else
      EXPECT_TRUE(std::isinf(m[i]) && m[i] < 0);
  }
}
