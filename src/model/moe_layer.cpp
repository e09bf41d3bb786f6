#include "model/moe_layer.hpp"

#include "model/scratch.hpp"

namespace moe {

template <class Real>
MoeLayer<Real>::MoeLayer(const Config& cfg, const RouterSetup& setup)
    : E_(cfg.model.num_experts),
      C_(cfg.model.d_model),
      router_(make_router<Real>(cfg, setup)),
      dispatcher_(make_dispatcher<Real>(E_, C_, setup.comm)),
      experts_(cfg.model.d_model, cfg.model.d_ff) {}

template <class Real>
MoeLayer<Real>::MoeLayer(const Config& cfg, std::unique_ptr<Router<Real>> router)
    : E_(cfg.model.num_experts),
      C_(cfg.model.d_model),
      router_(std::move(router)),
      dispatcher_(make_dispatcher<Real>(E_, C_, nullptr)),
      experts_(cfg.model.d_model, cfg.model.d_ff) {}

template <class Real>
void MoeLayer<Real>::set_timer(PhaseTimer* t) {
  timer_ = t;
  dispatcher_->set_timer(t);
}

template <class Real>
void MoeLayer<Real>::forward(const RouteContext& ctx, View1<const Real> x,
                             const FfnTensors<Real>& p, View1<Real> out, int N) {
  const Index NE = Index(N) * E_, NK = Index(N) * router_->slots_per_token();
  auto logits = ensure(logits_, NE, "moe::moe.logits");
  ensure(state_.probs, NE, "moe::moe.probs");
  ensure(state_.expert_of, NK, "moe::moe.expert_of");
  ensure(state_.gate, NK, "moe::moe.gate");
  ensure(state_.counts, E_, "moe::moe.counts");
  if (router_->uses_logits()) router_->score(ctx, x, p.router_w, logits, N, C_);
  router_->forward(ctx, logits, state_, N);
  lap(timer_, Phase::Router);

  View1<const Real> rows = dispatcher_->dispatch(*router_, state_, x, N);
  experts_.forward(p, dispatcher_->expert_rows(), rows, dispatcher_->expert_output());
  lap(timer_, Phase::ExpertsFwd);
  dispatcher_->combine(state_, out, N);
}

template <class Real>
void MoeLayer<Real>::backward(const RouteContext& ctx, View1<const Real> dout, View1<const Real> x,
                              const FfnTensors<Real>& p, const FfnTensors<Real>& g, View1<Real> dx,
                              int N) {
  const Index NE = Index(N) * E_, NK = Index(N) * router_->slots_per_token();
  auto dgate = ensure(dgate_, NK, "moe::moe.dgate");  // combine_backward writes every entry
  lap(timer_, Phase::Rest);
  View1<const Real> dy = dispatcher_->combine_backward(state_, dout, dgate, N);
  experts_.backward(p, g, dispatcher_->expert_rows(), dy, dispatcher_->expert_input_grad());
  lap(timer_, Phase::ExpertsBwd);
  dispatcher_->dispatch_backward(dx, N);

  // The router learns only through the gates (and its auxiliary losses).
  auto dlogits = ensure(dlogits_, NE, "moe::moe.dlogits");
  if (!router_->backward_writes_dlogits()) fill_zero<Real>(dlogits, NE);
  router_->backward(ctx, slice(logits_, 0, NE), state_, dgate, dlogits, N);
  if (router_->uses_logits())
    router_->score_backward(dlogits, x, p.router_w, dx, g.router_w, N, C_);
  lap(timer_, Phase::Router);
}

template <class Real>
double MoeLayer<Real>::router_entropy(int N) const {
  View1<const Real> probs = slice(state_.probs, 0, Index(N) * E_);
  const int E = E_;
  double total = 0;
  Kokkos::parallel_reduce(
      "moe::router_entropy", range(N),
      KOKKOS_LAMBDA(const Index n, double& acc) {
        for (int e = 0; e < E; ++e) {
          const double p = double(probs(n * E + e));
          if (p > 0) acc -= p * math::log(p);
        }
      },
      total);
  return total / double(N);
}

template class MoeLayer<float>;
template class MoeLayer<double>;

}  // namespace moe
