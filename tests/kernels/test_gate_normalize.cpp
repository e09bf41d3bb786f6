// Gate renormalisation: forward against a plain host loop (unused slots and all-zero tokens
// included), backward against finite differences through the probabilities.
#include <cmath>

#include "gate_normalize.hpp"
#include "support.hpp"

using namespace moe;
using namespace moe::test;

namespace {
// K distinct experts per token, slot j of token n unused when (n + j) % 5 == 4.
std::vector<int> picks(int N, int K, int E) {
  std::vector<int> ex(std::size_t(N) * K);
  for (int n = 0; n < N; ++n)
    for (int j = 0; j < K; ++j) ex[n * K + j] = (n + j) % 5 == 4 ? -1 : (3 * n + 2 * j) % E;
  return ex;
}
}  // namespace

TEST(GateNormalize, ForwardMatchesReference) {
  const int N = 9, K = 2, E = 5;
  auto probs = random_vector(N * E, 81, 0.05, 1.0);
  for (int e = 0; e < E; ++e) probs[8 * E + e] = 0.0;  // token 8: every chosen prob is 0
  auto ex = picks(N, K, E);
  std::vector<double> g0(N * K, -3.0);
  auto gate = to_device(g0);
  gate_normalize_forward<double>(to_device(probs), to_device(ex), gate, N, E, K);
  auto got = to_host(gate);
  for (int n = 0; n < N; ++n) {
    double s = 0;
    for (int j = 0; j < K; ++j)
      if (ex[n * K + j] >= 0) s += probs[n * E + ex[n * K + j]];
    double gsum = 0;
    for (int j = 0; j < K; ++j) {
      const int e = ex[n * K + j];
      if (e < 0) {
        EXPECT_EQ(got[n * K + j], -3.0);  // untouched
        continue;
      }
      const double want = s > 0 ? probs[n * E + e] / s : 0.0;
      EXPECT_NEAR(got[n * K + j], want, 1e-15);
      gsum += got[n * K + j];
    }
    if (n != 8) {
      EXPECT_NEAR(gsum, 1.0, 1e-14) << "token " << n;
    }
  }
}

TEST(GateNormalize, BackwardMatchesFiniteDifferences) {
  const int N = 7, K = 3, E = 6;
  auto probs = random_vector(N * E, 82, 0.05, 1.0);
  auto ex = picks(N, K, E);
  auto r = random_vector(N * K, 83);
  for (int a = 0; a < N * K; ++a)
    if (ex[a] < 0) r[a] = 0;  // unused slots carry no loss
  auto dex = to_device(ex);
  auto loss = [&]() {
    Buffer<double> gate("gate", N * K);
    gate_normalize_forward<double>(to_device(probs), dex, gate, N, E, K);
    return dot(to_host(gate), r);
  };
  auto d0 = random_vector(N * E, 84);
  auto dprobs = to_device(d0);
  gate_normalize_backward<double>(to_device(probs), dex, to_device(r), dprobs, N, E, K);
  auto got = to_host(dprobs);
  for (std::size_t i = 0; i < got.size(); ++i) got[i] -= d0[i];
  EXPECT_LT(rel_error(got, numeric_gradient(probs, loss)), 1e-8);
}
