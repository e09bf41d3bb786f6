// The GELU MLP, out = gelu(x w1 + b1) w2 + b2, in grouped form: rows of x are partitioned
// into G contiguous groups and group g uses its own weights. One group is the dense FFN; one
// group per expert is the MoE layer's expert MLP (token copies already sorted by expert).
// Each group is two linear layers (gemms issued from the host, hence host-side offsets); the
// GELU runs as one elementwise kernel over all rows at once.
#pragma once

#include <cmath>
#include <vector>

#include "common.hpp"
#include "matmul.hpp"

namespace moe {

namespace mlp_detail {

// GELU, tanh approximation: 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3).
template <class Real>
KOKKOS_INLINE_FUNCTION Real gelu(Real x) {
  const Real k0 = Real(0.7978845608028654);  // sqrt(2/pi)
  const Real k1 = Real(0.044715);
  const Real u = k0 * (x + k1 * x * x * x);
  return Real(0.5) * x * (Real(1) + math::tanh(u));
}

// d gelu / dx = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) du/dx, du/dx = sqrt(2/pi)(1 + 3k1 x^2).
template <class Real>
KOKKOS_INLINE_FUNCTION Real gelu_grad(Real x) {
  const Real k0 = Real(0.7978845608028654);
  const Real k1 = Real(0.044715);
  const Real th = math::tanh(k0 * (x + k1 * x * x * x));
  const Real du = k0 * (Real(1) + Real(3) * k1 * x * x);
  return Real(0.5) * (Real(1) + th) + Real(0.5) * x * (Real(1) - th * th) * du;
}

// Rows [offsets[g], offsets[g+1]) form group g; checks the partition is well formed.
inline int mlp_groups(const std::vector<int>& offsets) {
  MOE_CHECK(!offsets.empty(), "mlp: offsets needs at least one entry");
  for (std::size_t g = 0; g + 1 < offsets.size(); ++g)
    MOE_CHECK(offsets[g] <= offsets[g + 1], "mlp: offsets must be non-decreasing");
  return int(offsets.size()) - 1;
}

}  // namespace mlp_detail

// out = gelu(x), elementwise over n values.
template <class Real>
void gelu_forward(View1<const Real> x, View1<Real> out, Index n) {
  Kokkos::parallel_for(
      "moe::gelu_forward", range(n),
      KOKKOS_LAMBDA(const Index i) { out(i) = mlp_detail::gelu(x(i)); });
}

// dx += gelu'(x) * dout.
template <class Real>
void gelu_backward(View1<const Real> x, View1<const Real> dout, View1<Real> dx, Index n) {
  Kokkos::parallel_for(
      "moe::gelu_backward", range(n),
      KOKKOS_LAMBDA(const Index i) { dx(i) += mlp_detail::gelu_grad(x(i)) * dout(i); });
}

// Per group g (rows [offsets[g], offsets[g+1]) of x [M,C]):
//   pre = x w1_g + b1_g, act = gelu(pre), out = act w2_g + b2_g
// with w1 [G,C,F], b1 [G,F], w2 [G,F,C], b2 [G,C]. pre and act [M,F] are saved for backward.
// Empty groups issue no work.
template <class Real>
void mlp_forward(View1<const Real> x, View1<const Real> w1, View1<const Real> b1,
                 View1<const Real> w2, View1<const Real> b2, View1<Real> pre, View1<Real> act,
                 View1<Real> out, const std::vector<int>& offsets, int C, int F) {
  const int G = mlp_detail::mlp_groups(offsets);
  const Index CF = Index(C) * F;
  for (int g = 0; g < G; ++g) {
    const int n = offsets[g + 1] - offsets[g];
    if (n == 0) continue;
    const Index r0 = offsets[g];
    linear_forward<Real>(slice(x, r0 * C, Index(n) * C), slice(w1, g * CF, CF),
                         slice(b1, Index(g) * F, F), slice(pre, r0 * F, Index(n) * F), n, C, F);
  }
  // One GELU kernel over all grouped rows rather than one small launch per group.
  const Index r0 = offsets.front(), rows = offsets.back() - offsets.front();
  gelu_forward<Real>(slice(pre, r0 * F, rows * F), slice(act, r0 * F, rows * F), rows * F);
  for (int g = 0; g < G; ++g) {
    const int n = offsets[g + 1] - offsets[g];
    if (n == 0) continue;
    const Index r0g = offsets[g];
    linear_forward<Real>(slice(act, r0g * F, Index(n) * F), slice(w2, g * CF, CF),
                         slice(b2, Index(g) * C, C), slice(out, r0g * C, Index(n) * C), n, F, C);
  }
}

// Backward of mlp_forward given dout [M,C]. Accumulates into dx [M,C], dw1, db1, dw2, db2
// (same layouts as the weights). dpre [M,F] is scratch, overwritten.
template <class Real>
void mlp_backward(View1<const Real> dout, View1<const Real> x, View1<const Real> pre,
                  View1<const Real> act, View1<const Real> w1, View1<const Real> w2,
                  View1<Real> dpre, View1<Real> dx, View1<Real> dw1, View1<Real> db1,
                  View1<Real> dw2, View1<Real> db2, const std::vector<int>& offsets, int C, int F) {
  const int G = mlp_detail::mlp_groups(offsets);
  const Index CF = Index(C) * F;
  for (int g = 0; g < G; ++g) {
    const int n = offsets[g + 1] - offsets[g];
    if (n == 0) continue;
    const Index r0 = offsets[g];
    auto dout_g = slice(dout, r0 * C, Index(n) * C);
    // dact = dout w2_g^T, written with beta = 0 into the dpre scratch: this is the '=' that
    // saves zeroing it first (linear_backward would accumulate).
    gemm<Real>(false, true, n, F, C, Real(1), dout_g.data(), C, w2.data() + g * CF, C, Real(0),
               dpre.data() + r0 * F, F);
    // dw2_g += act^T dout, db2_g += column sums of dout (no dx: handled just above).
    linear_backward<Real>(dout_g, slice(act, r0 * F, Index(n) * F), slice(w2, g * CF, CF),
                          View1<Real>(), slice(dw2, g * CF, CF), slice(db2, Index(g) * C, C), n, F,
                          C);
  }
  // dpre = gelu'(pre) * dact, in place (dpre holds dact), one kernel over all grouped rows.
  {
    const Index r0 = offsets.front(), m = (Index(offsets.back()) - r0) * F;
    View1<Real> d = slice(dpre, r0 * F, m);
    View1<const Real> p = slice(pre, r0 * F, m);
    Kokkos::parallel_for(
        "moe::gelu_backward_inplace", range(m),
        KOKKOS_LAMBDA(const Index i) { d(i) = mlp_detail::gelu_grad(p(i)) * d(i); });
  }
  for (int g = 0; g < G; ++g) {
    const int n = offsets[g + 1] - offsets[g];
    if (n == 0) continue;
    const Index r0 = offsets[g];
    // dx_g += dpre w1_g^T, dw1_g += x^T dpre, db1_g += column sums of dpre.
    linear_backward<Real>(slice(dpre, r0 * F, Index(n) * F), slice(x, r0 * C, Index(n) * C),
                          slice(w1, g * CF, CF), slice(dx, r0 * C, Index(n) * C),
                          slice(dw1, g * CF, CF), slice(db1, Index(g) * F, F), n, C, F);
  }
}

}  // namespace moe
