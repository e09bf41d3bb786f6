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

// One step's constants, copied into the kernels: the bias corrections are the same for every
// element, so they are computed once, on the host, in double (b^t for b close to 1 and large t
// loses digits in float), then cast.
template <class Real>
struct AdamWStep {
  Real lr, beta1, beta2, eps, bc1, bc2;

  explicit AdamWStep(const AdamW<Real>& h)
      : lr(h.lr),
        beta1(h.beta1),
        beta2(h.beta2),
        eps(h.eps),
        bc1(Real(1.0 - std::pow(double(h.beta1), h.t))),
        bc2(Real(1.0 - std::pow(double(h.beta2), h.t))) {
    MOE_CHECK(h.t >= 1, "adamw: step t must be >= 1");
  }

  // The update of one element (the formula above) with decay `weight_decay`.
  KOKKOS_INLINE_FUNCTION void apply(Real& p, Real& m, Real& v, const Real g,
                                    const Real weight_decay) const {
    m = beta1 * m + (Real(1) - beta1) * g;
    v = beta2 * v + (Real(1) - beta2) * g * g;
    const Real mhat = m / bc1;
    const Real vhat = v / bc2;
    p = p - lr * (mhat / (math::sqrt(vhat) + eps) + weight_decay * p);
  }
};

// param, grad, m, v: the same [n] range of the flat parameter, gradient and moment buffers.
template <class Real>
void adamw_update(const ExecSpace& exec, View1<Real> param, View1<const Real> grad, View1<Real> m,
                  View1<Real> v, const AdamW<Real>& h) {
  const AdamWStep<Real> step(h);
  const Real weight_decay = h.weight_decay;
  Kokkos::parallel_for(
      "moe::adamw_update", range(exec, Index(param.extent(0))),
      KOKKOS_LAMBDA(const Index i) { step.apply(param(i), m(i), v(i), grad(i), weight_decay); });
}

// The same update over every segment of the flat buffers in one launch (one team per chunk);
// segment s decays with h.weight_decay * its flag (1: decayed matrices, 0: biases and gains).
// The update sees grad * grad_scale (gradient clipping's factor, applied here rather than by a
// launch of its own; grad itself is left as it is).
template <class Real>
void adamw_update_segments(const ExecSpace& exec, View1<Real> param, View1<const Real> grad,
                           View1<Real> m, View1<Real> v, const AdamW<Real>& h, const Segments& segs,
                           Real grad_scale = Real(1)) {
  using Policy = Kokkos::TeamPolicy<ExecSpace>;
  if (segs.chunks == 0) return;
  const AdamWStep<Real> step(h);
  const Real weight_decay = h.weight_decay;
  const Buffer<Index> begin = segs.chunk_begin;
  const Buffer<int> size = segs.chunk_size;
  const Buffer<float> flag = segs.chunk_flag;
  Kokkos::parallel_for(
      "moe::adamw_update_segments", Policy(exec, segs.chunks, Kokkos::AUTO),
      KOKKOS_LAMBDA(const Policy::member_type& team) {
        const int c = team.league_rank();
        const Index b = begin(c);
        Real* p = &param(b);
        const Real* g = &grad(b);
        Real* mm = &m(b);
        Real* vv = &v(b);
        const Real decay = weight_decay * Real(flag(c));
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, size(c)), [&](const int i) {
          step.apply(p[i], mm[i], vv[i], g[i] * grad_scale, decay);
        });
      });
}

}  // namespace moe
