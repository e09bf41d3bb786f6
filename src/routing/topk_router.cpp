#include "routing/topk_router.hpp"

#include "dispatch.hpp"
#include "gate_normalize.hpp"
#include "router.hpp"

namespace moe {

template <class Real>
TopKRouter<Real>::TopKRouter(const Config& cfg)
    : E_(cfg.model.num_experts),
      k_(cfg.model.top_k),
      capacity_factor_(cfg.router.capacity_factor),
      aux_weight_(cfg.router.aux_loss_weight),
      z_weight_(cfg.router.z_loss_weight),
      normalize_gates_(cfg.router.normalize_gates),
      drop_by_probability_(cfg.router.drop_policy == "probability") {
  MOE_CHECK(cfg.router.drop_policy == "position" || cfg.router.drop_policy == "probability",
            "router.drop_policy passed validation but is unknown to TopKRouter");
}

template <class Real>
TopKRouter<Real>::TopKRouter(const Config& cfg, const RouterSetup& setup) : TopKRouter(cfg) {
  stats_ = GlobalRouterStats<Real>(setup.comm);
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
void TopKRouter<Real>::forward(const RouteContext&, View1<const Real> logits,
                               RoutingState<Real>& st, int N) {
  softmax_rows_forward<Real>(logits, st.probs, N, E_);
  // The top-k values are the gates; their indices the experts.
  topk_rows<Real>(st.probs, st.expert_of, st.gate, N, E_, k_);
  if (normalize_gates_) gate_normalize_forward<Real>(st.probs, st.expert_of, st.gate, N, E_, k_);
  st.losses = AuxLosses{};
  st.losses.balance =
      stats_.balance_loss(st.probs, st.expert_of, st.counts, N, E_, Index(N) * k_);
  st.losses.z = z_weight_ > 0 ? stats_.zloss(logits, N, E_) : 0.0;
  st.losses.weighted = aux_weight_ * st.losses.balance + z_weight_ * st.losses.z;
}

template <class Real>
void TopKRouter<Real>::backward(const RouteContext&, View1<const Real> logits,
                                const RoutingState<Real>& st, View1<const Real> dgate,
                                View1<Real> dlogits, int N) {
  const Index NE = Index(N) * E_;
  if (Index(dprobs_.extent(0)) < NE) dprobs_ = Buffer<Real>("moe::topk.dprobs", std::size_t(NE));
  View1<Real> dprobs = slice(dprobs_, 0, NE);
  fill_zero<Real>(dprobs, NE);
  if (normalize_gates_)
    gate_normalize_backward<Real>(st.probs, st.expert_of, dgate, dprobs, N, E_, k_);
  else
    topk_backward<Real>(st.expert_of, dgate, dprobs, N, E_, k_);
  if (aux_weight_ > 0) stats_.balance_backward(Real(aux_weight_), dprobs, N, E_);
  softmax_rows_backward<Real>(st.probs, dprobs, dlogits, N, E_);
  if (z_weight_ > 0) stats_.zloss_backward(logits, Real(z_weight_), dlogits, N, E_);
}

template class TopKRouter<float>;
template class TopKRouter<double>;

}  // namespace moe
