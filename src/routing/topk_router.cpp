#include "routing/topk_router.hpp"

#include "dispatch.hpp"
#include "gate_normalize.hpp"
#include "router.hpp"

namespace moe {

template <class Real>
TopKRouter<Real>::TopKRouter(const Config& cfg, const RouterSetup& setup)
    : E_(cfg.model.num_experts),
      k_(cfg.model.top_k),
      capacity_factor_(cfg.router.capacity_factor),
      aux_weight_(cfg.router.aux_loss_weight),
      z_weight_(cfg.router.z_loss_weight),
      normalize_gates_(cfg.router.normalize_gates),
      drop_by_probability_(cfg.router.drop_policy == "probability"),
      first_choice_balance_(cfg.router.balance_count == "first"),
      slot_major_drops_(cfg.router.drop_order == "slot"),
      stats_(setup.comm) {
  MOE_CHECK(cfg.router.drop_policy == "position" || cfg.router.drop_policy == "probability",
            "router.drop_policy passed validation but is unknown to TopKRouter");
}

template <class Real>
int TopKRouter<Real>::capacity(Index N) const {
  return expert_capacity(N, k_, E_, capacity_factor_);
}

template <class Real>
View1<const Real> TopKRouter<Real>::drop_priority(const RoutingState<Real>& st) const {
  if (!drop_by_probability_) return View1<const Real>();
  return View1<const Real>(st.gate.data(), st.gate.extent(0));
}

template <class Real>
void TopKRouter<Real>::forward(const RouteContext& ctx, View1<const Real> logits,
                               RoutingState<Real>& st, int N) {
  routed_ = routing_logits(ctx, logits, N);
  routed_masked_ = routed_.data() != logits.data();
  // Softmax, the top-k picks (values = gates, indices = experts) and each token's lse^2 in one
  // launch; the balance statistics and the z-loss's sum in a second, with one host read.
  View1<Real> lse2 = scratch(lse2_, N, "moe::topk.lse2");
  topk_route_forward<Real>(routed_, st.probs, st.expert_of, st.gate, lse2, N, E_, k_);
  after_topk(st, N);
  if (normalize_gates_) gate_normalize_forward<Real>(st.probs, st.expert_of, st.gate, N, E_, k_);
  st.losses = AuxLosses{};
  const Index A = Index(N) * k_;
  double z_local = 0;
  if (first_choice_balance_ && k_ > 1) {
    // f counts first choices (GShard/Switch); st.counts still gets every assignment (the
    // dispatch and the routing metrics read it).
    View1<int> first = scratch(first_counts_, E_, "moe::topk.first_counts");
    st.losses.balance =
        stats_.balance_loss(st.probs, st.expert_of, first, N, E_, A, k_, st.counts, lse2, &z_local);
  } else {
    st.losses.balance =
        stats_.balance_loss(st.probs, st.expert_of, st.counts, N, E_, A, 1, {}, lse2, &z_local);
  }
  st.losses.z = z_weight_ > 0 ? stats_.zloss_from_local(z_local, N) : 0.0;
  const double extra = extra_losses_forward(ctx, logits, st, N);
  st.losses.weighted = aux_weight_ * st.losses.balance + z_weight_ * st.losses.z + extra;
}

template <class Real>
void TopKRouter<Real>::backward(const RouteContext& ctx, View1<const Real> logits,
                                const RoutingState<Real>& st, View1<const Real> dgate,
                                View1<Real> dlogits, int N) {
  const Index NE = Index(N) * E_;
  MOE_CHECK(!routed_masked_ || Index(routed_.extent(0)) >= NE,
            "router backward without a matching forward");
  const View1<const Real> routed = routed_masked_ ? routed_ : logits;
  const Real share = stats_.local_share();
  const Real balance_scale = aux_weight_ > 0 ? Real(aux_weight_) * share * Real(E_) / Real(N) : 0;
  const Real z_scale = z_weight_ > 0 ? Real(z_weight_) * share * Real(2) / Real(N) : 0;
  View1<const Real> dprobs_in;  // empty: the kernel takes the gate gradients itself
  if (normalize_gates_ || has_extra_losses()) {
    View1<Real> dprobs = scratch(dprobs_, NE, "moe::topk.dprobs");
    fill_zero<Real>(dprobs, NE);
    // Empty slots (expert -1) are skipped by both.
    if (normalize_gates_)
      gate_normalize_backward<Real>(st.probs, st.expert_of, dgate, dprobs, N, E_, k_);
    else
      topk_backward<Real>(st.expert_of, dgate, dprobs, N, E_, k_);
    extra_losses_backward(ctx, logits, st, dprobs, dlogits, N);
    dprobs_in = dprobs;
  }
  // Balance, softmax and z-loss backward in one launch. Masked experts have probability exactly
  // 0, so the softmax backward gives them exactly 0; the z-loss on the masked logits gives them
  // exp(-inf) = 0. Extra losses may have added to dlogits already: then it accumulates.
  topk_route_backward<Real>(st.probs, st.expert_of, dgate, dprobs_in, stats_.backward_counts(),
                            balance_scale, routed, z_scale, dlogits, N, E_, k_,
                            /*accumulate=*/has_extra_losses());
}

template class TopKRouter<float>;
template class TopKRouter<double>;

}  // namespace moe
