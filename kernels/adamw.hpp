// AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization"): Adam moments with
// bias correction, and weight decay applied to the parameter directly rather than folded into
// the gradient, so it is not rescaled by the adaptive denominator.
#pragma once

#include <cmath>

#include "common.hpp"
#include "segments.hpp"

namespace moe {

// One step t >= 1 over n parameters, in place on param, m, v:
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  mhat = m / (1-b1^t);  vhat = v / (1-b2^t)
//   p -= lr * (mhat / (sqrt(vhat) + eps) + weight_decay * p)
// The hyperparameters of one update; t counts updates from 1 (the bias correction's exponent).
template <class Real>
struct AdamW {
  int t = 1;
  Real lr, beta1, beta2, eps, weight_decay;
};

// param, grad, m, v: the same [n] range of the flat parameter, gradient and moment buffers.
template <class Real>
void adamw_update(const ExecSpace& exec, View1<Real> param, View1<const Real> grad, View1<Real> m,
                  View1<Real> v, const AdamW<Real>& h) {
  const int t = h.t;
  const Real lr = h.lr, beta1 = h.beta1, beta2 = h.beta2, eps = h.eps;
  const Real weight_decay = h.weight_decay;
  MOE_CHECK(t >= 1, "adamw_update: step t must be >= 1");
  // The bias corrections are the same for every element: compute them once, on the host, in
  // double (b^t for b close to 1 and large t loses digits in float), then cast.
  const Real bc1 = Real(1.0 - std::pow(double(beta1), t));
  const Real bc2 = Real(1.0 - std::pow(double(beta2), t));
  Kokkos::parallel_for(
      "moe::adamw_update", range(exec, Index(param.extent(0))), KOKKOS_LAMBDA(const Index i) {
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

// The same update over every segment of the flat buffers in one launch; segment s decays with
// h.weight_decay * segs.flag(s) (flag 1: decayed matrices, 0: biases and gains).
template <class Real>
void adamw_update_segments(const ExecSpace& exec, View1<Real> param, View1<const Real> grad,
                           View1<Real> m, View1<Real> v, const AdamW<Real>& h,
                           const Segments& segs) {
  const int t = h.t;
  const Real lr = h.lr, beta1 = h.beta1, beta2 = h.beta2, eps = h.eps;
  const Real weight_decay = h.weight_decay;
  MOE_CHECK(t >= 1, "adamw_update_segments: step t must be >= 1");
  const Real bc1 = Real(1.0 - std::pow(double(beta1), t));
  const Real bc2 = Real(1.0 - std::pow(double(beta2), t));
  const Buffer<Index> begin = segs.begin, start = segs.start;
  const Buffer<float> flag = segs.flag;
  const int S = segs.count;
  Kokkos::parallel_for(
      "moe::adamw_update_segments", range(exec, segs.total), KOKKOS_LAMBDA(const Index j) {
        const int s = segment_of(start, S, j);
        const Index i = begin(s) + j - start(s);
        const Real wd = weight_decay * Real(flag(s));
        const Real g = grad(i);
        const Real mi = beta1 * m(i) + (Real(1) - beta1) * g;
        const Real vi = beta2 * v(i) + (Real(1) - beta2) * g * g;
        m(i) = mi;
        v(i) = vi;
        const Real mhat = mi / bc1;
        const Real vhat = vi / bc2;
        const Real p = param(i);
        param(i) = p - lr * (mhat / (math::sqrt(vhat) + eps) + wd * p);
      });
}

}  // namespace moe
