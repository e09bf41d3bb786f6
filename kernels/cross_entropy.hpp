// Softmax cross-entropy over a vocabulary of V classes, one row of logits per token:
//   lse[n] = log sum_v exp(logits[n,v]),  loss[n] = lse[n] - logits[n, targets[n]].
// The forward keeps lse so the backward can form the softmax without another reduction.
#pragma once

#include <cmath>

#include "common.hpp"

namespace moe {

namespace cross_entropy_detail {
// Each thread reduces kLanes consecutive logits (their maximum, then their exponentials' sum)
// before folding them into its running value: one chain through the reducer per element cannot
// be vectorized (a float sum without reordering it) and on a CPU it keeps the running value in
// memory; the kLanes-wide block vectorizes.
constexpr int kLanes = 8;
}  // namespace cross_entropy_detail

// logits [N,V], targets [N] -> lse, loss [N].
template <class Real>
void cross_entropy_forward(const ExecSpace& exec, View2<const Real> logits,
                           View1<const int> targets, View1<Real> lse, View1<Real> loss) {
  using Policy = Kokkos::TeamPolicy<ExecSpace>;
  constexpr int L = cross_entropy_detail::kLanes;
  const int N = int(logits.extent(0)), V = int(logits.extent(1));
  const int blocks = (V + L - 1) / L;
  // One team per row: V is large (tens of thousands), so the row is split over the team.
  Kokkos::parallel_for(
      "moe::cross_entropy_forward", Policy(exec, N, Kokkos::AUTO),
      KOKKOS_LAMBDA(const Policy::member_type& team) {
        const int n = team.league_rank();
        const Real* row = &logits(n, 0);
        // Subtract the row maximum before exponentiating so exp never overflows.
        Real mx = 0;
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(team, blocks),
            [&](const int b, Real& m) {
              const Real* x = row + b * L;
              const int len = V - b * L < L ? V - b * L : L;
              Real block = x[0];
              if (len == L) {  // the full blocks: a fixed-length loop, vectorized
                for (int j = 1; j < L; ++j) block = x[j] > block ? x[j] : block;
              } else {
                for (int j = 1; j < len; ++j) block = x[j] > block ? x[j] : block;
              }
              m = block > m ? block : m;
            },
            Kokkos::Max<Real>(mx));
        Real s = 0;
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(team, blocks),
            [&](const int b, Real& acc) {
              const Real* x = row + b * L;
              const int len = V - b * L < L ? V - b * L : L;
              Real block = 0;
              if (len == L) {
                Real part[L];
                for (int j = 0; j < L; ++j) part[j] = math::fast_exp(x[j] - mx);
                for (int j = 0; j < L; ++j) block += part[j];
              } else {
                for (int j = 0; j < len; ++j) block += math::fast_exp(x[j] - mx);
              }
              acc += block;
            },
            s);
        Kokkos::single(Kokkos::PerTeam(team), [&]() {
          const Real l = mx + math::log(s);
          lse(n) = l;
          loss(n) = l - row[targets(n)];
        });
      });
}

// dlogits[n,v] = scale * (softmax(logits[n,:])[v] - [v == targets[n]]). scale is the weight
// of each row's loss in the total (1/N for a mean over tokens). Written, not accumulated: the
// logits feed nothing else, and a separate zero-fill of the [N,V] buffer (the largest
// activation of a small model) would cost as much as this pass.
// dlogits [N,V] = scale * d(loss)/d(logits).
template <class Real>
void cross_entropy_backward(const ExecSpace& exec, View2<const Real> logits,
                            View1<const int> targets, View1<const Real> lse, Real scale,
                            View2<Real> dlogits) {
  using Policy = Kokkos::TeamPolicy<ExecSpace>;
  const int N = int(logits.extent(0)), V = int(logits.extent(1));
  // One team per row: a plain (vectorizable) loop over the row's softmax, then the target's -1
  // once the whole row is written.
  Kokkos::parallel_for(
      "moe::cross_entropy_backward", Policy(exec, N, Kokkos::AUTO),
      KOKKOS_LAMBDA(const Policy::member_type& team) {
        const int n = team.league_rank();
        const Real* row = &logits(n, 0);
        Real* drow = &dlogits(n, 0);
        const Real l = lse(n);
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, V),
                             [&](const int v) { drow[v] = scale * math::fast_exp(row[v] - l); });
        team.team_barrier();
        Kokkos::single(Kokkos::PerTeam(team), [&]() { drow[targets(n)] -= scale; });
      });
}

}  // namespace moe
