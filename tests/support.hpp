// Test helpers shared by every kernel test: host <-> device copies, seeded random inputs, and
// the central finite-difference gradient check in double precision.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "common.hpp"

namespace moe::test {

// Copies a host vector into a new device buffer.
template <class T>
Buffer<T> to_device(const std::vector<T>& h, const std::string& label = "test") {
  Buffer<T> d(label, h.size());
  auto m = Kokkos::create_mirror_view(d);
  for (std::size_t i = 0; i < h.size(); ++i) m(i) = h[i];
  Kokkos::deep_copy(d, m);
  return d;
}

// Copies the first n elements of a device array back to the host.
template <class V>
std::vector<typename V::non_const_value_type> to_host(const V& d, Index n = -1) {
  using T = typename V::non_const_value_type;
  if (n < 0) n = Index(d.extent(0));
  Kokkos::View<T*, Kokkos::HostSpace> h("host", n);
  Kokkos::deep_copy(h, Kokkos::View<const T*, Kokkos::LayoutRight, MemSpace,
                                    Kokkos::MemoryTraits<Kokkos::Unmanaged>>(d.data(), n));
  return std::vector<T>(h.data(), h.data() + n);
}

// n values uniform in [lo, hi), from a fixed seed.
inline std::vector<double> random_vector(std::size_t n, std::uint64_t seed, double lo = -1.0,
                                         double hi = 1.0) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

// Norm-wise relative difference ||a - b|| / max(||a||, ||b||, tiny).
inline double rel_error(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, na = 0, nb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return std::sqrt(num) / std::max({std::sqrt(na), std::sqrt(nb), 1e-300});
}

// Central finite differences of a scalar loss with respect to every element of x (x is
// perturbed in place and restored). `loss` re-runs the forward pass from the current x.
inline std::vector<double> numeric_gradient(std::vector<double>& x,
                                            const std::function<double()>& loss, double h = 1e-5) {
  std::vector<double> g(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double keep = x[i];
    x[i] = keep + h;
    const double up = loss();
    x[i] = keep - h;
    const double down = loss();
    x[i] = keep;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

// Dot product of two host vectors (the projected loss sum(out * r) used by gradient checks).
inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

}  // namespace moe::test
