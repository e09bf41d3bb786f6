// MaskMoE routing (Su et al. 2024, arXiv 2407.09816): every vocabulary token gets a fixed
// routing mask over the experts, drawn once before training from the training-split token
// counts. Infrequent tokens see 1 expert (so their few occurrences all train the same expert),
// the others see router.visible_experts experts (so frequent tokens keep routing diversity).
// Invisible experts get logit -inf; then ordinary top-k on the softmax of the masked logits.
// A slot that can only pick a zero-probability expert (slots 2..k of an infrequent token) is
// left empty. Auxiliary losses as in TopKRouter, the z-loss on the masked logits.
#pragma once

#include <vector>

#include "routing/global_stats.hpp"
#include "routing/strategy.hpp"

namespace moe {

template <class Real>
class MaskMoERouter : public Router<Real> {
 public:
  // Throws std::invalid_argument if setup.token_counts is null or does not have vocab_size
  // entries, or if the router keys are inconsistent (visible_experts, top_k, mask_by).
  MaskMoERouter(const Config& cfg, const RouterSetup& setup);

  std::string name() const override { return "maskmoe"; }
  int slots_per_token() const override { return k_; }
  int capacity(Index N) const override;
  void forward(const RouteContext& ctx, View1<const Real> logits, RoutingState<Real>& st,
               int N) override;
  void backward(const RouteContext& ctx, View1<const Real> logits, const RoutingState<Real>& st,
                View1<const Real> dgate, View1<Real> dlogits, int N) override;

  // Host copy of the masks: token -> its visible experts, ascending.
  const std::vector<std::vector<int>>& visible_sets() const { return visible_; }
  // True for the tokens that see one expert.
  bool is_infrequent(int token) const { return infrequent_.at(std::size_t(token)); }
  int num_infrequent() const { return num_infrequent_; }

 private:
  int E_, k_, V_, vocab_;
  double capacity_factor_, aux_weight_, z_weight_;
  bool normalize_;
  int num_infrequent_ = 0;
  std::vector<std::vector<int>> visible_;
  std::vector<bool> infrequent_;
  Buffer<unsigned char> mask_;  // [vocab, E] on the device: 1 = visible
  Buffer<Real> masked_;         // [N,E] masked logits of the last forward (kept for backward)
  Buffer<Real> dprobs_;         // scratch [N,E]
  GlobalRouterStats<Real> stats_{nullptr};  // losses over the global batch
};

}  // namespace moe
