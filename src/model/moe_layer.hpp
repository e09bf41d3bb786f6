// The MoE feed-forward layer: router -> dispatch (group token copies by expert) -> per-expert
// GELU MLP -> combine (gate-weighted scatter back). Copies an expert cannot take (capacity)
// contribute nothing here; the block's residual connection carries those tokens through.
// Forward saves what backward needs; buffers grow to the largest batch seen and are reused.
#pragma once

#include <memory>
#include <vector>

#include "common.hpp"
#include "config/config.hpp"
#include "dispatch.hpp"
#include "model/phase_timer.hpp"
#include "parallel/expert_exchange.hpp"
#include "routing/strategy.hpp"

namespace moe {

// Views of one FFN's tensors (parameters, or their gradients) in the flat buffers.
template <class Real>
struct FfnTensors {
  View1<Real> router_w;  // [C,E], empty for a dense FFN or a router without weights
  View1<Real> w1, b1, w2, b2;
};

template <class Real>
class MoeLayer {
 public:
  MoeLayer(const Config& cfg, const RouterSetup& setup);
  // With a given router strategy (tests of one router through the whole layer).
  MoeLayer(const Config& cfg, std::unique_ptr<Router<Real>> router);

  // x [N,C] (the normalised block input) -> out [N,C].
  void forward(const RouteContext& ctx, View1<const Real> x, const FfnTensors<Real>& p,
               View1<Real> out, int N);
  // dx += d(loss)/dx and parameter gradients += into g, for the last forward.
  void backward(const RouteContext& ctx, View1<const Real> dout, View1<const Real> x,
                const FfnTensors<Real>& p, const FfnTensors<Real>& g, View1<Real> dx, int N);

  const AuxLosses& losses() const { return state_.losses; }
  const RoutingState<Real>& routing() const { return state_; }
  const DispatchPlan& plan() const { return plan_; }
  const Router<Real>& router() const { return *router_; }
  int num_experts() const { return E_; }
  // Mean over the last forward's tokens of the router distribution's entropy (nats).
  double router_entropy(int N) const;
  void set_timer(PhaseTimer* t) { timer_ = t; }

  // Switch-style jitter: in training the router sees x * U(1 - eps, 1 + eps), drawn per element
  // from (seed, layer, step); the experts still see x. (Public only because CUDA forbids device
  // lambdas in private member functions.)
  View1<const Real> router_input(const RouteContext& ctx, View1<const Real> x, int N);

 private:

  PhaseTimer* timer_ = nullptr;
  bool expert_parallel() const;
  // This rank's experts' tensors (expert parallelism) within the full per-layer tensors.
  FfnTensors<Real> local_experts(const FfnTensors<Real>& t) const;
  // The dispatch plan, with the capacity cut by position in the global batch.
  void make_plan(int N, Index NK);

  int E_, C_, F_;
  int layer_ = 0;
  const Comm* comm_ = nullptr;
  ExpertExchange<Real> exchange_;
  Buffer<Real> xe_, ye_, dye_, dxe_;  // expert-side rows (expert parallelism)
  Buffer<int> rank_offset_;
  double jitter_ = 0;
  std::uint64_t seed_ = 0;
  bool jittered_ = false;  // last forward used xr_/noise_
  std::unique_ptr<Router<Real>> router_;
  RoutingState<Real> state_;
  DispatchPlan plan_;
  Buffer<Real> logits_, xg_, pre_, act_, yg_;        // saved by forward
  Buffer<Real> dlogits_, dgate_, dxg_, dyg_, dpre_;  // backward scratch
  Buffer<Real> xr_, noise_, dxr_;                    // jittered router input
};

}  // namespace moe
