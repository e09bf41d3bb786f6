#include "routing/expert_choice_router.hpp"

#include <algorithm>
#include <stdexcept>

#include "dispatch.hpp"
#include "expert_choice.hpp"
#include "router.hpp"

namespace moe {

template <class Real>
ExpertChoiceRouter<Real>::ExpertChoiceRouter(const Config& cfg, const RouterSetup& setup)
    : E_(cfg.model.num_experts),
      capacity_factor_(cfg.router.capacity_factor),
      z_weight_(cfg.router.z_loss_weight) {
  stats_ = GlobalRouterStats<Real>(setup.comm);
  if (!(capacity_factor_ > 0))
    throw std::invalid_argument(
        "router.type = expert_choice needs router.capacity_factor > 0 (tokens per expert)");
}

template <class Real>
double ExpertChoiceRouter<Real>::active_experts_per_token() const {
  return std::min(capacity_factor_, double(E_));
}

template <class Real>
int ExpertChoiceRouter<Real>::tokens_per_expert(Index N) const {
  return int(std::min<Index>(expert_capacity(N, 1, E_, capacity_factor_), N));
}

template <class Real>
void ExpertChoiceRouter<Real>::forward(const RouteContext&, View1<const Real> logits,
                                       RoutingState<Real>& st, int N) {
  softmax_rows_forward<Real>(logits, st.probs, N, E_);
  const Comm* comm = stats_.comm();
  if (!comm || !comm->distributed()) {
    expert_choice_forward<Real>(st.probs, st.expert_of, st.gate, st.counts, N, E_,
                                tokens_per_expert(N));
  } else {
    const Index NE = Index(N) * E_, P = comm->size(), all = NE * P;
    auto grow = [](auto& b, Index n, const char* label) {
      if (Index(b.extent(0)) < n) b = std::decay_t<decltype(b)>(std::string(label), std::size_t(n));
    };
    grow(all_probs_, all, "moe::ec.all_probs");
    grow(all_gate_, all, "moe::ec.all_gate");
    grow(all_expert_, all, "moe::ec.all_expert");
    grow(all_counts_, E_, "moe::ec.all_counts");
    comm->allgather<Real>(slice(st.probs, 0, NE), NE, all_probs_);
    expert_choice_forward<Real>(all_probs_, all_expert_, all_gate_, all_counts_, int(N * P), E_,
                                tokens_per_expert(N * P));
    const Index first = NE * comm->rank();
    Kokkos::deep_copy(Kokkos::subview(st.expert_of, std::make_pair(Index(0), NE)),
                      Kokkos::subview(all_expert_, std::make_pair(first, first + NE)));
    Kokkos::deep_copy(Kokkos::subview(st.gate, std::make_pair(Index(0), NE)),
                      Kokkos::subview(all_gate_, std::make_pair(first, first + NE)));
    // This rank's share of each expert's tokens (slot e of a token holds e when chosen).
    const int E = E_;
    View1<const int> expert_of = st.expert_of;
    View1<int> counts = st.counts;
    Kokkos::parallel_for(
        "moe::ec_local_counts", range(E), KOKKOS_LAMBDA(const Index e) {
          int c = 0;
          for (Index n = 0; n < N; ++n) c += expert_of(n * E + e) >= 0 ? 1 : 0;
          counts(e) = c;
        });
  }
  st.losses = AuxLosses{};
  st.losses.z = z_weight_ > 0 ? stats_.zloss(logits, N, E_) : 0.0;
  st.losses.weighted = z_weight_ * st.losses.z;
}

template <class Real>
void ExpertChoiceRouter<Real>::backward(const RouteContext&, View1<const Real> logits,
                                        const RoutingState<Real>& st, View1<const Real> dgate,
                                        View1<Real> dlogits, int N) {
  const Index NE = Index(N) * E_;
  if (Index(dprobs_.extent(0)) < NE)
    dprobs_ = Buffer<Real>(std::string("moe::expert_choice.dprobs"), std::size_t(NE));
  View1<Real> dprobs = slice(dprobs_, 0, NE);
  fill_zero<Real>(dprobs, NE);
  expert_choice_backward<Real>(st.expert_of, dgate, dprobs, N, E_);
  softmax_rows_backward<Real>(st.probs, dprobs, dlogits, N, E_);
  if (z_weight_ > 0) stats_.zloss_backward(logits, Real(z_weight_), dlogits, N, E_);
}

template class ExpertChoiceRouter<float>;
template class ExpertChoiceRouter<double>;

}  // namespace moe
