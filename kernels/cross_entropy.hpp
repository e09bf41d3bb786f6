// Softmax cross-entropy over a vocabulary of V classes, one row of logits per token:
//   lse[n] = log sum_v exp(logits[n,v]),  loss[n] = lse[n] - logits[n, targets[n]].
// The forward keeps lse so the backward can form the softmax without another reduction.
#pragma once

#include <cmath>

#include "common.hpp"

namespace moe {

// logits [N,V], targets [N] -> lse, loss [N].
template <class Real>
void cross_entropy_forward(const ExecSpace& exec, View2<const Real> logits,
                           View1<const int> targets, View1<Real> lse, View1<Real> loss) {
  using Policy = Kokkos::TeamPolicy<ExecSpace>;
  const int N = int(logits.extent(0)), V = int(logits.extent(1));
  // One team per row: V is large (tens of thousands), so the row is split over the team.
  Kokkos::parallel_for(
      "moe::cross_entropy_forward", Policy(exec, N, Kokkos::AUTO),
      KOKKOS_LAMBDA(const Policy::member_type& team) {
        const int n = team.league_rank();
        // Subtract the row maximum before exponentiating so exp never overflows.
        Real mx = 0;
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(team, V),
            [&](const int v, Real& m) {
              const Real l = logits(n, v);
              if (l > m) m = l;
            },
            Kokkos::Max<Real>(mx));
        Real s = 0;
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(team, V),
            [&](const int v, Real& acc) { acc += math::exp(logits(n, v) - mx); }, s);
        Kokkos::single(Kokkos::PerTeam(team), [&]() {
          const Real l = mx + math::log(s);
          lse(n) = l;
          loss(n) = l - logits(n, targets(n));
        });
      });
}

// dlogits[n,v] += scale * (softmax(logits[n,:])[v] - [v == targets[n]]). scale is the weight
// of each row's loss in the total (1/N for a mean over tokens).
// dlogits [N,V] += scale * d(loss)/d(logits).
template <class Real>
void cross_entropy_backward(const ExecSpace& exec, View2<const Real> logits,
                            View1<const int> targets, View1<const Real> lse, Real scale,
                            View2<Real> dlogits) {
  const Index V = Index(logits.extent(1));
  Kokkos::parallel_for(
      "moe::cross_entropy_backward", range(exec, Index(logits.extent(0)) * V),
      KOKKOS_LAMBDA(const Index i) {
        const Index n = i / V;
        const int v = int(i % V);
        const Real p = math::exp(logits(n, v) - lse(n));
        dlogits(n, v) += scale * (p - (v == targets(n) ? Real(1) : Real(0)));
      });
}

}  // namespace moe
