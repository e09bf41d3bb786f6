// The MoE feed-forward layer = router -> token dispatcher -> experts -> (dispatcher) combine.
// The router scores and routes the tokens (routing/strategy.hpp), the dispatcher moves each
// kept token copy to its expert and back (model/token_dispatcher.hpp: local, or expert parallel
// as chosen when the layer is built), the experts are grouped GELU MLPs (model/experts.hpp).
// Copies an expert cannot take (capacity) contribute nothing here; the block's residual
// connection carries those tokens through. Forward saves what backward needs; buffers grow to
// the largest batch seen and are reused.
#pragma once

#include <memory>

#include "common.hpp"
#include "config/config.hpp"
#include "model/experts.hpp"
#include "model/phase_timer.hpp"
#include "model/token_dispatcher.hpp"
#include "routing/strategy.hpp"

namespace moe {

template <class Real>
class MoeLayer {
 public:
  // The router cfg.router.type asks for, and the dispatcher setup.comm's ranks need.
  MoeLayer(const Config& cfg, const RouterSetup& setup);
  // With a given router strategy, on one rank (tests of one router through the whole layer).
  MoeLayer(const Config& cfg, std::unique_ptr<Router<Real>> router);

  // x [N,C] (the normalised block input) -> out [N,C].
  void forward(const RouteContext& ctx, View1<const Real> x, const FfnTensors<Real>& p,
               View1<Real> out, int N);
  // dx = d(loss)/dx (written, not accumulated) and parameter gradients += into g, for the last
  // forward.
  void backward(const RouteContext& ctx, View1<const Real> dout, View1<const Real> x,
                const FfnTensors<Real>& p, const FfnTensors<Real>& g, View1<Real> dx, int N);

  const AuxLosses& losses() const { return state_.losses; }
  const RoutingState<Real>& routing() const { return state_; }
  const DispatchPlan& plan() const { return dispatcher_->plan(); }
  const Router<Real>& router() const { return *router_; }
  int num_experts() const { return E_; }
  // Mean over the last forward's tokens of the router distribution's entropy (nats).
  double router_entropy(int N) const;
  void set_timer(PhaseTimer* t);

 private:
  int E_, C_;
  PhaseTimer* timer_ = nullptr;
  std::unique_ptr<Router<Real>> router_;
  std::unique_ptr<TokenDispatcher<Real>> dispatcher_;
  GroupedExperts<Real> experts_;
  RoutingState<Real> state_;
  Buffer<Real> logits_;           // saved by forward
  Buffer<Real> dlogits_, dgate_;  // backward scratch
};

}  // namespace moe
