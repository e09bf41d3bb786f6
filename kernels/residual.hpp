// The residual connection: out = a + b. Its backward is the identity into both branches, which
// the model gets for free by accumulating gradients into one running buffer, so only the
// forward is a kernel.
#pragma once

#include "common.hpp"

namespace moe {

// out [N,C] = a + b, elementwise.
template <class Real>
void residual_forward(const ExecSpace& exec, View2<const Real> a, View2<const Real> b,
                      View2<Real> out) {
  // The three matrices are contiguous [N,C]: one flat loop (no index division; vectorizes).
  const Real *pa = a.data(), *pb = b.data();
  Real* po = out.data();
  Kokkos::parallel_for(
      "moe::residual_forward", range(exec, Index(out.extent(0)) * Index(out.extent(1))),
      KOKKOS_LAMBDA(const Index i) { po[i] = pa[i] + pb[i]; });
}

}  // namespace moe
