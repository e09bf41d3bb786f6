// The router strategy: how an MoE layer turns router logits into a routing decision.
// A decision has K slots per token: expert_of[n*K + j] (an expert, or -1 for an unused slot)
// and gate[n*K + j]. Top-k fills all k slots; other methods (expert choice, K = E) leave some
// empty, so the dispatch and combine kernels never assume every slot is used.
// The strategy object lives on the host (virtual calls happen here, never inside a kernel);
// everything it computes stays in device Views.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common.hpp"
#include "config/config.hpp"
#include "parallel/comm.hpp"
#include "routing/router_jitter.hpp"

namespace moe {

// Auxiliary losses of one layer for one batch: raw values (unweighted) for the metrics, and the
// weighted sum that joins the training loss.
struct AuxLosses {
  double balance = 0;  // Switch balance loss E * sum_e f_e P_e
  double z = 0;        // router z-loss mean(logsumexp^2)
  double cluster = 0;  // MoEC cluster loss (router.type = moec)
  double weighted = 0;
};

// Device state one forward leaves for the backward.
template <class Real>
struct RoutingState {
  Buffer<Real> probs;     // [N,E] router softmax (what gates and losses are taken from)
  Buffer<int> expert_of;  // [N*K]
  Buffer<Real> gate;      // [N*K]
  Buffer<int> topk_idx;   // [N*K] scratch for top-k style routers
  Buffer<int> counts;     // [E] assignments per expert in this decision (before any capacity cut)
  AuxLosses losses;
};

// What a router may look at besides the logits.
struct RouteContext {
  View1<const int> tokens;  // [N] token ids (hash and maskmoe routing use them)
  std::int64_t step = 0;    // training step (dropout schedules)
  bool training = true;
};

template <class Real>
class Router {
 public:
  virtual ~Router() = default;
  virtual std::string name() const = 0;
  // False for routers without parameters (hash routing): the layer then skips the logits.
  virtual bool uses_logits() const { return true; }
  // K, the slots per token of a decision.
  virtual int slots_per_token() const = 0;
  // Per-expert capacity the dispatch applies for N tokens (0 = no limit).
  virtual int capacity(Index N) const = 0;
  // Priority for dropping copies from an overfull expert (higher = kept first); an empty view
  // drops by position (the later copies in token order).
  virtual View1<const Real> drop_priority(const RoutingState<Real>&) const {
    return View1<const Real>();
  }
  // True when a capacity cut by position ranks copies slot-major (every token's slot 0 before
  // any slot 1, as GShard), false for token order (a token's slots together).
  virtual bool capacity_slot_major() const { return false; }
  // Expert MLPs a token passes through on average (k for top-k), for FLOP accounting.
  virtual double active_experts_per_token() const { return slots_per_token(); }
  // Fills st.probs, st.expert_of, st.gate, st.counts and st.losses from logits [N,E].
  virtual void forward(const RouteContext& ctx, View1<const Real> logits, RoutingState<Real>& st,
                       int N) = 0;
  // dlogits += d(loss)/d(logits) given d(loss)/d(gate), aux-loss gradients included; or, where
  // backward_writes_dlogits(), dlogits = (every entry written, the caller skips the zero-fill).
  virtual bool backward_writes_dlogits() const { return false; }
  virtual void backward(const RouteContext& ctx, View1<const Real> logits,
                        const RoutingState<Real>& st, View1<const Real> dgate, View1<Real> dlogits,
                        int N) = 0;

  // The scores every router with uses_logits() routes on: logits [N,E] = input x [N,C] times
  // the router weights w [C,E], where a training forward jitters x when set_jitter() asked for
  // it. score_backward: dx += and dw += for the last score().
  void score(const RouteContext& ctx, View1<const Real> x, View1<const Real> w, View1<Real> logits,
             int N, int C);
  void score_backward(View1<const Real> dlogits, View1<const Real> x, View1<const Real> w,
                      View1<Real> dx, View1<Real> dw, int N, int C);
  // Switch jitter of the router input (router.jitter_noise; make_router sets it): eps = 0 is off.
  void set_jitter(double eps, std::uint64_t seed, int layer);

 private:
  RouterJitter<Real> jitter_;
  Buffer<Real> dinput_;  // gradient of the jittered input (scratch)
};

// What a router may know about the training data before training starts.
struct RouterSetup {
  int layer = 0;  // block index of the MoE layer (seeds per-layer tables and masks)
  // Training-split count of every vocabulary token (hash and maskmoe build tables from it);
  // null when unknown, e.g. in kernel-level tests of routers that do not need it.
  const std::vector<std::int64_t>* token_counts = nullptr;
  // The run's ranks (data and expert parallelism); null for a one-rank run.
  const Comm* comm = nullptr;
};

// The router named by cfg.router.type for one MoE layer.
template <class Real>
std::unique_ptr<Router<Real>> make_router(const Config& cfg, const RouterSetup& setup);

}  // namespace moe
