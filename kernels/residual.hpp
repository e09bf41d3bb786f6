// The residual connection: out = a + b. Its backward is the identity into both branches, which
// the model gets for free by accumulating gradients into one running buffer, so only the
// forward is a kernel.
#pragma once

#include "common.hpp"

namespace moe {

template <class Real>
void residual_forward(View1<const Real> a, View1<const Real> b, View1<Real> out, Index n) {
  Kokkos::parallel_for(
      "moe::residual_forward", range(n), KOKKOS_LAMBDA(const Index i) { out(i) = a(i) + b(i); });
}

}  // namespace moe
