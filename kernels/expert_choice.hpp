// Expert-choice selection (Zhou et al. 2022): each expert e takes the C tokens with the largest
// router probability probs[:, e] (ties to the lower token index). A decision has K = E slots per
// token, slot e standing for expert e: expert_of[n*E+e] = e and gate[n*E+e] = probs[n,e] when
// expert e chose token n, else -1 and 0. A token may so receive 0..E experts.
//
// Selection is by rank, not by sorting: one thread per (token n, expert e) counts the tokens that
// come before n in expert e's order (higher probability, or equal probability and lower index).
// That order is total, so the ranks of a column are a permutation of 0..N-1 and exactly min(C, N)
// tokens have rank < C; the result depends on no thread order (deterministic on every backend).
// Cost O(N^2 E) compare operations, fully parallel over N*E; fine for the batch sizes here
// (N = a few thousand tokens per rank). A per-expert radix select would be O(N E * bits) if
// batches grow much larger.
#pragma once

#include "common.hpp"

namespace moe {

// Fills expert_of and gate [N*E] from probs [N,E] with capacity C per expert (C <= N expected;
// larger C simply takes every token), and counts[e] = tokens expert e took.
template <class Real>
void expert_choice_forward(View1<const Real> probs, View1<int> expert_of, View1<Real> gate,
                           View1<int> counts, int N, int E, int C) {
  Kokkos::parallel_for(
      "moe::expert_choice_forward", range(Index(N) * E), KOKKOS_LAMBDA(const Index i) {
        const Index n = i / E;
        const int e = int(i - n * E);
        const Real p = probs(i);
        Index rank = 0;
        for (Index m = 0; m < N && rank < C; ++m) {
          const Real q = probs(m * E + e);
          if (q > p || (q == p && m < n)) ++rank;
        }
        const bool chosen = rank < C;
        expert_of(i) = chosen ? e : -1;
        gate(i) = chosen ? p : Real(0);
      });
  // One thread per expert counts its column in token order (integers: exact either way).
  Kokkos::parallel_for(
      "moe::expert_choice_counts", range(E), KOKKOS_LAMBDA(const Index e) {
        int c = 0;
        for (Index n = 0; n < N; ++n) c += expert_of(n * E + e) >= 0 ? 1 : 0;
        counts(e) = c;
      });
}

// dprobs[n,e] += dgate[n*E+e] for every chosen slot: the gate is the probability itself, and
// the selection is piecewise constant in the probabilities (no gradient through the choice).
// Slot n*E+e maps to dprobs entry n*E+e, so the writes never collide.
template <class Real>
void expert_choice_backward(View1<const int> expert_of, View1<const Real> dgate, View1<Real> dprobs,
                            int N, int E) {
  Kokkos::parallel_for(
      "moe::expert_choice_backward", range(Index(N) * E), KOKKOS_LAMBDA(const Index i) {
        if (expert_of(i) >= 0) dprobs(i) += dgate(i);
      });
}

}  // namespace moe
