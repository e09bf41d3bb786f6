// Token-level routing masks (MaskMoE): each vocabulary token has a fixed set of visible
// experts, stored as a [vocab, E] byte mask on the device. The router's logits of invisible
// experts become -inf before the softmax, so their probabilities (and gradients) are exactly 0;
// a top-k slot that can only pick such a zero-probability expert is left empty afterwards.
#pragma once

#include <limits>

#include "common.hpp"

namespace moe {

// Number of the first N token ids outside [0, vocab) (the caller checks it is 0: the mask is
// indexed by token id).
inline Index routing_tokens_out_of_range(View1<const int> tokens, int N, int vocab) {
  Index bad = 0;
  Kokkos::parallel_reduce(
      "moe::routing_tokens_out_of_range", range(N),
      KOKKOS_LAMBDA(const Index n, Index& acc) {
        const int t = tokens(n);
        if (t < 0 || t >= vocab) acc += 1;
      },
      bad);
  return bad;
}

// masked[n,e] = logits[n,e] if mask[tokens[n], e] else -inf. The logits are not modified.
// Gradient: d masked / d logits is 1 on visible entries and 0 on invisible ones, so the backward
// of this op is the identity restricted to the mask (callers that differentiate through a
// softmax of `masked` get exact zeros there without applying it).
template <class Real>
void routing_mask_logits(View1<const int> tokens, View1<const unsigned char> mask,
                         View1<const Real> logits, View1<Real> masked, int N, int E) {
  const Real ninf = -std::numeric_limits<Real>::infinity();  // on the host: see router.hpp
  Kokkos::parallel_for(
      "moe::routing_mask_logits", range(Index(N) * E), KOKKOS_LAMBDA(const Index i) {
        const Index n = i / E;
        const int e = int(i % E);
        masked(i) = mask(Index(tokens(n)) * E + e) ? logits(i) : ninf;
      });
}

// Slots whose picked gate is exactly 0 (only zero-probability experts were left to pick, e.g.
// the second slot of a token with one visible expert) become empty: expert -1, gate 0.
// Piecewise constant in the logits: no backward.
template <class Real>
void routing_empty_zero_slots(View1<int> expert_of, View1<Real> gate, Index A) {
  Kokkos::parallel_for(
      "moe::routing_empty_zero_slots", range(A), KOKKOS_LAMBDA(const Index a) {
        if (gate(a) == Real(0)) {
          expert_of(a) = -1;
          gate(a) = Real(0);
        }
      });
}

}  // namespace moe
