// Combine: gate-weighted gather back to tokens against plain loops, and its backward (w.r.t. the
// expert outputs and the gates) against finite differences.
#include <algorithm>
#include <numeric>
#include <random>

#include "combine.hpp"
#include "support.hpp"

using namespace moe;
using namespace moe::test;

namespace {
// An injective map of the N*K slots into M >= used rows, with some slots unused (-1) and some
// rows never referenced.
std::vector<int> random_slots(int N, int K, int M, std::uint64_t seed) {
  std::vector<int> rows(M);
  std::iota(rows.begin(), rows.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(rows.begin(), rows.end(), rng);
  std::vector<int> slot_of(std::size_t(N) * K, -1);
  int next = 0;
  for (std::size_t a = 0; a < slot_of.size(); ++a)
    if (a % 4 != 1 && next < M) slot_of[a] = rows[next++];
  return slot_of;
}

std::vector<double> ref_combine(const std::vector<double>& yg, const std::vector<int>& slot_of,
                                const std::vector<double>& gate, int N, int K, int C) {
  std::vector<double> out(std::size_t(N) * C, 0.0);
  for (int n = 0; n < N; ++n)
    for (int j = 0; j < K; ++j) {
      const int s = slot_of[n * K + j];
      if (s < 0) continue;
      for (int c = 0; c < C; ++c) out[n * C + c] += gate[n * K + j] * yg[s * C + c];
    }
  return out;
}
}  // namespace

TEST(Combine, ForwardMatchesReference) {
  const int N = 11, K = 3, C = 7, M = 28;
  auto slot_of = random_slots(N, K, M, 71);
  ASSERT_NE(std::count(slot_of.begin(), slot_of.end(), -1), 0);
  auto yg = random_vector(M * C, 72), gate = random_vector(N * K, 73, 0.0, 1.0);
  auto out0 = random_vector(N * C, 74);  // forward overwrites
  auto out = to_device(out0);
  combine_forward<double>(ExecSpace(), matrix(to_device(yg), M, C),
                          matrix(to_device(slot_of), N, K), matrix(to_device(gate), N, K),
                          matrix(out, N, C));
  EXPECT_LT(rel_error(to_host(out), ref_combine(yg, slot_of, gate, N, K, C)), 1e-15);
}

TEST(Combine, BackwardMatchesFiniteDifferences) {
  const int N = 9, K = 2, C = 5, M = 16;
  auto slot_of = random_slots(N, K, M, 75);
  auto yg = random_vector(M * C, 76), gate = random_vector(N * K, 77, 0.0, 1.0);
  auto r = random_vector(N * C, 78);  // loss = sum(out * r)
  auto ds = to_device(slot_of);
  auto forward = [&]() {
    Buffer<double> out("out", N * C);
    combine_forward<double>(ExecSpace(), matrix(to_device(yg), M, C), matrix(ds, N, K),
                            matrix(to_device(gate), N, K), matrix(out, N, C));
    return dot(to_host(out), r);
  };
  auto gy0 = random_vector(M * C, 79), gg0 = random_vector(N * K, 80);
  auto gy = to_device(gy0), gg = to_device(gg0);
  combine_backward<double>(ExecSpace(), matrix(to_device(r), N, C), matrix(to_device(yg), M, C),
                           matrix(ds, N, K), matrix(to_device(gate), N, K), matrix(gy, M, C),
                           matrix(gg, N, K));
  // Written, not accumulated: rows no assignment references keep their old values (compared to
  // a zero gradient after subtracting them), every gate entry is overwritten.
  auto got_y = to_host(gy), got_g = to_host(gg);
  std::vector<bool> referenced(M, false);
  for (int s : slot_of)
    if (s >= 0) referenced[std::size_t(s)] = true;
  for (int m = 0; m < M; ++m)
    if (!referenced[std::size_t(m)])
      for (int c = 0; c < C; ++c) got_y[std::size_t(m) * C + c] -= gy0[std::size_t(m) * C + c];
  EXPECT_LT(rel_error(got_y, numeric_gradient(yg, forward)), 1e-6);
  EXPECT_LT(rel_error(got_g, numeric_gradient(gate, forward)), 1e-6);
  // Unused slots get no gate gradient.
  for (std::size_t a = 0; a < slot_of.size(); ++a)
    if (slot_of[a] < 0) {
      EXPECT_EQ(got_g[a], 0.0);
    }
}
