// Expert choice routing (Zhou et al. 2022): experts pick tokens instead of tokens picking
// experts. probs = softmax over experts of the router logits (per token); each expert takes its
// C = min(N, ceil(N * capacity_factor / E)) most probable tokens (ties to the lower token index),
// with gate = that probability. The decision has K = E slots per token (slot e = expert e, -1 when
// e did not choose the token), so a token gets 0..E experts and every expert exactly C tokens:
// balanced by construction, so there is no balance loss and no capacity cut in the dispatch.
// The ST-MoE z-loss on the logits is added when router.z_loss_weight > 0.
#pragma once

#include "routing/global_stats.hpp"
#include "routing/strategy.hpp"

namespace moe {

template <class Real>
class ExpertChoiceRouter : public Router<Real> {
 public:
  ExpertChoiceRouter(const Config& cfg, const RouterSetup& setup);
  std::string name() const override { return "expert_choice"; }
  int slots_per_token() const override { return E_; }
  // The router already enforces C per expert: the dispatch needs no limit.
  int capacity(Index) const override { return 0; }
  // Tokens per expert C ~ N*cf/E, so E*C/N ~ cf experts per token (at most E).
  double active_experts_per_token() const override;
  // C for a batch of N tokens.
  int tokens_per_expert(Index N) const;
  void forward(const RouteContext& ctx, View1<const Real> logits, RoutingState<Real>& st,
               int N) override;
  void backward(const RouteContext& ctx, View1<const Real> logits, const RoutingState<Real>& st,
                View1<const Real> dgate, View1<Real> dlogits, int N) override;

 private:
  int E_;
  double capacity_factor_, z_weight_;
  Buffer<Real> dprobs_;  // scratch [N,E]
  // Data parallelism: every expert chooses among the tokens of all ranks, so each rank
  // selects on the gathered [N_global, E] probabilities and keeps its own rows.
  Buffer<Real> all_probs_, all_gate_;
  Buffer<int> all_expert_, all_counts_;
  GlobalRouterStats<Real> stats_{nullptr};  // losses over the global batch
};

}  // namespace moe
