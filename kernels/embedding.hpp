// Token + position embedding (GPT-2 style): out[n,:] = wte[tokens[n],:] + wpe[n % S,:] for the
// N = B*S token rows of a batch. The backward scatters dout into the two tables; it is written
// so that every table element has exactly one owning thread, which keeps it deterministic
// without floating-point atomics.
#pragma once

#include "common.hpp"

namespace moe {

// out [N,C] = wte [V,C] rows picked by tokens [N] + wpe [S,C] rows picked by position (n % S).
template <class Real>
void embedding_forward(const ExecSpace& exec, View1<const int> tokens, View2<const Real> wte,
                       View2<const Real> wpe, View2<Real> out) {
  const Index C = Index(out.extent(1)), S = Index(wpe.extent(0));
  Kokkos::parallel_for(
      "moe::embedding_forward", range(exec, Index(out.extent(0)) * C),
      KOKKOS_LAMBDA(const Index i) {
        const Index n = i / C;
        const Index c = i % C;
        out(n, c) = wte(tokens(n), c) + wpe(n % S, c);
      });
}

// dwte[tokens[n],c] += dout[n,c]; dwpe[n%S,c] += dout[n,c].
template <class Real>
void embedding_backward(const ExecSpace& exec, View1<const int> tokens, View2<const Real> dout,
                        View2<Real> dwte, View2<Real> dwpe) {
  const Index N = Index(dout.extent(0)), C = Index(dout.extent(1)), S = Index(dwpe.extent(0));
  // Several rows may carry the same token, so they hit the same dwte row. One thread per
  // channel c walks the rows in order: each dwte element is only ever touched by its channel's
  // thread, in a fixed order. Neighbouring threads touch neighbouring channels (coalesced).
  Kokkos::parallel_for(
      "moe::embedding_backward_wte", range(exec, C), KOKKOS_LAMBDA(const Index c) {
        for (Index n = 0; n < N; ++n) dwte(tokens(n), c) += dout(n, c);
      });
  // Position s receives rows s, s+S, s+2S, ...: one thread per (s,c) sums them in order.
  Kokkos::parallel_for(
      "moe::embedding_backward_wpe", range(exec, S * C), KOKKOS_LAMBDA(const Index i) {
        const Index s = i / C;
        const Index c = i % C;
        Real acc = 0;
        for (Index n = s; n < N; n += S) acc += dout(n, c);
        dwpe(s, c) += acc;
      });
}

}  // namespace moe
