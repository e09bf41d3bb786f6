// Combine: the inverse of dispatch. Each token's output is the gate-weighted sum of its experts'
// rows in the grouped buffer. Copies with no row (no expert in the slot, or dropped by the
// capacity) contribute nothing: the caller's residual connection carries those tokens.
#pragma once

#include "common.hpp"

namespace moe {

// out[n,:] = sum over j = 0..K-1 with slot_of[n*K+j] >= 0 of gate[n*K+j] * yg[slot,:].
// One thread per (token, channel), slots summed in order j: deterministic.
template <class Real>
void combine_forward(View1<const Real> yg, View1<const int> slot_of, View1<const Real> gate,
                     View1<Real> out, int N, int K, int C) {
  Kokkos::parallel_for(
      "moe::combine_forward", range(Index(N) * C), KOKKOS_LAMBDA(const Index i) {
        const Index n = i / C, c = i - n * C;
        Real acc = 0;
        for (int j = 0; j < K; ++j) {
          const int s = slot_of(n * K + j);
          if (s >= 0) acc += gate(n * K + j) * yg(Index(s) * C + c);
        }
        out(i) = acc;
      });
}

// dyg[slot,:] += gate[a] * dout[n,:] and dgate[a] += dot(dout[n,:], yg[slot,:]) for every
// assignment a = n*K+j that has a row. Each row belongs to exactly one assignment, so the dyg
// writes never collide; each dgate entry is one thread's dot product over C in order.
template <class Real>
void combine_backward(View1<const Real> dout, View1<const Real> yg, View1<const int> slot_of,
                      View1<const Real> gate, View1<Real> dyg, View1<Real> dgate, int N, int K,
                      int C) {
  const Index A = Index(N) * K;
  Kokkos::parallel_for(
      "moe::combine_backward_rows", range(A * C), KOKKOS_LAMBDA(const Index i) {
        const Index a = i / C, c = i - a * C;
        const int s = slot_of(a);
        if (s >= 0) dyg(Index(s) * C + c) += gate(a) * dout((a / K) * C + c);
      });
  Kokkos::parallel_for(
      "moe::combine_backward_gate", range(A), KOKKOS_LAMBDA(const Index a) {
        const int s = slot_of(a);
        if (s < 0) return;
        const Index drow = (a / K) * C, yrow = Index(s) * C;
        Real acc = 0;
        for (int c = 0; c < C; ++c) acc += dout(drow + c) * yg(yrow + c);
        dgate(a) += acc;
      });
}

}  // namespace moe
