// Dynamic top-k routing: Switch (k = 1) and GShard-style (k = 2) token choice.
// probs = softmax(logits) over all experts; each token takes its k most probable experts with
// gates equal to those probabilities (no renormalisation, as in Switch); auxiliary losses are
// the Switch balance loss (f_e counts the N*k assignments) and the ST-MoE router z-loss.
#pragma once

#include "routing/strategy.hpp"

namespace moe {

template <class Real>
class TopKRouter : public Router<Real> {
 public:
  explicit TopKRouter(const Config& cfg);
  std::string name() const override { return "topk"; }
  int slots_per_token() const override { return k_; }
  int capacity(Index N) const override;
  void forward(const RouteContext& ctx, View1<const Real> logits, RoutingState<Real>& st,
               int N) override;
  void backward(const RouteContext& ctx, View1<const Real> logits, const RoutingState<Real>& st,
                View1<const Real> dgate, View1<Real> dlogits, int N) override;

 protected:
  int E_, k_;
  double capacity_factor_, aux_weight_, z_weight_;
  Buffer<Real> dprobs_;  // scratch [N,E]
};

}  // namespace moe
