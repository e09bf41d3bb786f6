// Combine: the inverse of dispatch. Each token's output is the gate-weighted sum of its experts'
// rows in the grouped buffer. Copies with no row (no expert in the slot, or dropped by the
// capacity) contribute nothing: the caller's residual connection carries those tokens.
#pragma once

#include "common.hpp"

namespace moe {

// out[n,:] = sum over j = 0..K-1 with slot_of[n*K+j] >= 0 of gate[n*K+j] * yg[slot,:].
// One thread per (token, channel), slots summed in order j: deterministic.
// yg [M,C] (grouped rows), slot_of and gate [N,K] -> out [N,C].
template <class Real>
void combine_forward(const ExecSpace& exec, View2<const Real> yg, View2<const int> slot_of,
                     View2<const Real> gate, View2<Real> out) {
  const Index C = Index(out.extent(1));
  const int K = int(slot_of.extent(1));
  Kokkos::parallel_for(
      "moe::combine_forward", range(exec, Index(out.extent(0)) * C), KOKKOS_LAMBDA(const Index i) {
        const Index n = i / C, c = i - n * C;
        Real acc = 0;
        for (int j = 0; j < K; ++j) {
          const int s = slot_of(n, j);
          if (s >= 0) acc += gate(n, j) * yg(s, c);
        }
        out(n, c) = acc;
      });
}

// dyg[slot,:] += gate[a] * dout[n,:] and dgate[a] += dot(dout[n,:], yg[slot,:]) for every
// assignment a = n*K+j that has a row. Each row belongs to exactly one assignment, so the dyg
// writes never collide; each dgate entry is one thread's dot product over C in order.
// dout [N,C], yg and dyg [M,C], slot_of, gate and dgate [N,K].
template <class Real>
void combine_backward(const ExecSpace& exec, View2<const Real> dout, View2<const Real> yg,
                      View2<const int> slot_of, View2<const Real> gate, View2<Real> dyg,
                      View2<Real> dgate) {
  const int K = int(slot_of.extent(1)), C = int(dout.extent(1));
  const Index A = Index(slot_of.extent(0)) * K;
  Kokkos::parallel_for(
      "moe::combine_backward_rows", range(exec, A * C), KOKKOS_LAMBDA(const Index i) {
        const Index a = i / C, c = i - a * C, n = a / K, j = a % K;
        const int s = slot_of(n, j);
        if (s >= 0) dyg(s, c) += gate(n, j) * dout(n, c);
      });
  Kokkos::parallel_for(
      "moe::combine_backward_gate", range(exec, A), KOKKOS_LAMBDA(const Index a) {
        const Index n = a / K, j = a % K;
        const int s = slot_of(n, j);
        if (s < 0) return;
        Real acc = 0;
        for (int c = 0; c < C; ++c) acc += dout(n, c) * yg(s, c);
        dgate(n, j) += acc;
      });
}

}  // namespace moe
