// Top-k router (Switch / GShard token choice): the drop policies (an overfull expert keeps its
// highest-gate copies under "probability", its first copies in token order under "position"),
// gate renormalisation, the balance loss counting the N*k assignments by hand, and gradients
// against finite differences: through MoeLayer with normalize_gates, and through a copy of the
// layer's pipeline that dispatches by priority (the layer itself dispatches by position until
// it asks the router for a drop priority).
#include <algorithm>
#include <cmath>

#include "combine.hpp"
#include "config/config.hpp"
#include "dispatch.hpp"
#include "layer_gradient_check.hpp"
#include "matmul.hpp"
#include "mlp.hpp"
#include "model/moe_layer.hpp"
#include "routing/topk_router.hpp"
#include "support.hpp"
#include "tiny_config.hpp"

using namespace moe;
using namespace moe::test;

namespace {

Config topk_config(int E, int k, double capacity_factor, const std::string& policy,
                   bool normalize) {
  Config c = tiny_config("topk", E, k);
  c.router.capacity_factor = capacity_factor;
  c.router.drop_policy = policy;
  c.router.normalize_gates = normalize;
  c.router.aux_loss_weight = 0.05;
  c.router.z_loss_weight = 0.01;
  return c;
}

template <class Real>
RoutingState<Real> make_state(int N, int E, int K) {
  RoutingState<Real> st;
  st.probs = Buffer<Real>("probs", std::size_t(N) * E);
  st.expert_of = Buffer<int>("expert_of", std::size_t(N) * K);
  st.gate = Buffer<Real>("gate", std::size_t(N) * K);
  st.counts = Buffer<int>("counts", std::size_t(E));
  return st;
}

// Logits with a strong pull toward expert 0 so that it overflows any capacity near 1.
std::vector<double> skewed_logits(int N, int E, std::uint64_t seed) {
  auto l = random_vector(std::size_t(N) * E, seed, -1.0, 1.0);
  for (int n = 0; n < N; ++n) l[n * E] += 1.5;
  return l;
}

// The set of copies each expert keeps: the `cap` best by (gate desc, index asc) under
// "probability", the first `cap` in assignment order under "position".
std::vector<char> reference_kept(const std::vector<int>& ex, const std::vector<double>& gate, int E,
                                 int cap, bool by_probability) {
  std::vector<char> keep(ex.size(), 0);
  for (int e = 0; e < E; ++e) {
    std::vector<int> mine;
    for (int a = 0; a < int(ex.size()); ++a)
      if (ex[a] == e) mine.push_back(a);
    if (by_probability)
      std::stable_sort(mine.begin(), mine.end(), [&](int x, int y) { return gate[x] > gate[y]; });
    for (int i = 0; i < int(mine.size()) && (cap <= 0 || i < cap); ++i) keep[mine[i]] = 1;
  }
  return keep;
}

// What MoeLayer does, with the router's drop priority passed to the dispatch.
struct PriorityPipeline {
  TopKRouter<double> router;
  int N, C, F, E, K;
  RoutingState<double> st;
  DispatchPlan plan;
  Buffer<double> logits, xg, pre, act, yg;
  PriorityPipeline(const Config& cfg, int N_)
      : router(cfg, RouterSetup{}),
        N(N_),
        C(cfg.model.d_model),
        F(cfg.model.d_ff),
        E(cfg.model.num_experts),
        K(cfg.model.top_k),
        st(make_state<double>(N_, cfg.model.num_experts, cfg.model.top_k)),
        logits("logits", std::size_t(N_) * cfg.model.num_experts) {}

  double forward(const RouteContext& ctx, const FfnTensors<double>& p, View1<const double> x,
                 View1<double> out) {
    linear_forward<double>(ExecSpace(), matrix(x, N, C), matrix(p.router_w, C, E),
                           View1<const double>(), matrix(logits, N, E));
    router.forward(ctx, logits, st, N);
    dispatch_plan<double>(st.expert_of, router.drop_priority(st), Index(N) * K, E,
                          router.capacity(N), plan);
    const Index M = plan.total_kept;
    xg = Buffer<double>("xg", std::max<Index>(1, M * C));
    pre = Buffer<double>("pre", std::max<Index>(1, M * F));
    act = Buffer<double>("act", std::max<Index>(1, M * F));
    yg = Buffer<double>("yg", std::max<Index>(1, M * C));
    dispatch_forward<double>(x, plan, xg, K, C);
    mlp_forward<double>(ExecSpace(), matrix(xg, M, C), MlpWeights<double>(p.w1, p.b1, p.w2, p.b2),
                        {matrix(pre, M, F), matrix(act, M, F)}, matrix(yg, M, C),
                        plan.host_offsets);
    combine_forward<double>(ExecSpace(), matrix(yg, M, C), matrix(plan.slot_of, N, K),
                            matrix(st.gate, N, K), matrix(out, N, C));
    return st.losses.weighted;
  }

  void backward(const RouteContext& ctx, View1<const double> dout, View1<const double> x,
                const FfnTensors<double>& p, const FfnTensors<double>& g, View1<double> dx) {
    const Index M = plan.total_kept;
    Buffer<double> dgate("dgate", std::size_t(N) * K), dyg("dyg", std::max<Index>(1, M * C)),
        dxg("dxg", std::max<Index>(1, M * C)), dpre("dpre", std::max<Index>(1, M * F)),
        dlogits("dlogits", std::size_t(N) * E);
    combine_backward<double>(ExecSpace(), matrix(dout, N, C), matrix(yg, M, C),
                             matrix(plan.slot_of, N, K), matrix(st.gate, N, K), matrix(dyg, M, C),
                             matrix(dgate, N, K));
    mlp_backward<double>(
        ExecSpace(), matrix(dyg, M, C), matrix(xg, M, C), {matrix(pre, M, F), matrix(act, M, F)},
        MlpWeights<double>(p.w1, p.b1, p.w2, p.b2), matrix(dpre, M, F), matrix(dxg, M, C),
        MlpWeights<double>(g.w1, g.b1, g.w2, g.b2), plan.host_offsets);
    dispatch_backward<double>(dxg, plan, dx, N, K, C);
    router.backward(ctx, logits, st, dgate, dlogits, N);
    linear_backward<double>(ExecSpace(), matrix(dlogits, N, E), matrix(x, N, C),
                            matrix(p.router_w, C, E), matrix(dx, N, C), matrix(g.router_w, C, E),
                            View1<double>());
  }
};

}  // namespace

TEST(TopKRouter, DropPolicyProbabilityKeepsHighestGateCopies) {
  const int N = 24, E = 4;
  for (bool normalize : {false, true})
    for (int k : {1, 2}) {
      SCOPED_TRACE(testing::Message() << "k=" << k << " normalize=" << normalize);
      const Config cfg = topk_config(E, k, 1.0, "probability", normalize);
      TopKRouter<double> router(cfg, RouterSetup{});
      EXPECT_TRUE(router.drops_by_probability());
      auto st = make_state<double>(N, E, k);
      auto logits = skewed_logits(N, E, 91 + k);
      std::vector<int> ids(N, 0);
      RouteContext ctx{to_device(ids), 0, true};
      router.forward(ctx, to_device(logits), st, N);
      const int cap = router.capacity(N);
      const auto prio = router.drop_priority(st);
      ASSERT_EQ(prio.data(), st.gate.data());  // the final gates
      DispatchPlan plan;
      dispatch_plan<double>(st.expert_of, prio, Index(N) * k, E, cap, plan);
      ASSERT_GT(plan.dropped, 0) << "expert 0 must overflow";
      auto ex = to_host(st.expert_of), slot = to_host(plan.slot_of, Index(N) * k);
      auto gate = to_host(st.gate);
      auto want = reference_kept(ex, gate, E, cap, true);
      for (int a = 0; a < N * k; ++a) EXPECT_EQ(slot[a] >= 0, bool(want[a])) << "a=" << a;
      // The choice really differs from dropping by position here, except for normalised top-1,
      // whose gates are all exactly 1 (ties to the lower index = position).
      if (normalize && k == 1)
        EXPECT_EQ(want, reference_kept(ex, gate, E, cap, false));
      else
        EXPECT_NE(want, reference_kept(ex, gate, E, cap, false));
    }
}

TEST(TopKRouter, DropPolicyPositionKeepsFirstCopiesInTokenOrder) {
  const int N = 24, E = 4, k = 2;
  const Config cfg = topk_config(E, k, 1.0, "position", false);
  TopKRouter<double> router(cfg, RouterSetup{});
  EXPECT_FALSE(router.drops_by_probability());
  auto st = make_state<double>(N, E, k);
  std::vector<int> ids(N, 0);
  RouteContext ctx{to_device(ids), 0, true};
  router.forward(ctx, to_device(skewed_logits(N, E, 95)), st, N);
  EXPECT_EQ(router.drop_priority(st).extent(0), 0u);
  const int cap = router.capacity(N);
  DispatchPlan via_priority, plain;
  dispatch_plan<double>(st.expert_of, router.drop_priority(st), Index(N) * k, E, cap, via_priority);
  dispatch_plan(st.expert_of, Index(N) * k, E, cap, plain);
  ASSERT_GT(plain.dropped, 0);
  auto ex = to_host(st.expert_of);
  auto gate = to_host(st.gate);
  auto want = reference_kept(ex, gate, E, cap, false);
  auto s1 = to_host(via_priority.slot_of, Index(N) * k), s2 = to_host(plain.slot_of, Index(N) * k);
  EXPECT_EQ(s1, s2);
  for (int a = 0; a < N * k; ++a) EXPECT_EQ(s1[a] >= 0, bool(want[a])) << "a=" << a;
}

TEST(TopKRouter, NormalizedGatesSumToOneAndKeepRatios) {
  const int N = 17, E = 5, k = 2;
  const Config cfg = topk_config(E, k, 0.0, "position", true);
  TopKRouter<double> router(cfg, RouterSetup{});
  EXPECT_TRUE(router.normalizes_gates());
  auto st = make_state<double>(N, E, k);
  std::vector<int> ids(N, 0);
  RouteContext ctx{to_device(ids), 0, true};
  router.forward(ctx, to_device(random_vector(N * E, 96, -2.0, 2.0)), st, N);
  auto gate = to_host(st.gate), probs = to_host(st.probs);
  auto ex = to_host(st.expert_of);
  for (int n = 0; n < N; ++n) {
    EXPECT_NEAR(gate[n * k] + gate[n * k + 1], 1.0, 1e-14) << "token " << n;
    const double p0 = probs[n * E + ex[n * k]], p1 = probs[n * E + ex[n * k + 1]];
    EXPECT_GE(p0, p1);
    EXPECT_NEAR(gate[n * k], p0 / (p0 + p1), 1e-14);
  }
}

TEST(TopKRouter, BalanceLossCountsFirstChoicesByHand) {
  // N = 2 tokens, E = 3, k = 2. Token 0 logits (2,1,0) picks experts 0,1; token 1 (0,3,1)
  // picks 1,2. P = column means of softmax. GShard/Switch (balance_count = "first", the
  // default): f over the T = 2 first choices = (1/2, 1/2, 0); balance_count = "all": f over the
  // T*k = 4 assignments = (1/4, 2/4, 1/4). Either way st.counts holds every assignment.
  const int N = 2, E = 3, k = 2;
  const std::vector<double> logits = {2, 1, 0, 0, 3, 1};
  const double z0 = std::exp(2.0) + std::exp(1.0) + 1.0, z1 = 1.0 + std::exp(3.0) + std::exp(1.0);
  const double P[3] = {(std::exp(2.0) / z0 + 1.0 / z1) / 2,
                       (std::exp(1.0) / z0 + std::exp(3.0) / z1) / 2,
                       (1.0 / z0 + std::exp(1.0) / z1) / 2};
  for (const char* count : {"first", "all"}) {
    SCOPED_TRACE(count);
    Config cfg = topk_config(E, k, 0.0, "position", false);
    cfg.router.balance_count = count;
    TopKRouter<double> router(cfg, RouterSetup{});
    auto st = make_state<double>(N, E, k);
    std::vector<int> ids(N, 0);
    router.forward({to_device(ids), 0, true}, to_device(logits), st, N);
    EXPECT_EQ(to_host(st.expert_of), (std::vector<int>{0, 1, 1, 2}));
    EXPECT_EQ(to_host(st.counts), (std::vector<int>{1, 2, 1}));
    const double want = std::string(count) == "first"
                            ? 3 * (0.5 * P[0] + 0.5 * P[1])
                            : 3 * (0.25 * P[0] + 0.5 * P[1] + 0.25 * P[2]);
    EXPECT_NEAR(st.losses.balance, want, 1e-14);
    EXPECT_NEAR(st.losses.weighted, 0.05 * want + 0.01 * st.losses.z, 1e-14);
    // The gradient through P is weight * E * f_e / N per token: 0 for expert 2 under "first".
    Buffer<double> dlogits("dlogits", N * E);
    Buffer<double> zero_dgate("dgate", N * k);
    Config only_balance = cfg;
    only_balance.router.z_loss_weight = 0.0;
    TopKRouter<double> plain(only_balance, RouterSetup{});
    plain.forward({to_device(ids), 0, true}, to_device(logits), st, N);
    Buffer<double> dprobs_probe("dl", N * E);
    plain.backward({to_device(ids), 0, true}, to_device(logits), st, zero_dgate, dprobs_probe, N);
    const auto probs = to_host(st.probs), d = to_host(dprobs_probe);
    const double f[3] = {std::string(count) == "first" ? 0.5 : 0.25, 0.5,
                         std::string(count) == "first" ? 0.0 : 0.25};
    for (int n = 0; n < N; ++n) {
      // dlogits = p * (dp - sum_j dp_j p_j) with dp_e = 0.05 * E * f_e / N.
      double dot = 0;
      for (int e = 0; e < E; ++e) dot += 0.05 * E * f[e] / N * probs[n * E + e];
      for (int e = 0; e < E; ++e)
        EXPECT_NEAR(d[n * E + e], probs[n * E + e] * (0.05 * E * f[e] / N - dot), 1e-14);
    }
  }
}

TEST(TopKRouter, MoeLayerBackwardMatchesFiniteDifferencesWithNormalizedGates) {
  const int N = 6, E = 4;
  for (double cf : {0.0, 0.75}) {
    SCOPED_TRACE(cf);
    const Config cfg = topk_config(E, 2, cf, "position", true);
    MoeLayer<double> layer(cfg, std::make_unique<TopKRouter<double>>(cfg, RouterSetup{}));
    std::vector<int> ids(N, 0);
    auto tokens = to_device(ids);
    LayerCheckOptions opt;
    opt.router_weight_range = 1.5;
    opt.after_forward = [&] {
      if (cf > 0) {
        ASSERT_GT(layer.plan().dropped, 0);
      }
      auto gate = to_host(layer.routing().gate);
      for (int n = 0; n < N; ++n) EXPECT_NEAR(gate[2 * n] + gate[2 * n + 1], 1.0, 1e-14);
    };
    expect_layer_gradients_match(layer, {tokens, 0, true}, N, 8, 6, E, 21, opt);
  }
}

TEST(TopKRouter, PriorityDispatchPipelineBackwardMatchesFiniteDifferences) {
  const int N = 8, C = 8, F = 6, E = 4;
  for (bool normalize : {false, true}) {
    SCOPED_TRACE(normalize);
    const Config cfg = topk_config(E, 2, 0.75, "probability", normalize);
    PriorityPipeline pipe(cfg, N);
    std::vector<int> ids(N, 0);
    auto tokens = to_device(ids);
    RouteContext ctx{tokens, 0, true};
    LayerCheckOptions opt;
    opt.router_weight_range = 1.5;
    opt.after_forward = [&] {
      ASSERT_GT(pipe.plan.dropped, 0);
      // The kept set is the highest-gate one, and differs from drop by position.
      auto ex = to_host(pipe.st.expert_of);
      auto gate = to_host(pipe.st.gate);
      auto slot = to_host(pipe.plan.slot_of, N * 2);
      const int cap = pipe.router.capacity(N);
      auto want = reference_kept(ex, gate, E, cap, true);
      for (int a = 0; a < N * 2; ++a) EXPECT_EQ(slot[a] >= 0, bool(want[a])) << "a=" << a;
      EXPECT_NE(want, reference_kept(ex, gate, E, cap, false));
    };
    expect_gradients_match([&](View1<const double> x, const FfnTensors<double>& p,
                               View1<double> out) { return pipe.forward(ctx, p, x, out); },
                           [&](View1<const double> dout, View1<const double> x,
                               const FfnTensors<double>& p, const FfnTensors<double>& g,
                               View1<double> dx) { pipe.backward(ctx, dout, x, p, g, dx); },
                           N, C, F, E, 31, opt);
  }
}

// The tie bug: with k = 1 and normalize_gates every gate is p / p = 1, so dropping by
// probability must fall back to the lower assignment index, i.e. keep the first copies in token
// order. Computed as p * (1/p) in float, the gates were 1 or 1 - 2^-24 depending on p, and that
// last bit decided which tokens were dropped.
TEST(TopKRouter, NormalizedTopOneGatesAreExactlyOneSoProbabilityDropKeepsTokenOrder) {
  const int N = 64, E = 4, k = 1;
  const Config cfg = topk_config(E, k, 1.0, "probability", true);
  TopKRouter<float> router(cfg, RouterSetup{});
  auto st = make_state<float>(N, E, k);
  std::vector<float> logits(std::size_t(N) * E);
  const auto raw = skewed_logits(N, E, 97);
  for (std::size_t i = 0; i < raw.size(); ++i) logits[i] = float(raw[i]);
  std::vector<int> ids(N, 0);
  router.forward({to_device(ids), 0, true}, to_device(logits), st, N);
  const auto gate = to_host(st.gate), probs = to_host(st.probs);
  const auto ex = to_host(st.expert_of);
  int inexact_products = 0;  // tokens where the old formula p * (1/p) is not 1
  for (int n = 0; n < N; ++n) {
    EXPECT_EQ(gate[n], 1.0f) << "token " << n;
    const float p = probs[std::size_t(n) * E + std::size_t(ex[n])];
    const volatile float inv = 1.0f / p;
    if (p * inv != 1.0f) ++inexact_products;
  }
  EXPECT_GT(inexact_products, 0) << "the inputs must contain a case the old formula got wrong";
  const int cap = router.capacity(N);
  DispatchPlan by_gate, by_position;
  dispatch_plan<float>(st.expert_of, router.drop_priority(st), Index(N) * k, E, cap, by_gate);
  dispatch_plan(st.expert_of, Index(N) * k, E, cap, by_position);
  ASSERT_GT(by_position.dropped, 0) << "expert 0 must overflow";
  EXPECT_EQ(to_host(by_gate.slot_of, N), to_host(by_position.slot_of, N));
}

// GShard top-2 under a capacity (drop_order = "slot", the default): the layer's cut keeps every
// token's first choice before any token's second choice; "token" interleaves them as before.
TEST(TopKRouter, MoeLayerGivesFirstChoicesCapacityPriority) {
  const int N = 12, E = 4, k = 2;
  for (const char* order : {"slot", "token"}) {
    SCOPED_TRACE(order);
    Config cfg = topk_config(E, k, 0.5, "position", false);
    cfg.router.drop_order = order;
    MoeLayer<double> layer(cfg, std::make_unique<TopKRouter<double>>(cfg, RouterSetup{}));
    EXPECT_EQ(layer.router().capacity_slot_major(), std::string(order) == "slot");
    std::vector<int> ids(N, 0);
    LayerCheckOptions opt;
    opt.router_weight_range = 1.5;
    opt.after_forward = [&] {
      const auto ex = to_host(layer.routing().expert_of);
      const auto slot = to_host(layer.plan().slot_of, N * k);
      const int cap = layer.router().capacity(N);
      ASSERT_GT(layer.plan().dropped, 0);
      for (int e = 0; e < E; ++e) {
        // Ranks of e's copies in the expected order; kept iff rank < capacity.
        int rank = 0;
        auto visit = [&](int a) {
          if (ex[a] != e) return;
          EXPECT_EQ(slot[a] >= 0, rank < cap) << "a=" << a;
          ++rank;
        };
        if (std::string(order) == "slot") {
          for (int j = 0; j < k; ++j)
            for (int n = 0; n < N; ++n) visit(n * k + j);
        } else {
          for (int a = 0; a < N * k; ++a) visit(a);
        }
      }
    };
    expect_layer_gradients_match(layer, {to_device(ids), 0, true}, N, 8, 6, E, 23, opt);
  }
}
