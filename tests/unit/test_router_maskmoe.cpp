// MaskMoE routing (router.type = "maskmoe"): which tokens are infrequent under both cut rules,
// infrequent tokens always reaching their one visible expert (and frequent ones never an
// invisible expert), seeded and per-layer masks, exact zeros for invisible experts in the
// probabilities and the logit gradient, and the whole MoE layer against finite differences.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <stdexcept>

#include "config/config.hpp"
#include "layer_gradient_check.hpp"
#include "model/moe_layer.hpp"
#include "routing/maskmoe_router.hpp"
#include "support.hpp"
#include "tiny_config.hpp"

using namespace moe;
using namespace moe::test;

namespace {

Config mask_config(int vocab, int E, int k, int V, double ratio) {
  Config c = tiny_config("maskmoe", E, k);
  c.model.vocab_size = vocab;
  c.router.visible_experts = V;
  c.router.mask_ratio = ratio;
  c.router.aux_loss_weight = 0.05;
  c.router.z_loss_weight = 0.01;
  return c;
}

// Zipf-like counts over a scrambled rank, with ties (rounded to tens) and two zero counts.
std::vector<std::int64_t> zipf_counts(int vocab) {
  std::vector<std::int64_t> c(vocab);
  for (int t = 0; t < vocab; ++t) {
    const int rank = (7 * t + 3) % vocab;  // 7 is coprime with the vocab sizes used here
    c[t] = (100000 / (rank + 1)) / 10 * 10;
  }
  c[5] = 0;
  c[11] = 0;
  return c;
}

// Token ids by (count, id) ascending.
std::vector<int> by_count(const std::vector<std::int64_t>& c) {
  std::vector<int> order(c.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int a, int b) { return c[a] != c[b] ? c[a] < c[b] : a < b; });
  return order;
}

struct Routing {
  Buffer<double> probs;
  RoutingState<double> st;
  Routing(int N, int E, int k) {
    st.probs = Buffer<double>("probs", N * E);
    st.expert_of = Buffer<int>("expert_of", N * k);
    st.gate = Buffer<double>("gate", N * k);
    st.topk_idx = Buffer<int>("topk_idx", N * k);
    st.counts = Buffer<int>("counts", E);
  }
};

}  // namespace

TEST(MaskMoERouter, VocabRuleMarksTheLowestCountFraction) {
  const int vocab = 40;
  auto counts = zipf_counts(vocab);
  Config cfg = mask_config(vocab, 8, 2, 3, 0.3);
  cfg.router.mask_by = "vocab";  // the option; "mass" is the default
  MaskMoERouter<double> router(cfg, RouterSetup{0, &counts});
  const int want = int(std::floor(0.3 * vocab));
  EXPECT_EQ(router.num_infrequent(), want);
  auto order = by_count(counts);
  for (int i = 0; i < vocab; ++i)
    EXPECT_EQ(router.is_infrequent(order[i]), i < want) << "token " << order[i];
  // Visible sets: 1 expert for infrequent tokens, V distinct sorted experts for the others.
  for (int t = 0; t < vocab; ++t) {
    const auto& s = router.visible_sets()[t];
    EXPECT_EQ(int(s.size()), router.is_infrequent(t) ? 1 : 3);
    EXPECT_TRUE(std::is_sorted(s.begin(), s.end()));
    EXPECT_EQ(std::set<int>(s.begin(), s.end()).size(), s.size());
    for (int e : s) EXPECT_TRUE(e >= 0 && e < 8);
  }
}

TEST(MaskMoERouter, MassRuleKeepsInfrequentMassWithinTheRatio) {
  const int vocab = 40;
  auto counts = zipf_counts(vocab);
  for (double ratio : {0.02, 0.1, 0.25}) {
    Config cfg = mask_config(vocab, 8, 2, 3, ratio);
    cfg.router.mask_by = "mass";
    MaskMoERouter<double> router(cfg, RouterSetup{0, &counts});
    const double total = double(std::accumulate(counts.begin(), counts.end(), std::int64_t(0)));
    auto order = by_count(counts);
    // The infrequent tokens are a prefix of the (count, id) order ...
    int m = 0;
    while (m < vocab && router.is_infrequent(order[m])) ++m;
    EXPECT_EQ(m, router.num_infrequent()) << "ratio " << ratio;
    std::int64_t mass = 0;
    for (int i = 0; i < m; ++i) mass += counts[order[i]];
    // ... whose mass stays within the ratio, and it is the longest such prefix.
    EXPECT_LE(double(mass), ratio * total);
    ASSERT_LT(m, vocab);
    EXPECT_GT(double(mass + counts[order[m]]), ratio * total);
    EXPECT_GE(m, 2) << "the zero-count tokens are always within the budget";
  }
}

TEST(MaskMoERouter, NeedsTokenCounts) {
  Config cfg = mask_config(16, 4, 2, 2, 0.25);
  EXPECT_THROW(MaskMoERouter<double>(cfg, RouterSetup{}), std::invalid_argument);
  try {
    MaskMoERouter<double> r(cfg, RouterSetup{});
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("token counts"), std::string::npos) << e.what();
  }
  std::vector<std::int64_t> short_counts(15, 1);
  EXPECT_THROW(MaskMoERouter<double>(cfg, RouterSetup{0, &short_counts}), std::invalid_argument);
}

TEST(MaskMoERouter, MasksAreSeededAndPerLayer) {
  const int vocab = 40;
  auto counts = zipf_counts(vocab);
  Config cfg = mask_config(vocab, 8, 2, 3, 0.3);
  MaskMoERouter<double> a(cfg, RouterSetup{1, &counts}), b(cfg, RouterSetup{1, &counts});
  EXPECT_EQ(a.visible_sets(), b.visible_sets()) << "same seed, same layer: same masks";
  MaskMoERouter<double> other_layer(cfg, RouterSetup{3, &counts});
  EXPECT_NE(a.visible_sets(), other_layer.visible_sets()) << "mask_per_layer = true";
  Config other_seed_cfg = cfg;
  other_seed_cfg.train.seed += 1;
  MaskMoERouter<double> other_seed(other_seed_cfg, RouterSetup{1, &counts});
  EXPECT_NE(a.visible_sets(), other_seed.visible_sets());

  cfg.router.mask_per_layer = false;
  MaskMoERouter<double> s1(cfg, RouterSetup{1, &counts}), s3(cfg, RouterSetup{3, &counts});
  EXPECT_EQ(s1.visible_sets(), s3.visible_sets()) << "mask_per_layer = false";
}

TEST(MaskMoERouter, TokensReachOnlyVisibleExpertsAndInvisibleGetExactZeros) {
  const int vocab = 40, E = 8, k = 2, V = 3;
  auto counts = zipf_counts(vocab);
  for (bool normalize : {false, true}) {
    Config cfg = mask_config(vocab, E, k, V, 0.3);
    cfg.router.normalize_gates = normalize;
    MaskMoERouter<double> router(cfg, RouterSetup{2, &counts});
    // Every vocabulary token once, then again, in a scrambled order.
    const int N = 2 * vocab;
    std::vector<int> tok(N);
    for (int n = 0; n < N; ++n) tok[n] = (13 * n + 5) % vocab;
    auto dtok = to_device(tok);
    RouteContext ctx{dtok, 0, true};
    Routing r(N, E, k);
    for (std::uint64_t draw = 0; draw < 6; ++draw) {
      auto logits_h = random_vector(N * E, 100 + draw, -4.0, 4.0);
      auto logits = to_device(logits_h);
      router.forward(ctx, logits, r.st, N);
      EXPECT_EQ(to_host(logits), logits_h) << "the input logits must stay untouched";
      auto probs = to_host(r.st.probs);
      auto expert = to_host(r.st.expert_of);
      auto gate = to_host(r.st.gate);
      auto cnt = to_host(r.st.counts);
      int assigned = 0;
      for (int n = 0; n < N; ++n) {
        const auto& vis = router.visible_sets()[tok[n]];
        auto visible = [&](int e) { return std::find(vis.begin(), vis.end(), e) != vis.end(); };
        double psum = 0;
        for (int e = 0; e < E; ++e) {
          if (!visible(e)) {
            EXPECT_EQ(probs[n * E + e], 0.0);
          }
          psum += probs[n * E + e];
        }
        EXPECT_NEAR(psum, 1.0, 1e-12);
        if (router.is_infrequent(tok[n])) {
          EXPECT_EQ(expert[n * k], vis[0]) << "an infrequent token reaches its one expert";
          EXPECT_EQ(probs[n * E + vis[0]], 1.0);
          EXPECT_EQ(gate[n * k], 1.0);
          for (int j = 1; j < k; ++j) {
            EXPECT_EQ(expert[n * k + j], -1) << "the other slots are empty";
            EXPECT_EQ(gate[n * k + j], 0.0);
          }
        } else {
          for (int j = 0; j < k; ++j) {
            EXPECT_TRUE(visible(expert[n * k + j])) << "token " << tok[n];
            EXPECT_GT(gate[n * k + j], 0.0);
          }
          EXPECT_NE(expert[n * k], expert[n * k + 1]);
          if (normalize) {
            EXPECT_NEAR(gate[n * k] + gate[n * k + 1], 1.0, 1e-12);
          }
        }
        for (int j = 0; j < k; ++j) assigned += expert[n * k + j] >= 0;
      }
      EXPECT_EQ(std::accumulate(cnt.begin(), cnt.end(), 0), assigned);

      // Backward: invisible experts get exactly zero logit gradient, visible ones do not.
      auto dgate = to_device(random_vector(N * k, 200 + draw));
      Buffer<double> dlogits("dlogits", N * E);
      router.backward(ctx, logits, r.st, dgate, dlogits, N);
      auto dl = to_host(dlogits);
      double visible_norm = 0;
      for (int n = 0; n < N; ++n) {
        const auto& vis = router.visible_sets()[tok[n]];
        for (int e = 0; e < E; ++e) {
          if (std::find(vis.begin(), vis.end(), e) == vis.end()) {
            EXPECT_EQ(dl[n * E + e], 0.0) << "token " << tok[n] << " expert " << e;
          } else {
            visible_norm += dl[n * E + e] * dl[n * E + e];
          }
        }
      }
      EXPECT_GT(visible_norm, 1e-8);
    }
  }
}

namespace {

// Projected-loss gradient check of the whole MoE layer with a maskmoe router.
void layer_gradient_check(double capacity_factor, bool normalize) {
  const int vocab = 16, N = 8, C = 8, F = 6, E = 4;
  Config cfg = mask_config(vocab, E, 2, 3, 0.25);
  cfg.router.mask_by = "vocab";  // the 4 lowest-count of 16 types
  cfg.router.capacity_factor = capacity_factor;
  cfg.router.normalize_gates = normalize;
  std::vector<std::int64_t> counts(vocab);
  for (int t = 0; t < vocab; ++t) counts[t] = 1000 / (t + 1);
  RouterSetup setup{1, &counts};
  auto router = std::make_unique<MaskMoERouter<double>>(cfg, setup);
  const MaskMoERouter<double>& mr = *router;
  MoeLayer<double> layer(cfg, std::move(router));
  const std::vector<int> ids = {0, 13, 3, 15, 7, 12, 1, 14};  // 12..15 are infrequent
  int rare = 0;
  for (int t : ids) rare += mr.is_infrequent(t);
  ASSERT_EQ(rare, 4);
  auto tokens = to_device(ids);
  LayerCheckOptions opt;
  opt.router_weight_range = 2.0;
  opt.after_forward = [&] {
    auto expert = to_host(layer.routing().expert_of);
    EXPECT_EQ(std::count(expert.begin(), expert.end(), -1), 4) << "one empty slot per rare token";
    if (capacity_factor > 0) {
      EXPECT_GT(layer.plan().dropped, 0) << "the case must drop copies";
    }
  };
  expect_layer_gradients_match(layer, {tokens, 0, true}, N, C, F, E, 20, opt);
}

}  // namespace

TEST(MaskMoERouter, MoeLayerBackwardMatchesFiniteDifferences) {
  layer_gradient_check(0.0, false);
}

TEST(MaskMoERouter, MoeLayerBackwardMatchesFiniteDifferencesNormalizedWithDrops) {
  layer_gradient_check(0.75, true);
}

// The defaults (mask_by = "mass", mask_ratio = 0.25): the infrequent tokens are the longest
// rarest prefix carrying at most a quarter of the training tokens (one more token would exceed
// it); they see exactly one expert, every other token exactly V < E.
TEST(MaskMoERouter, DefaultsCutAQuarterOfTheMassAndGiveVisibleSetsOfOneAndV) {
  const int vocab = 40, E = 8, V = 2;
  auto counts = zipf_counts(vocab);
  Config cfg = tiny_config("maskmoe", E, 1);
  cfg.model.vocab_size = vocab;
  cfg.router.visible_experts = V;
  ASSERT_EQ(cfg.router.mask_by, "mass");
  ASSERT_EQ(cfg.router.mask_ratio, 0.25);
  MaskMoERouter<double> router(cfg, RouterSetup{0, &counts});
  const double total = double(std::accumulate(counts.begin(), counts.end(), std::int64_t(0)));
  const auto order = by_count(counts);
  double mass = 0;
  int m = 0;
  while (m < vocab && router.is_infrequent(order[m])) mass += double(counts[order[m++]]);
  EXPECT_EQ(m, router.num_infrequent());
  EXPECT_GT(m, 0);
  EXPECT_LE(mass, 0.25 * total);
  ASSERT_LT(m, vocab);
  EXPECT_GT(mass + double(counts[order[m]]), 0.25 * total) << "the cut is the longest prefix";
  for (int t = 0; t < vocab; ++t) {
    const auto& set = router.visible_sets()[std::size_t(t)];
    EXPECT_EQ(int(set.size()), router.is_infrequent(t) ? 1 : V) << "token " << t;
  }
}
