// Combine: the inverse of dispatch. Each token's output is the gate-weighted sum of its experts'
// rows in the grouped buffer. Copies with no row (no expert in the slot, or dropped by the
// capacity) contribute nothing: the caller's residual connection carries those tokens.
#pragma once

#include "common.hpp"

namespace moe {

// out[n,:] = sum over j = 0..K-1 with slot_of[n*K+j] >= 0 of gate[n*K+j] * yg[slot,:].
// One team per token row, slots summed in order j: deterministic.
// yg [M,C] (grouped rows), slot_of and gate [N,K] -> out [N,C].
template <class Real>
void combine_forward(const ExecSpace& exec, View2<const Real> yg, View2<const int> slot_of,
                     View2<const Real> gate, View2<Real> out) {
  using Policy = Kokkos::TeamPolicy<ExecSpace>;
  const int C = int(out.extent(1)), K = int(slot_of.extent(1)), N = int(out.extent(0));
  if (N == 0) return;
  Kokkos::parallel_for(
      "moe::combine_forward", Policy(exec, N, Kokkos::AUTO),
      KOKKOS_LAMBDA(const Policy::member_type& team) {
        const int n = team.league_rank();
        Real* o = &out(n, 0);
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, C), [&](const int c) { o[c] = 0; });
        for (int j = 0; j < K; ++j) {
          const int s = slot_of(n, j);
          if (s < 0) continue;
          const Real g = gate(n, j);
          const Real* y = &yg(s, 0);
          Kokkos::parallel_for(Kokkos::TeamThreadRange(team, C),
                               [&](const int c) { o[c] += g * y[c]; });
        }
      });
}

// dyg[slot,:] = gate[a] * dout[n,:] and dgate[a] = dot(dout[n,:], yg[slot,:]) for every
// assignment a = n*K+j that has a row; dgate[a] = 0 for those that have none. Written, not
// accumulated: each grouped row belongs to one assignment and each gate to one combine, so the
// caller needs no zero-fill (rows no assignment references are left as they are). One team per
// token; each dgate entry is one team reduction over C, in a fixed order.
// dout [N,C], yg and dyg [M,C], slot_of, gate and dgate [N,K].
template <class Real>
void combine_backward(const ExecSpace& exec, View2<const Real> dout, View2<const Real> yg,
                      View2<const int> slot_of, View2<const Real> gate, View2<Real> dyg,
                      View2<Real> dgate) {
  using Policy = Kokkos::TeamPolicy<ExecSpace>;
  const int K = int(slot_of.extent(1)), C = int(dout.extent(1)), N = int(dout.extent(0));
  if (N == 0) return;
  Kokkos::parallel_for(
      "moe::combine_backward", Policy(exec, N, Kokkos::AUTO),
      KOKKOS_LAMBDA(const Policy::member_type& team) {
        const int n = team.league_rank();
        const Real* d = &dout(n, 0);
        for (int j = 0; j < K; ++j) {
          const int s = slot_of(n, j);
          if (s < 0) {
            Kokkos::single(Kokkos::PerTeam(team), [&]() { dgate(n, j) = Real(0); });
            continue;
          }
          const Real g = gate(n, j);
          const Real* y = &yg(s, 0);
          Real* dy = &dyg(s, 0);
          Kokkos::parallel_for(Kokkos::TeamThreadRange(team, C),
                               [&](const int c) { dy[c] = g * d[c]; });
          Real acc = 0;
          Kokkos::parallel_reduce(
              Kokkos::TeamThreadRange(team, C), [&](const int c, Real& t) { t += d[c] * y[c]; },
              acc);
          Kokkos::single(Kokkos::PerTeam(team), [&]() { dgate(n, j) = acc; });
        }
      });
}

}  // namespace moe
