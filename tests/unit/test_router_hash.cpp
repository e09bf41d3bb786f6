// Hash Layers routing: the fixed table (deterministic, balanced by token mass, seeded per layer),
// every token reaching exactly its table expert, and MoeLayer gradients against finite
// differences (no router weights).
#include <algorithm>
#include <stdexcept>

#include "layer_gradient_check.hpp"
#include "model/moe_layer.hpp"
#include "routing/hash_router.hpp"
#include "support.hpp"
#include "tiny_config.hpp"

using namespace moe;
using namespace moe::test;

namespace {

Config hash_config(const std::string& table, int V = 64, int E = 4) {
  Config c = tiny_config("hash", E, 1);
  c.model.vocab_size = V;
  c.router.hash_table = table;
  return c;
}

// Zipf-like counts: count(rank r) ~ 100000 / (r+1), in a scrambled token order.
std::vector<std::int64_t> zipf_counts(int V) {
  std::vector<std::int64_t> c(V);
  for (int r = 0; r < V; ++r) c[(r * 37 + 11) % V] = 100000 / (r + 1);
  return c;
}

std::vector<std::int64_t> loads(const std::vector<int>& table,
                                const std::vector<std::int64_t>& counts, int E) {
  std::vector<std::int64_t> l(E, 0);
  for (std::size_t t = 0; t < table.size(); ++t) l[table[t]] += counts[t];
  return l;
}

}  // namespace

TEST(HashRouter, TableIsDeterministic) {
  const auto counts = zipf_counts(64);
  for (const char* kind : {"balanced", "random"}) {
    const Config cfg = hash_config(kind);
    RouterSetup setup{1, &counts};
    HashRouter<float> a(cfg, setup), b(cfg, setup);
    EXPECT_EQ(a.host_table(), b.host_table()) << kind;
    EXPECT_EQ(a.host_table().size(), 64u);
    for (int e : a.host_table()) EXPECT_TRUE(e >= 0 && e < 4);
  }
}

TEST(HashRouter, BalancedSpreadWithinOneTokenMass) {
  for (int V : {64, 1000}) {
    for (int E : {3, 4, 8, 16}) {
      const auto counts = zipf_counts(V);
      const auto table = balanced_hash_table(counts, E);
      const auto l = loads(table, counts, E);
      const auto [lo, hi] = std::minmax_element(l.begin(), l.end());
      const std::int64_t biggest = *std::max_element(counts.begin(), counts.end());
      EXPECT_LE(*hi - *lo, biggest) << "V=" << V << " E=" << E;
      // Every expert gets tokens when V >= E.
      EXPECT_GT(*lo, 0);
    }
  }
  // Equal counts: round-robin over experts in token-id order.
  const auto table = balanced_hash_table(std::vector<std::int64_t>(8, 5), 4);
  EXPECT_EQ(table, (std::vector<int>{0, 1, 2, 3, 0, 1, 2, 3}));
}

TEST(HashRouter, BalancedNeedsTokenCounts) {
  const Config cfg = hash_config("balanced");
  try {
    HashRouter<float> r(cfg, RouterSetup{});
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(),
                 "router.type = hash with hash_table = balanced needs training token counts");
  }
  // The random table needs none.
  EXPECT_NO_THROW(HashRouter<float>(hash_config("random"), RouterSetup{}));
}

TEST(HashRouter, RandomDiffersBetweenLayersAndSeeds) {
  Config cfg = hash_config("random", 256, 8);
  const auto l0 = HashRouter<float>(cfg, RouterSetup{0, nullptr}).host_table();
  const auto l1 = HashRouter<float>(cfg, RouterSetup{1, nullptr}).host_table();
  cfg.train.seed += 1;
  const auto s1 = HashRouter<float>(cfg, RouterSetup{0, nullptr}).host_table();
  EXPECT_NE(l0, l1);
  EXPECT_NE(l0, s1);
  // Roughly uniform: every expert of 8 gets something of 256 tokens.
  std::vector<int> per(8, 0);
  for (int e : l0) ++per[e];
  for (int c : per) EXPECT_GT(c, 10);
}

TEST(HashRouter, EveryTokenReachesItsTableExpertAtEveryCall) {
  const auto counts = zipf_counts(64);
  const Config cfg = hash_config("balanced");
  HashRouter<double> router(cfg, RouterSetup{0, &counts});
  EXPECT_FALSE(router.uses_logits());
  EXPECT_EQ(router.slots_per_token(), 1);
  const int N = 50, E = 4;
  RoutingState<double> st;
  st.probs = Buffer<double>(std::string("p"), N * E);
  st.expert_of = Buffer<int>(std::string("eo"), N);
  st.gate = Buffer<double>(std::string("g"), N);
  st.counts = Buffer<int>(std::string("c"), E);
  Buffer<double> logits(std::string("l"), N * E);
  for (int call = 0; call < 3; ++call) {
    std::vector<int> ids(N);
    for (int n = 0; n < N; ++n) ids[n] = (n * 13 + call * 7) % 64;
    auto tok = to_device(ids);
    router.forward({tok, call, true}, logits, st, N);
    const auto eo = to_host(st.expert_of), cnt = to_host(st.counts);
    const auto g = to_host(st.gate), p = to_host(st.probs);
    std::vector<int> ref(E, 0);
    for (int n = 0; n < N; ++n) {
      const int e = router.host_table()[ids[n]];
      ++ref[e];
      EXPECT_EQ(eo[n], e);
      EXPECT_EQ(g[n], 1.0);
      for (int j = 0; j < E; ++j) EXPECT_EQ(p[n * E + j], j == e ? 1.0 : 0.0);
    }
    EXPECT_EQ(cnt, ref);
    EXPECT_EQ(st.losses.weighted, 0.0);
    EXPECT_EQ(st.losses.balance, 0.0);
    EXPECT_EQ(st.losses.z, 0.0);
  }
}

TEST(HashRouter, MoeLayerBackwardMatchesFiniteDifferences) {
  const int N = 8, C = 8, F = 6, E = 4, V = 16;
  for (double cf : {0.0, 1.0}) {  // dropless, and a capacity cut by the table's imbalance
    Config cfg = hash_config("balanced", V, E);
    cfg.router.capacity_factor = cf;
    std::vector<std::int64_t> counts(V);
    for (int t = 0; t < V; ++t) counts[t] = 100 / (t + 1);
    MoeLayer<double> layer(cfg, std::make_unique<HashRouter<double>>(cfg, RouterSetup{0, &counts}));
    std::vector<int> ids{0, 0, 0, 0, 1, 2, 3, 5};  // token 0 four times: its expert overflows
    auto tokens = to_device(ids);
    LayerCheckOptions opt;
    opt.has_router_weights = false;
    opt.after_forward = [&] {
      if (cf > 0) {
        EXPECT_GT(layer.plan().dropped, 0);
      }
    };
    expect_layer_gradients_match(layer, {tokens, 0, true}, N, C, F, E, 0, opt);
  }
}
