// Gate renormalisation over a token's slots (GShard-style top-2): g[n,j] = p[n,j] / S_n with
// S_n = sum over the token's used slots of p[n,j], so a token's gates sum to 1. The raw values
// p are the router probabilities of the chosen experts, probs[n, expert_of[n,j]], so the
// backward recomputes S_n from the forward's inputs instead of saving it. Unused slots
// (expert_of = -1) are skipped and keep whatever gate they had. One thread owns one token's K
// slots: fixed summation order, no atomics.
#pragma once

#include "common.hpp"

namespace moe {

// gate[n,j] = probs[n,e_j] / S_n for every used slot (in place of the raw gates). A token whose
// chosen probabilities sum to 0 (every chosen expert masked) gets gates 0. The gate is a true
// division, not p * (1/S): with k = 1 that makes every gate exactly 1 (p / p), where p * (1/p)
// rounds to 1 or to 1 - 2^-24 depending on p, and such last-bit differences decided which
// tokens a capacity cut by probability dropped.
template <class Real>
void gate_normalize_forward(View1<const Real> probs, View1<const int> expert_of, View1<Real> gate,
                            int N, int E, int K) {
  Kokkos::parallel_for(
      "moe::gate_normalize_forward", range(N), KOKKOS_LAMBDA(const Index n) {
        Real s = 0;
        for (int j = 0; j < K; ++j) {
          const int e = expert_of(n * K + j);
          if (e >= 0) s += probs(n * E + e);
        }
        for (int j = 0; j < K; ++j) {
          const int e = expert_of(n * K + j);
          if (e >= 0) gate(n * K + j) = s > Real(0) ? probs(n * E + e) / s : Real(0);
        }
      });
}

// dprobs[n,e_j] += (dgate[n,j] - sum_i dgate[n,i] g[n,i]) / S_n: the Jacobian of p_j / S,
// d g_i / d p_j = (delta_ij - g_i) / S. The K experts of a token are distinct, so each
// dprobs entry of the row gets one term. Tokens with S_n = 0 pass no gradient.
template <class Real>
void gate_normalize_backward(View1<const Real> probs, View1<const int> expert_of,
                             View1<const Real> dgate, View1<Real> dprobs, int N, int E, int K) {
  Kokkos::parallel_for(
      "moe::gate_normalize_backward", range(N), KOKKOS_LAMBDA(const Index n) {
        Real s = 0;
        for (int j = 0; j < K; ++j) {
          const int e = expert_of(n * K + j);
          if (e >= 0) s += probs(n * E + e);
        }
        if (!(s > Real(0))) return;
        Real dot = 0;  // sum_i dgate_i * g_i, with g_i = p_i / S as in the forward
        for (int j = 0; j < K; ++j) {
          const int e = expert_of(n * K + j);
          if (e >= 0) dot += dgate(n * K + j) * (probs(n * E + e) / s);
        }
        for (int j = 0; j < K; ++j) {
          const int e = expert_of(n * K + j);
          if (e >= 0) dprobs(n * E + e) += (dgate(n * K + j) - dot) / s;
        }
      });
}

}  // namespace moe
