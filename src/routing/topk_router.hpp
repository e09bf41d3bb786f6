// Dynamic top-k routing: Switch (k = 1) and GShard-style (k = 2) token choice.
// probs = softmax(logits) over all experts; each token takes its k most probable experts with
// gates equal to those probabilities (as in Switch), or, with router.normalize_gates, those
// probabilities divided by their sum over the token's k picks (GShard top-2). Auxiliary losses
// are the Switch balance loss (f_e counts each token's first choice as GShard and Switch do, or
// with router.balance_count = "all" the N*k assignments) and the ST-MoE router z-loss. Under a
// capacity cut by position every first choice is ranked before any second choice (GShard;
// router.drop_order = "token" interleaves a token's slots as before).
// router.drop_policy picks which copies an overfull expert drops under a capacity: "position"
// (later tokens) or "probability" (lowest final gates); see drop_priority().
//
// The forward/backward skeleton is shared by the top-k variants (MaskMoERouter, MoECRouter),
// which derive from this class and change it only through the protected hooks below.
#pragma once

#include "routing/global_stats.hpp"
#include "routing/strategy.hpp"

namespace moe {

template <class Real>
class TopKRouter : public Router<Real> {
 public:
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
  // Position drops rank every first choice before any second choice (GShard), for k > 1.
  bool capacity_slot_major() const override { return slot_major_drops_ && k_ > 1; }
  bool normalizes_gates() const { return normalize_gates_; }
  // Without extra losses the backward writes every entry of dlogits (no zero-fill needed).
  bool backward_writes_dlogits() const override { return !has_extra_losses(); }

 protected:
  // Hooks of the top-k variants (host-side virtual calls, never inside a kernel).
  // The logits the routing softmax and the z-loss see: `logits` itself, or a view of
  // masked_logits_buffer(N) with some entries at -inf. A masked entry gets probability exactly
  // 0, so the softmax and z-loss backward give it exactly 0 and no separate mask backward is
  // needed.
  virtual View1<const Real> routing_logits(const RouteContext&, View1<const Real> logits, int) {
    return logits;
  }
  // Adjusts the top-k decision before gate normalisation and the losses.
  virtual void after_topk(RoutingState<Real>&, int) {}
  // Further auxiliary losses: fills their raw values in st.losses and returns their weighted sum.
  virtual double extra_losses_forward(const RouteContext&, View1<const Real>, RoutingState<Real>&,
                                      int) {
    return 0.0;
  }
  // Their gradients, before the routing softmax backward: into dprobs (w.r.t. st.probs) or
  // straight into dlogits (w.r.t. the unmasked logits).
  // Whether the two hooks below add losses (their backward may write into dlogits).
  virtual bool has_extra_losses() const { return false; }
  virtual void extra_losses_backward(const RouteContext&, View1<const Real>,
                                     const RoutingState<Real>&, View1<Real>, View1<Real>, int) {}

  // The scratch [N,E] a routing_logits override writes its masked logits into.
  View1<Real> masked_logits_buffer(int N) {
    return scratch(masked_, Index(N) * E_, "moe::router.masked_logits");
  }
  // Whether the last forward routed on masked logits.
  bool routed_masked() const { return routed_masked_; }
  // Makes `b` hold at least n elements (contents not kept) and returns its first n as a view.
  template <class T>
  static View1<T> scratch(Buffer<T>& b, Index n, const char* label) {
    if (Index(b.extent(0)) < n) b = Buffer<T>(std::string(label), std::size_t(n));
    return slice(b, 0, n);
  }

  int E_, k_;
  double capacity_factor_, aux_weight_, z_weight_;
  bool normalize_gates_, drop_by_probability_;
  bool first_choice_balance_;      // balance_count = "first": f_e counts slot 0 only
  bool slot_major_drops_;          // drop_order = "slot": first choices get capacity first
  GlobalRouterStats<Real> stats_;  // losses over the global batch

 private:
  Buffer<Real> masked_;         // [N,E] masked logits of the last forward (kept for backward)
  View1<const Real> routed_;    // the logits the last forward routed on
  bool routed_masked_ = false;  // routed_ is a view of masked_
  Buffer<Real> dprobs_;         // scratch [N,E]
  Buffer<int> first_counts_;    // [E] first choices per expert (balance_count = "first")
  Buffer<Real> lse2_;           // [N] each token's logsumexp squared (the z-loss's terms)
};

}  // namespace moe
