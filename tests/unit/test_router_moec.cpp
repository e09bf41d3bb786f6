// MoECRouter (router.type = "moec"): the cluster loss through the router against a
// hand-computed value, expert dropout (dropped experts get no tokens and no gradient during
// training, the kept set is fixed within an interval and redrawn across intervals, evaluation
// sees every expert, "cluster" mode drops the same count per cluster), and the whole MoeLayer
// gradient against finite differences with cluster loss and dropout active.
#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include "config/config.hpp"
#include "layer_gradient_check.hpp"
#include "model/moe_layer.hpp"
#include "routing/moec_router.hpp"
#include "support.hpp"
#include "tiny_config.hpp"
#include "util/user_error.hpp"

using namespace moe;
using namespace moe::test;

namespace {

Config moec_config(int E, int cluster_size, int top_k, double dropout) {
  Config c = tiny_config("moec", E, top_k);
  c.router.capacity_factor = 0.0;
  c.router.cluster_size = cluster_size;
  c.router.cluster_loss_weight = 0.01;
  c.router.expert_dropout = dropout;
  c.router.dropout_interval = 3;
  return c;
}

// State buffers for a router-level forward on N tokens.
struct RouterRun {
  RoutingState<double> st;
  Buffer<int> tokens;
  RouterRun(int N, int E, int K) : tokens("tokens", N) {
    st.probs = Buffer<double>("probs", N * E);
    st.expert_of = Buffer<int>("expert_of", N * K);
    st.gate = Buffer<double>("gate", N * K);
    st.topk_idx = Buffer<int>("topk_idx", N * K);
    st.counts = Buffer<int>("counts", E);
  }
};

// Logits where token n strongly prefers expert n % E.
std::vector<double> preferring_logits(int N, int E, std::uint64_t seed) {
  auto x = random_vector(std::size_t(N) * E, seed, -0.5, 0.5);
  for (int n = 0; n < N; ++n) x[n * E + n % E] += 4.0;
  return x;
}

}  // namespace

TEST(MoECRouter, ClusterLossMatchesHandComputedValue) {
  // N = 4, E = 4, cluster_size = 2; logits = log(probs) so softmax returns these probs (the
  // two rows twice): probs = [0.1 0.2 0.3 0.4; 0.5 0.1 0.3 0.1] x 2.
  //   share (default): loads u = E * mean p = 4 * [0.3 0.15 0.3 0.25] = [1.2 0.6 1.2 1.0]
  //     intra: mean((0.3^2 + 0.3^2) / 1, (0.1^2 + 0.1^2) / 1) = (0.18 + 0.02) / 2 = 0.1
  //     inter: cluster means [0.9 1.1], mu = 1: ((-0.1)^2 + 0.1^2) / (2-1) = 0.02
  //   public_sum: P = [1.2 0.6 1.2 1.0] (batch sums), loss times E = 4:
  //     intra: 4 * 0.1 = 0.4, inter: 4 * 0.02 = 0.08 (doubling the batch doubles P: x4 here)
  const std::vector<double> row_pair = {0.1, 0.2, 0.3, 0.4, 0.5, 0.1, 0.3, 0.1};
  std::vector<double> logits;
  for (int r = 0; r < 2; ++r)
    for (double p : row_pair) logits.push_back(std::log(p));
  for (const char* form : {"intra", "inter"})
    for (const char* scale : {"share", "public_sum"}) {
      Config cfg = moec_config(4, 2, 1, 0.0);
      cfg.router.cluster_loss = form;
      cfg.router.cluster_loss_scale = scale;
      cfg.router.cluster_loss_weight = 0.5;
      cfg.router.z_loss_weight = 0.0;
      MoECRouter<double> router(cfg, RouterSetup{});
      RouterRun run(4, 4, 1);
      router.forward({run.tokens, 0, true}, to_device(logits), run.st, 4);
      const bool intra = std::string(form) == "intra";
      const double expected = (intra ? 0.1 : 0.02) * (std::string(scale) == "share" ? 1.0 : 4.0);
      EXPECT_NEAR(run.st.losses.cluster, expected, 1e-12) << form << " " << scale;
      EXPECT_NEAR(run.st.losses.weighted, 0.01 * run.st.losses.balance + 0.5 * expected, 1e-12);
    }
}

TEST(MoECRouter, DroppedExpertsGetNoTokensWithinAnInterval) {
  const int N = 64, E = 8, K = 1;
  Config cfg = moec_config(E, 2, K, 0.5);
  MoECRouter<double> router(cfg, RouterSetup{1, nullptr});
  RouterRun run(N, E, K);
  auto logits = to_device(preferring_logits(N, E, 3));
  std::set<std::vector<int>> distinct;
  for (std::int64_t step = 0; step < 30; ++step) {
    const auto kept = router.kept_experts(step);
    ASSERT_EQ(int(kept.size()), 4);  // floor((1 - 0.5) * 8)
    // Fixed within an interval of dropout_interval = 3 steps.
    EXPECT_EQ(kept, router.kept_experts(step - step % 3)) << "step " << step;
    distinct.insert(kept);
    router.forward({run.tokens, step, true}, logits, run.st, N);
    auto counts = to_host(run.st.counts);
    auto expert = to_host(run.st.expert_of);
    auto probs = to_host(run.st.probs);
    for (int e = 0; e < E; ++e) {
      const bool is_kept = std::binary_search(kept.begin(), kept.end(), e);
      if (!is_kept) {
        EXPECT_EQ(counts[e], 0) << "dropped expert " << e << " at step " << step;
        for (int n = 0; n < N; ++n) EXPECT_EQ(probs[n * E + e], 0.0);
      } else {
        EXPECT_GT(counts[e], 0) << "kept expert " << e << " gets its preferring tokens";
      }
    }
    for (int a : expert) EXPECT_TRUE(std::binary_search(kept.begin(), kept.end(), a));
  }
  EXPECT_GE(distinct.size(), 3u) << "the kept set is redrawn across intervals";
  // Reproducible and resumable: a fresh router (same seed, same layer) draws the same sets;
  // another layer or seed draws others.
  MoECRouter<double> again(cfg, RouterSetup{1, nullptr});
  MoECRouter<double> other_layer(cfg, RouterSetup{2, nullptr});
  Config cfg_seed = cfg;
  cfg_seed.train.seed += 1;
  MoECRouter<double> other_seed(cfg_seed, RouterSetup{1, nullptr});
  int differ_layer = 0, differ_seed = 0;
  for (std::int64_t step = 0; step < 60; step += 3) {
    EXPECT_EQ(again.kept_experts(step), router.kept_experts(step));
    differ_layer += other_layer.kept_experts(step) != router.kept_experts(step);
    differ_seed += other_seed.kept_experts(step) != router.kept_experts(step);
  }
  EXPECT_GT(differ_layer, 0);
  EXPECT_GT(differ_seed, 0);
}

TEST(MoECRouter, DroppedExpertsGetExactlyZeroRoutingGradient) {
  // Routing, balance and z losses see the masked distribution: dropped experts get nothing.
  // (The cluster loss reads the unmasked distribution, so it is off here.)
  const int N = 16, E = 8, K = 2;
  Config cfg = moec_config(E, 4, K, 0.5);
  cfg.router.cluster_loss_weight = 0.0;
  cfg.router.z_loss_weight = 0.01;
  MoECRouter<double> router(cfg, RouterSetup{});
  RouterRun run(N, E, K);
  auto logits = to_device(random_vector(std::size_t(N) * E, 8));
  const std::int64_t step = 5;
  router.forward({run.tokens, step, true}, logits, run.st, N);
  auto dgate = to_device(random_vector(std::size_t(N) * K, 9));
  Buffer<double> dlogits("dlogits", N * E);
  router.backward({run.tokens, step, true}, logits, run.st, dgate, dlogits, N);
  const auto kept = router.kept_experts(step);
  auto d = to_host(dlogits);
  double kept_norm = 0;
  for (int n = 0; n < N; ++n)
    for (int e = 0; e < E; ++e) {
      if (std::binary_search(kept.begin(), kept.end(), e))
        kept_norm += d[n * E + e] * d[n * E + e];
      else
        EXPECT_EQ(d[n * E + e], 0.0) << "dropped expert " << e;
    }
  EXPECT_GT(kept_norm, 0.0);
}

TEST(MoECRouter, EvaluationSeesEveryExpert) {
  const int N = 32, E = 8, K = 1;
  Config cfg = moec_config(E, 2, K, 0.5);
  MoECRouter<double> router(cfg, RouterSetup{});
  RouterRun run(N, E, K);
  auto logits = to_device(preferring_logits(N, E, 4));
  for (std::int64_t step : {0, 4, 7}) {
    router.forward({run.tokens, step, false}, logits, run.st, N);
    auto counts = to_host(run.st.counts);
    auto probs = to_host(run.st.probs);
    for (int e = 0; e < E; ++e) EXPECT_EQ(counts[e], N / E) << "expert " << e << " in eval";
    for (double p : probs) EXPECT_GT(p, 0.0);
    // The same step in training drops half of them.
    router.forward({run.tokens, step, true}, logits, run.st, N);
    int empty = 0;
    for (int c : to_host(run.st.counts)) empty += c == 0;
    EXPECT_EQ(empty, 4);
  }
}

TEST(MoECRouter, ClusterModeDropsTheSameCountInEveryCluster) {
  struct Case {
    int E, c, k;
    double p;
    int dropped_per_cluster;
  };
  // Dropped per cluster = min(c - 1, c - floor((1-p) c)), lowered until top_k survive:
  // (12,4,p=.5): 4 - 2 = 2; (12,4,.9): 4 - 0 = 4 -> 3 (one kept per cluster); (9,3,.3): 3 - 2 = 1;
  // (4,2,k=2,.9): 2 - 0 -> 1, and 2 clusters x 1 = 2 >= k; (8,4,.1): 4 - floor(3.6) = 1 (the
  // rounding this replaced, round(0.1 * 4) = 0, dropped nothing); (2,2,.25): 2 - 1 = 1.
  for (Case t : {Case{12, 4, 1, 0.5, 2}, Case{12, 4, 1, 0.9, 3}, Case{9, 3, 2, 0.3, 1},
                 Case{4, 2, 2, 0.9, 1}, Case{8, 4, 1, 0.1, 1}, Case{2, 2, 1, 0.25, 1}}) {
    Config cfg = moec_config(t.E, t.c, t.k, t.p);
    cfg.router.dropout_mode = "cluster";
    MoECRouter<double> router(cfg, RouterSetup{});
    std::set<std::vector<int>> distinct;
    for (std::int64_t step = 0; step < 60; step += 3) {
      const auto kept = router.kept_experts(step);
      distinct.insert(kept);
      std::vector<int> per_cluster(t.E / t.c, 0);
      for (int e : kept) ++per_cluster[e / t.c];
      for (int g = 0; g < t.E / t.c; ++g)
        EXPECT_EQ(per_cluster[g], t.c - t.dropped_per_cluster) << "cluster " << g;
      EXPECT_GE(int(kept.size()), t.k);
    }
    EXPECT_GT(distinct.size(), 1u);
  }
}

TEST(MoECRouter, UniformModeKeepsThePublicCodesFloorCount) {
  // The public code keeps int((1 - p) E) experts: E = 2, p = 0.25 keeps 1 (drops 50%).
  struct Case {
    int E;
    double p;
    int kept;
  };
  for (Case t : {Case{2, 0.25, 1}, Case{8, 0.25, 6}, Case{8, 0.1, 7}, Case{64, 0.25, 48},
                 Case{10, 0.3, 7}, Case{10, 0.7, 3}, Case{4, 0.5, 2}}) {
    Config cfg = moec_config(t.E, 2, 1, t.p);
    MoECRouter<double> router(cfg, RouterSetup{});
    for (std::int64_t step = 0; step < 12; step += 3)
      EXPECT_EQ(int(router.kept_experts(step).size()), t.kept) << "E=" << t.E << " p=" << t.p;
  }
}

TEST(MoECRouter, ConfigRefusesARateThatDropsNothing) {
  const std::vector<std::string> base = {"router.type=moec", "router.expert_dropout=0.25",
                                         "router.cluster_loss_weight=0", "model.num_experts=2"};
  auto load = [&](std::vector<std::string> extra) {
    std::vector<std::string> sets = base;
    sets.insert(sets.end(), extra.begin(), extra.end());
    return load_config("", sets);
  };
  // One expert per cluster: a cluster keeps one, so cluster mode drops nothing.
  EXPECT_THROW(load({"router.cluster_size=1", "router.dropout_mode=cluster", "model.top_k=1"}),
               UserError);
  // top_k = E: uniform mode must keep every expert.
  EXPECT_THROW(load({"router.cluster_size=2", "model.top_k=2"}), UserError);
  // Both drop one of two experts otherwise.
  EXPECT_NO_THROW(load({"router.cluster_size=2", "router.dropout_mode=cluster", "model.top_k=1"}));
  EXPECT_NO_THROW(load({"router.cluster_size=1", "model.top_k=1"}));
  try {
    load({"router.cluster_size=2", "model.top_k=2"});
  } catch (const UserError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("router.expert_dropout"), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
}

TEST(MoECRouter, EvaluationDropsTooWhenDropoutAtEval) {
  const int N = 32, E = 8, K = 1;
  Config cfg = moec_config(E, 2, K, 0.5);
  cfg.router.dropout_at_eval = true;
  MoECRouter<double> router(cfg, RouterSetup{});
  RouterRun run(N, E, K);
  auto logits = to_device(preferring_logits(N, E, 4));
  for (std::int64_t step : {0, 4, 7}) {
    const auto kept = router.kept_experts(step);
    router.forward({run.tokens, step, false}, logits, run.st, N);
    const auto counts = to_host(run.st.counts);
    for (int e = 0; e < E; ++e)
      if (!std::binary_search(kept.begin(), kept.end(), e)) {
        EXPECT_EQ(counts[e], 0) << e;
      }
  }
}

TEST(MoECRouter, UniformModeKeepsAtLeastTopK) {
  Config cfg = moec_config(4, 2, 2, 0.9);  // floor(0.1 * 4) = 0 kept -> raised to top_k = 2
  MoECRouter<double> router(cfg, RouterSetup{});
  for (std::int64_t step = 0; step < 30; ++step) EXPECT_EQ(router.kept_experts(step).size(), 2u);
}

TEST(MoECRouter, MoeLayerBackwardMatchesFiniteDifferencesWithDropout) {
  const int N = 6, C = 8, F = 6, E = 4;
  for (const char* form : {"intra", "inter"})
    for (const char* mode : {"uniform", "cluster"}) {
      Config cfg = moec_config(E, 2, 1, 0.5);
      cfg.router.cluster_loss = form;
      cfg.router.dropout_mode = mode;
      cfg.router.cluster_loss_weight = 0.5;  // large so its gradient matters in the check
      cfg.router.aux_loss_weight = 0.05;
      cfg.router.z_loss_weight = 0.01;
      MoeLayer<double> layer(cfg, std::make_unique<MoECRouter<double>>(cfg, RouterSetup{}));
      const auto& router = static_cast<const MoECRouter<double>&>(layer.router());
      // In uniform mode, a step whose kept pair lies in one cluster (a set cluster mode cannot
      // draw), so the two modes exercise different masks.
      std::int64_t step = 7;
      if (std::string(mode) == "uniform") {
        step = -1;
        for (std::int64_t s = 0; s < 300 && step < 0; s += cfg.router.dropout_interval) {
          const auto k = router.kept_experts(s);
          if (k.front() / 2 == k.back() / 2) step = s;
        }
        ASSERT_GE(step, 0);
      }
      ASSERT_LT(int(router.kept_experts(step).size()), E) << "the case must drop experts";

      std::vector<int> ids(N, 0);
      auto tokens = to_device(ids);
      std::string kept_text;
      for (int e : router.kept_experts(step)) kept_text += " " + std::to_string(e);
      SCOPED_TRACE(std::string(form) + " " + mode + ", kept:" + kept_text);
      LayerCheckOptions opt;
      opt.after_forward = [&] { EXPECT_GT(layer.losses().cluster, 0.0); };
      // Dropped experts' router columns learn only from the cluster loss, which reads the
      // unmasked distribution; the check also requires a non-zero router gradient.
      expect_layer_gradients_match(layer, {tokens, step, true}, N, C, F, E, 20, opt);
    }
}
