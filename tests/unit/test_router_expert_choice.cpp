// Expert choice routing: every expert takes exactly C = min(N, ceil(N*cf/E)) tokens, the C most
// probable ones; tokens get 0..E experts; MoeLayer gradients against finite differences.
#include <algorithm>
#include <cmath>

#include "layer_gradient_check.hpp"
#include "model/moe_layer.hpp"
#include "routing/expert_choice_router.hpp"
#include "support.hpp"
#include "tiny_config.hpp"

using namespace moe;
using namespace moe::test;

namespace {

Config ec_config(double cf, int E = 4) {
  Config c = tiny_config("expert_choice", E, 1);
  c.router.capacity_factor = cf;
  c.router.z_loss_weight = 0.01;
  return c;
}

struct Routed {
  std::vector<double> probs, gate;
  std::vector<int> expert_of, counts;
  AuxLosses losses;
};

Routed route(ExpertChoiceRouter<double>& router, const std::vector<double>& logits, int N, int E) {
  RoutingState<double> st;
  st.probs = Buffer<double>(std::string("p"), std::size_t(N) * E);
  st.expert_of = Buffer<int>(std::string("eo"), std::size_t(N) * E);
  st.gate = Buffer<double>(std::string("g"), std::size_t(N) * E);
  st.counts = Buffer<int>(std::string("c"), E);
  auto l = to_device(logits);
  auto tok = to_device(std::vector<int>(N, 0));
  router.forward({tok, 0, true}, l, st, N);
  return {to_host(st.probs), to_host(st.gate), to_host(st.expert_of), to_host(st.counts),
          st.losses};
}

}  // namespace

TEST(ExpertChoiceRouter, EachExpertTakesItsTopCTokens) {
  const int E = 4;
  for (int N : {1, 3, 10, 33}) {
    for (double cf : {0.5, 1.0, 2.0, 8.0}) {
      SCOPED_TRACE("N=" + std::to_string(N) + " cf=" + std::to_string(cf));
      const Config cfg = ec_config(cf, E);
      ExpertChoiceRouter<double> router(cfg, RouterSetup{});
      EXPECT_EQ(router.slots_per_token(), E);
      EXPECT_EQ(router.capacity(N), 0);
      EXPECT_EQ(router.active_experts_per_token(), std::min(cf, double(E)));
      const int C = router.tokens_per_expert(N);
      EXPECT_EQ(C, std::min(N, int(std::ceil(N * cf / E))));
      const auto r = route(router, random_vector(std::size_t(N) * E, 17 + N, -2, 2), N, E);
      for (int e = 0; e < E; ++e) {
        int taken = 0;
        double lowest_taken = 2, highest_left = -1;
        for (int n = 0; n < N; ++n) {
          const double p = r.probs[n * E + e];
          const int slot = r.expert_of[n * E + e];
          if (slot >= 0) {
            EXPECT_EQ(slot, e);
            EXPECT_EQ(r.gate[n * E + e], p);
            ++taken;
            lowest_taken = std::min(lowest_taken, p);
          } else {
            EXPECT_EQ(r.gate[n * E + e], 0.0);
            highest_left = std::max(highest_left, p);
          }
        }
        EXPECT_LE(taken, C);
        if (N >= C) {
          EXPECT_EQ(taken, C);
        }
        EXPECT_EQ(r.counts[e], taken);
        EXPECT_GE(lowest_taken, highest_left) << "expert " << e << " skipped a likelier token";
      }
      EXPECT_EQ(r.losses.balance, 0.0);
      EXPECT_GT(r.losses.z, 0.0);
      EXPECT_DOUBLE_EQ(r.losses.weighted, 0.01 * r.losses.z);
    }
  }
}

TEST(ExpertChoiceRouter, TokensMayGetNoExpertOrSeveral) {
  // N = 8, E = 4, cf = 1: C = 2, so E*C = N slots. Token 0 has probability ~0.5 for experts 0 and
  // 1, more than any other token can reach there (logits within +-0.5 give p < 0.48), so it gets
  // two experts; the remaining 6 slots cannot cover the other 7 tokens, so one gets none.
  const int N = 8, E = 4;
  auto logits = random_vector(std::size_t(N) * E, 31, -0.5, 0.5);
  const double row0[] = {3.0, 3.0, -3.0, -3.0};
  for (int e = 0; e < E; ++e) logits[e] = row0[e];
  ExpertChoiceRouter<double> router(ec_config(1.0, E), RouterSetup{});
  ASSERT_EQ(router.tokens_per_expert(N), 2);
  auto r = route(router, logits, N, E);
  std::vector<int> per_token(N, 0);
  for (int n = 0; n < N; ++n)
    for (int e = 0; e < E; ++e) per_token[n] += r.expert_of[n * E + e] >= 0;
  EXPECT_EQ(r.expert_of[0], 0);
  EXPECT_EQ(r.expert_of[1], 1);
  EXPECT_EQ(per_token[0], 2);
  EXPECT_EQ(*std::min_element(per_token.begin(), per_token.end()), 0);
  int total = 0;
  for (int c : per_token) total += c;
  EXPECT_EQ(total, E * 2);
}

TEST(ExpertChoiceRouter, MoeLayerBackwardMatchesFiniteDifferences) {
  const int N = 6, C = 8, F = 6, E = 4;
  for (double cf : {1.0, 2.0}) {
    SCOPED_TRACE(cf);
    const Config cfg = ec_config(cf, E);
    MoeLayer<double> layer(cfg, std::make_unique<ExpertChoiceRouter<double>>(cfg, RouterSetup{}));
    auto tokens = to_device(std::vector<int>(N, 0));
    LayerCheckOptions opt;
    opt.after_forward = [&] {
      // Some token is left without an expert or gets several (the case the check must cover).
      const auto eo = to_host(layer.routing().expert_of);
      int zero = 0, many = 0;
      for (int n = 0; n < N; ++n) {
        int k = 0;
        for (int e = 0; e < E; ++e) k += eo[n * E + e] >= 0;
        zero += k == 0;
        many += k > 1;
      }
      EXPECT_GT(zero + many, 0);
    };
    expect_layer_gradients_match(layer, {tokens, 0, true}, N, C, F, E, 20, opt);
  }
}
