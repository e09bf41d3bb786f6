// MaskMoE routing (Su et al. 2024, arXiv 2407.09816): every vocabulary token gets a fixed
// routing mask over the experts, drawn once before training from the training-split token
// counts. Infrequent tokens see 1 expert (so their few occurrences all train the same expert),
// the others see router.visible_experts experts (so frequent tokens keep routing diversity).
// Invisible experts get logit -inf; then ordinary top-k on the softmax of the masked logits.
// A slot that can only pick a zero-probability expert (slots 2..k of an infrequent token) is
// left empty. Everything else (gate normalisation, drop policy, losses) as in TopKRouter, the
// z-loss on the masked logits.
#pragma once

#include <vector>

#include "routing/topk_router.hpp"

namespace moe {

template <class Real>
class MaskMoERouter : public TopKRouter<Real> {
 public:
  // Throws std::invalid_argument if setup.token_counts is null or does not have vocab_size
  // entries, or if the router keys are inconsistent (visible_experts, top_k, mask_by).
  MaskMoERouter(const Config& cfg, const RouterSetup& setup);

  std::string name() const override { return "maskmoe"; }

  // Host copy of the masks: token -> its visible experts, ascending.
  const std::vector<std::vector<int>>& visible_sets() const { return visible_; }
  // True for the tokens that see one expert.
  bool is_infrequent(int token) const { return infrequent_.at(std::size_t(token)); }
  int num_infrequent() const { return num_infrequent_; }

 protected:
  // Invisible experts to -inf.
  View1<const Real> routing_logits(const RouteContext& ctx, View1<const Real> logits,
                                   int N) override;
  // Slots that could only pick a zero-probability expert become empty.
  void after_topk(RoutingState<Real>& st, int N) override;

 private:
  using TopKRouter<Real>::E_;
  using TopKRouter<Real>::k_;
  int V_, vocab_;
  int num_infrequent_ = 0;
  std::vector<std::vector<int>> visible_;
  std::vector<bool> infrequent_;
  Buffer<unsigned char> mask_;  // [vocab, E] on the device: 1 = visible
};

}  // namespace moe
