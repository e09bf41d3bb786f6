// Dynamic top-k routing: Switch (k = 1) and GShard-style (k = 2) token choice.
// probs = softmax(logits) over all experts; each token takes its k most probable experts with
// gates equal to those probabilities (as in Switch), or, with router.normalize_gates, those
// probabilities divided by their sum over the token's k picks (GShard top-2). Auxiliary losses
// are the Switch balance loss (f_e counts the N*k assignments) and the ST-MoE router z-loss.
// router.drop_policy picks which copies an overfull expert drops under a capacity: "position"
// (later tokens) or "probability" (lowest final gates); see drop_priority().
#pragma once

#include "routing/global_stats.hpp"
#include "routing/strategy.hpp"

namespace moe {

template <class Real>
class TopKRouter : public Router<Real> {
 public:
  explicit TopKRouter(const Config& cfg);
  TopKRouter(const Config& cfg, const RouterSetup& setup);
  std::string name() const override { return "topk"; }
  int slots_per_token() const override { return k_; }
  int capacity(Index N) const override;
  void forward(const RouteContext& ctx, View1<const Real> logits, RoutingState<Real>& st,
               int N) override;
  void backward(const RouteContext& ctx, View1<const Real> logits, const RoutingState<Real>& st,
                View1<const Real> dgate, View1<Real> dlogits, int N) override;
  // The priority the dispatch drops by, for the decision in `st`: the final gates [N*k] under
  // drop_policy = "probability", an empty view (drop by position) otherwise.
  View1<const Real> drop_priority(const RoutingState<Real>& st) const override;

  bool drops_by_probability() const { return drop_by_probability_; }
  bool normalizes_gates() const { return normalize_gates_; }

 protected:
  int E_, k_;
  double capacity_factor_, aux_weight_, z_weight_;
  bool normalize_gates_ = false, drop_by_probability_ = false;
  Buffer<Real> dprobs_;  // scratch [N,E]
  GlobalRouterStats<Real> stats_{nullptr};  // losses over the global batch
};

}  // namespace moe
