// AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization"): Adam moments with
// bias correction, and weight decay applied to the parameter directly rather than folded into
// the gradient, so it is not rescaled by the adaptive denominator.
#pragma once

#include <cmath>

#include "common.hpp"

namespace moe {

// One step t >= 1 over n parameters, in place on param, m, v:
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  mhat = m / (1-b1^t);  vhat = v / (1-b2^t)
//   p -= lr * (mhat / (sqrt(vhat) + eps) + weight_decay * p)
template <class Real>
void adamw_update(View1<Real> param, View1<const Real> grad, View1<Real> m, View1<Real> v, Index n,
                  int t, Real lr, Real beta1, Real beta2, Real eps, Real weight_decay) {
  MOE_CHECK(t >= 1, "adamw_update: step t must be >= 1");
  // The bias corrections are the same for every element: compute them once, on the host, in
  // double (b^t for b close to 1 and large t loses digits in float), then cast.
  const Real bc1 = Real(1.0 - std::pow(double(beta1), t));
  const Real bc2 = Real(1.0 - std::pow(double(beta2), t));
  Kokkos::parallel_for(
      "moe::adamw_update", range(n), KOKKOS_LAMBDA(const Index i) {
        const Real g = grad(i);
        const Real mi = beta1 * m(i) + (Real(1) - beta1) * g;
        const Real vi = beta2 * v(i) + (Real(1) - beta2) * g * g;
        m(i) = mi;
        v(i) = vi;
        const Real mhat = mi / bc1;
        const Real vhat = vi / bc2;
        const Real p = param(i);
        param(i) = p - lr * (mhat / (math::sqrt(vhat) + eps) + weight_decay * p);
      });
}

}  // namespace moe
