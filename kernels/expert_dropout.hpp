// Expert dropout (MoEC): experts outside a kept set leave the router softmax for a step.
// masked[n,e] = logits[n,e] if keep[e] != 0, else -inf. softmax_rows_forward turns -inf into a
// probability of exactly 0, so top-k picks only kept experts (at least k are kept).
// No backward kernel: d masked / d logits is 1 on kept entries and 0 on dropped ones, and every
// gradient that reaches the masked logits already carries the factor p[n,e] = 0 (softmax
// backward) or exp(-inf) = 0 (z-loss backward) on dropped entries, so callers accumulate the
// masked-logit gradient straight into the logit gradient.
#pragma once

#include <limits>

#include "common.hpp"

namespace moe {

template <class Real>
void expert_mask_forward(View1<const Real> logits, View1<const int> keep, View1<Real> masked, int N,
                         int E) {
  const Real neg_inf = -std::numeric_limits<Real>::infinity();  // on the host
  Kokkos::parallel_for(
      "moe::expert_mask_forward", range(Index(N) * E),
      KOKKOS_LAMBDA(const Index i) { masked(i) = keep(i % E) != 0 ? logits(i) : neg_inf; });
}

}  // namespace moe
