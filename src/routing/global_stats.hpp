// Router losses over the global batch. With data parallelism each rank routes its own tokens,
// but the Switch balance loss and the z-loss are defined over the whole batch (as on one rank):
// their sums are reduced over the ranks, and their gradients, which each rank applies to its
// own tokens, are scaled by the global token count. With one rank every call is the plain
// kernel.
#pragma once

#include "common.hpp"
#include "parallel/comm.hpp"

namespace moe {

template <class Real>
class GlobalRouterStats {
 public:
  explicit GlobalRouterStats(const Comm* comm) : comm_(comm) {}

  // Switch balance loss E * sum_e f_e P_e of the global batch, f counting the entries a of
  // expert_of with a % stride == 0 (stride = k: first choices only). `local_counts` receives
  // this rank's counted assignments per expert; the global counts are kept for the backward
  // (backward_counts()).
  // all_counts (optional) receives every assignment per expert (with stride = k, the counts the
  // dispatch reads); with lse2 [N] (each token's logsumexp squared) given, *z_local receives
  // this rank's mean of it (for zloss_from_local). One launch computes everything
  // (balance_stats_forward), read by the host once.
  double balance_loss(View1<const Real> probs, View1<const int> expert_of, View1<int> local_counts,
                      int N, int E, Index A, int stride = 1, View1<int> all_counts = {},
                      View1<const Real> lse2 = {}, double* z_local = nullptr);
  // z-loss mean over the global batch of logsumexp^2, and its gradient for this rank's tokens.
  double zloss(View1<const Real> logits, int N, int E);
  // The same from this rank's mean lse^2, computed elsewhere (balance_loss with lse2).
  double zloss_from_local(double local_mean, int N);
  void zloss_backward(View1<const Real> logits, Real weight, View1<Real> dlogits, int N,
                      int E) const;
  // N_local / N_global of the last forward: the factor that turns a per-rank mean into the
  // rank's share of the global mean.
  Real local_share() const { return share_; }
  // The counts the balance gradient uses, weight * E * f_e / N_global for this rank's tokens
  // (topk_route_backward): this rank's, or the global ones across ranks.
  View1<const int> backward_counts() const { return backward_counts_; }
  const Comm* comm() const { return comm_; }

 private:
  void set_tokens(int N);
  const Comm* comm_;
  Real share_ = 1;
  Buffer<int> global_counts_;
  Buffer<double> col_sums_;  // [E] this rank's probability column sums (data parallel only)
  // What backward_counts() returns: local_counts itself on one rank (no copy: a deep_copy fences),
  // global_counts_ across ranks.
  View1<const int> backward_counts_;
};

}  // namespace moe
