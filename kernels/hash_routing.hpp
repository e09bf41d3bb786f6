// Fixed (hash) routing, Hash Layers (Roller et al. 2021): every token goes to the one expert that
// a precomputed table assigns to its token id, with gate 1. There is nothing to learn, so this
// family has a forward only: the routing decision carries no gradient.
#pragma once

#include "common.hpp"

namespace moe {

// expert_of[n] = table[tokens[n]], gate[n] = 1, probs[n,:] = one-hot of that expert, and
// counts[e] = tokens routed to e (integer atomics: order independent). A token id outside
// [0, V) gets no expert (expert_of = -1, gate 0, probs row 0); the return value is the number of
// such tokens, so the caller can refuse them. One thread per token.
template <class Real>
Index table_route_forward(View1<const int> table, View1<const int> tokens, View1<int> expert_of,
                          View1<Real> gate, View1<Real> probs, View1<int> counts, int N, int E,
                          int V) {
  Kokkos::parallel_for(
      "moe::table_route_counts_zero", range(E), KOKKOS_LAMBDA(const Index e) { counts(e) = 0; });
  Index invalid = 0;
  Kokkos::parallel_reduce(
      "moe::table_route_forward", range(N),
      KOKKOS_LAMBDA(const Index n, Index& bad) {
        const int t = tokens(n);
        const int ex = (t >= 0 && t < V) ? table(t) : -1;
        const bool ok = ex >= 0 && ex < E;
        expert_of(n) = ok ? ex : -1;
        gate(n) = ok ? Real(1) : Real(0);
        for (int e = 0; e < E; ++e) probs(n * E + e) = (ok && e == ex) ? Real(1) : Real(0);
        if (ok)
          Kokkos::atomic_add(&counts(ex), 1);
        else
          bad += 1;
      },
      invalid);
  return invalid;
}

}  // namespace moe
