// Table (hash) routing lookup against a plain host reference.
#include "hash_routing.hpp"
#include "support.hpp"

using namespace moe;
using namespace moe::test;

TEST(HashRouting, LookupOneHotAndCounts) {
  const int V = 13, E = 4, N = 40;
  std::vector<int> table(V), tokens(N);
  for (int t = 0; t < V; ++t) table[t] = (t * 7 + 3) % E;
  for (int n = 0; n < N; ++n) tokens[n] = (n * 5 + 1) % V;
  auto dt = to_device(table), dtok = to_device(tokens);
  Buffer<int> eo("eo", N), counts("counts", E);
  Buffer<double> gate("gate", N), probs("probs", std::size_t(N) * E);
  EXPECT_EQ(table_route_forward<double>(dt, dtok, eo, gate, probs, counts, N, E, V), 0);
  auto heo = to_host(eo), hc = to_host(counts);
  auto hg = to_host(gate), hp = to_host(probs);
  std::vector<int> rc(E, 0);
  for (int n = 0; n < N; ++n) {
    const int e = table[tokens[n]];
    ++rc[e];
    EXPECT_EQ(heo[n], e);
    EXPECT_EQ(hg[n], 1.0);
    for (int j = 0; j < E; ++j) EXPECT_EQ(hp[n * E + j], j == e ? 1.0 : 0.0);
  }
  EXPECT_EQ(hc, rc);
}

TEST(HashRouting, OutOfRangeTokensAreCountedAndGetNoExpert) {
  const int V = 4, E = 2, N = 3;
  auto dt = to_device(std::vector<int>{0, 1, 0, 1});
  auto dtok = to_device(std::vector<int>{1, 4, -1});
  Buffer<int> eo("eo", N), counts("counts", E);
  Buffer<double> gate("gate", N), probs("probs", std::size_t(N) * E);
  EXPECT_EQ(table_route_forward<double>(dt, dtok, eo, gate, probs, counts, N, E, V), 2);
  EXPECT_EQ(to_host(eo), (std::vector<int>{1, -1, -1}));
  EXPECT_EQ(to_host(counts), (std::vector<int>{0, 1}));
}
