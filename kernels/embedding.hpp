// Token + position embedding (GPT-2 style): out[n,:] = wte[tokens[n],:] + wpe[n % S,:] for the
// N = B*S token rows of a batch. The backward scatters dout into the two tables; it is written
// so that every table element has exactly one owning thread, which keeps it deterministic
// without floating-point atomics.
#pragma once

#include "common.hpp"

namespace moe {

// out[N,C] = wte[V,C] rows picked by tokens + wpe[S,C] rows picked by position (n % S).
template <class Real>
void embedding_forward(View1<const int> tokens, View1<const Real> wte, View1<const Real> wpe,
                       View1<Real> out, int N, int S, int C) {
  Kokkos::parallel_for(
      "moe::embedding_forward", range(Index(N) * C), KOKKOS_LAMBDA(const Index i) {
        const Index n = i / C;
        const Index c = i % C;
        const Index s = n % S;
        out(i) = wte(Index(tokens(n)) * C + c) + wpe(s * C + c);
      });
}

// dwte[tokens[n],c] += dout[n,c]; dwpe[n%S,c] += dout[n,c].
template <class Real>
void embedding_backward(View1<const int> tokens, View1<const Real> dout, View1<Real> dwte,
                        View1<Real> dwpe, int N, int S, int C) {
  // Several rows may carry the same token, so they hit the same dwte row. One thread per
  // channel c walks the rows in order: each dwte element is only ever touched by its channel's
  // thread, in a fixed order. Neighbouring threads touch neighbouring channels (coalesced).
  Kokkos::parallel_for(
      "moe::embedding_backward_wte", range(C), KOKKOS_LAMBDA(const Index c) {
        for (Index n = 0; n < N; ++n) dwte(Index(tokens(n)) * C + c) += dout(n * C + c);
      });
  // Position s receives rows s, s+S, s+2S, ...: one thread per (s,c) sums them in order.
  Kokkos::parallel_for(
      "moe::embedding_backward_wpe", range(Index(S) * C), KOKKOS_LAMBDA(const Index i) {
        const Index s = i / C;
        const Index c = i % C;
        Real acc = 0;
        for (Index n = s; n < N; n += S) acc += dout(n * C + c);
        dwpe(i) += acc;
      });
}

}  // namespace moe
