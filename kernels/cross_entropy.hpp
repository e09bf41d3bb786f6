// Softmax cross-entropy over a vocabulary of V classes, one row of logits per token:
//   lse[n] = log sum_v exp(logits[n,v]),  loss[n] = lse[n] - logits[n, targets[n]].
// The forward keeps lse so the backward can form the softmax without another reduction.
#pragma once

#include <cmath>

#include "common.hpp"

namespace moe {

namespace cross_entropy_detail {

// Each thread reduces a block of kBlock consecutive logits (their maximum, then the sum of their
// exponentials) before joining the team's reduction. On a CPU the block is wide and reduced as a
// pairwise tree in a fixed order: plain elementwise loops the compiler vectorizes, where one
// chain through the reducer per element would stay scalar (a float sum cannot be reordered) and
// keep the running value in memory. On a GPU a block is one element: consecutive threads then
// read consecutive logits, and the team reduction is already a tree.
#if defined(KOKKOS_ENABLE_CUDA) || defined(KOKKOS_ENABLE_HIP) || defined(KOKKOS_ENABLE_SYCL)
constexpr int kBlock = 1;
#else
constexpr int kBlock = 64;
#endif

// max of x[0..len), 1 <= len <= kBlock.
template <class Real>
KOKKOS_INLINE_FUNCTION Real block_max(const Real* x, int len) {
  if (len < kBlock) {
    Real m = x[0];
    for (int j = 1; j < len; ++j) m = x[j] > m ? x[j] : m;
    return m;
  }
  Real part[kBlock];
  for (int j = 0; j < kBlock; ++j) part[j] = x[j];
  for (int w = kBlock / 2; w > 0; w /= 2)
    for (int j = 0; j < w; ++j) part[j] = part[j + w] > part[j] ? part[j + w] : part[j];
  return part[0];
}

// sum of exp(x[j] - shift) over j in [0, len), 1 <= len <= kBlock.
template <class Real>
KOKKOS_INLINE_FUNCTION Real block_sum_exp(const Real* x, int len, Real shift) {
  if (len < kBlock) {
    Real s = 0;
    for (int j = 0; j < len; ++j) s += math::fast_exp(x[j] - shift);
    return s;
  }
  Real part[kBlock];
  for (int j = 0; j < kBlock; ++j) part[j] = math::fast_exp(x[j] - shift);
  for (int w = kBlock / 2; w > 0; w /= 2)
    for (int j = 0; j < w; ++j) part[j] += part[j + w];
  return part[0];
}

}  // namespace cross_entropy_detail

// logits [N,V], targets [N] -> lse, loss [N].
template <class Real>
void cross_entropy_forward(const ExecSpace& exec, View2<const Real> logits,
                           View1<const int> targets, View1<Real> lse, View1<Real> loss) {
  using Policy = Kokkos::TeamPolicy<ExecSpace>;
  constexpr int B = cross_entropy_detail::kBlock;
  const int N = int(logits.extent(0)), V = int(logits.extent(1));
  const int blocks = (V + B - 1) / B;
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
              const int len = V - b * B < B ? V - b * B : B;
              const Real block = cross_entropy_detail::block_max(row + b * B, len);
              m = block > m ? block : m;
            },
            Kokkos::Max<Real>(mx));
        Real s = 0;
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(team, blocks),
            [&](const int b, Real& acc) {
              const int len = V - b * B < B ? V - b * B : B;
              acc += cross_entropy_detail::block_sum_exp(row + b * B, len, mx);
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
