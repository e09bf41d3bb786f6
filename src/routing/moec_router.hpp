// MoEC: Mixture of Expert Clusters (Xie et al., AAAI 2023, arXiv 2207.09094).
// Routing is top-k token choice over softmax(logits) exactly as TopKRouter (Switch balance loss,
// ST-MoE z-loss, capacity, gate normalisation, drop policy), which it derives from. On top of it:
// - experts form G = E / cluster_size contiguous clusters, and a variance-based cluster loss
//   (kernels/cluster_loss.hpp; "intra" = the public code, or "inter") joins the aux losses;
// - expert dropout in training: a kept set of experts, redrawn every dropout_interval steps from
//   (train.seed, layer, step / dropout_interval) alone (reproducible and resumable); dropped
//   experts get logit -inf before the softmax, so tokens go to their best surviving experts.
//   Evaluation sees every expert unless router.dropout_at_eval (the public code's behaviour).
// The cluster loss reads loads relative to a uniform router (E times the mean probability), so
// its value does not depend on batch size or sequence length; router.cluster_loss_scale =
// "public_sum" restores the public code's batch sums.
#pragma once

#include <cstdint>
#include <vector>

#include "cluster_loss.hpp"
#include "routing/topk_router.hpp"

namespace moe {

template <class Real>
class MoECRouter : public TopKRouter<Real> {
 public:
  MoECRouter(const Config& cfg, const RouterSetup& setup);
  std::string name() const override { return "moec"; }

  // The experts kept by training-time dropout at `step`, ascending (all E when the rate is 0).
  // A pure function of (train.seed, layer, step / dropout_interval).
  std::vector<int> kept_experts(std::int64_t step) const;
  int cluster_size() const { return cluster_size_; }

 protected:
  // Dropped experts to -inf in training.
  View1<const Real> routing_logits(const RouteContext& ctx, View1<const Real> logits,
                                   int N) override;
  // The cluster loss.
  double extra_losses_forward(const RouteContext& ctx, View1<const Real> logits,
                              RoutingState<Real>& st, int N) override;
  bool has_extra_losses() const override { return true; }
  void extra_losses_backward(const RouteContext& ctx, View1<const Real> logits,
                             const RoutingState<Real>& st, View1<Real> dprobs, View1<Real> dlogits,
                             int N) override;

 private:
  using TopKRouter<Real>::E_;
  using TopKRouter<Real>::k_;
  // Makes keep_ hold the mask of the interval of `step` (host draw, one small copy per interval).
  void update_mask(std::int64_t step);

  int cluster_size_;
  double cluster_weight_, dropout_;
  int dropout_interval_;
  bool cluster_mode_;  // dropout_mode == "cluster"
  bool drop_at_eval_;  // dropout_at_eval: evaluation routes around the dropped experts too
  bool public_scale_;  // cluster_loss_scale == "public_sum"
  ClusterLossForm form_;
  ClusterLossScaling scaling_;  // of the last forward (the backward uses the same)
  std::uint64_t seed_;

  std::int64_t mask_interval_ = -1;  // interval whose mask keep_ holds (-1 = none yet)
  bool drops_any_ = false;           // the dropout rate removes at least one expert
  Buffer<int> keep_;                 // [E] 1 = kept, 0 = dropped
  Buffer<Real> P_, dP_;              // [E] batch-summed probabilities and their gradient
  // Under expert dropout the cluster loss reads the router's own distribution over all experts
  // (softmax of the unmasked logits), not the masked one the routing uses.
  Buffer<Real> full_probs_, dfull_;  // [N,E]
};

}  // namespace moe
