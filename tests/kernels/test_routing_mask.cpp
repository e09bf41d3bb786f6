// Routing-mask kernels: masked logits against a plain reference (the input untouched), the
// empty-slot cleanup, and the out-of-range token count.
#include <cmath>
#include <limits>

#include "routing_mask.hpp"
#include "support.hpp"

using namespace moe;
using namespace moe::test;

TEST(RoutingMask, MaskLogitsMatchesReference) {
  const int N = 7, E = 5, vocab = 4;
  std::vector<unsigned char> mask(vocab * E);
  for (int t = 0; t < vocab; ++t)
    for (int e = 0; e < E; ++e) mask[t * E + e] = (t + 2 * e) % 3 == 0 ? 1 : 0;
  std::vector<int> tok = {0, 3, 1, 2, 2, 0, 3};
  auto logits_h = random_vector(N * E, 3);
  auto dmask = to_device(mask);
  auto dtok = to_device(tok);
  auto logits = to_device(logits_h);
  Buffer<double> masked("masked", N * E);
  routing_mask_logits<double>(dtok, dmask, logits, masked, N, E);
  auto out = to_host(masked);
  for (int n = 0; n < N; ++n)
    for (int e = 0; e < E; ++e) {
      const double want =
          mask[tok[n] * E + e] ? logits_h[n * E + e] : -std::numeric_limits<double>::infinity();
      EXPECT_EQ(out[n * E + e], want) << n << "," << e;
    }
  EXPECT_EQ(to_host(logits), logits_h) << "the input logits must stay untouched";
}

TEST(RoutingMask, ZeroGateSlotsBecomeEmpty) {
  std::vector<int> expert = {2, 0, 1, 3, 0, 1};
  std::vector<double> gate = {0.7, 0.0, 0.5, 0.5, 1.0, 0.0};
  auto de = to_device(expert);
  auto dg = to_device(gate);
  routing_empty_zero_slots<double>(de, dg, Index(expert.size()));
  EXPECT_EQ(to_host(de), (std::vector<int>{2, -1, 1, 3, 0, -1}));
  EXPECT_EQ(to_host(dg), gate);
}

TEST(RoutingMask, CountsOutOfRangeTokens) {
  auto tok = to_device(std::vector<int>{0, 5, -1, 4, 3});
  EXPECT_EQ(routing_tokens_out_of_range(tok, 5, 5), 2);
  EXPECT_EQ(routing_tokens_out_of_range(tok, 1, 5), 0);
}
