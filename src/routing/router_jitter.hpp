// Switch-style router jitter: in a training forward the router scores x * U(1 - eps, 1 + eps)
// instead of x, one draw per element, a pure function of (seed, layer, step, element) so a
// resumed run and any rank count draw the same noise; the experts still see x. Evaluation is
// never jittered.
#pragma once

#include <cstdint>

#include "common.hpp"

namespace moe {

template <class Real>
class RouterJitter {
 public:
  RouterJitter() = default;  // off
  RouterJitter(double eps, std::uint64_t seed, int layer) : eps_(eps), seed_(seed), layer_(layer) {}

  // The router's input for the forward of training step `step`: x itself, or x * noise (kept
  // for backward) in training with eps > 0. n = elements of x.
  View1<const Real> apply(bool training, std::int64_t step, View1<const Real> x, Index n);
  // Whether the last apply() jittered.
  bool applied() const { return applied_; }
  // The last apply()'s jittered input, and dx += d_input * noise, elementwise.
  View1<const Real> jittered(Index n) const { return slice(xr_, 0, n); }
  void backward(View1<const Real> d_input, View1<Real> dx, Index n) const;

 private:
  double eps_ = 0;
  std::uint64_t seed_ = 0;
  int layer_ = 0;
  bool applied_ = false;
  Buffer<Real> xr_, noise_;
};

}  // namespace moe
