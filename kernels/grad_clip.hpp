// Global gradient-norm clipping. The squared norm is its own function so that a data-parallel
// run can all-reduce the per-rank partial sums before taking the square root.
#pragma once

#include <cmath>

#include "common.hpp"
#include "segments.hpp"

namespace moe {

// sum_i g[i]^2, accumulated in double: a float sum over ~10^8 parameters would lose digits.
template <class Real>
double grad_norm_squared(const ExecSpace& exec, View1<const Real> g) {
  double s = 0;
  Kokkos::parallel_reduce(
      "moe::grad_norm_squared", range(exec, Index(g.extent(0))),
      KOKKOS_LAMBDA(const Index i, double& acc) {
        const double x = double(g(i));
        acc += x * x;
      },
      s);
  return s;
}

// sum of g[i]^2 over every element of every segment, in one reduction (one team per chunk;
// flags unused). Each thread squares kLanes consecutive elements into partial sums of its own
// before adding them to its total: the block vectorizes where one chain of double adds cannot.
template <class Real>
double grad_norm_squared_segments(const ExecSpace& exec, View1<const Real> g,
                                  const Segments& segs) {
  using Policy = Kokkos::TeamPolicy<ExecSpace>;
  constexpr int L = 8;
  const Buffer<Index> begin = segs.chunk_begin;
  const Buffer<int> size = segs.chunk_size;
  double s = 0;
  if (segs.chunks == 0) return s;
  Kokkos::parallel_reduce(
      "moe::grad_norm_squared", Policy(exec, segs.chunks, Kokkos::AUTO),
      KOKKOS_LAMBDA(const Policy::member_type& team, double& acc) {
        const int c = team.league_rank();
        const Real* x = &g(begin(c));
        const int n = size(c);
        double chunk = 0;
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(team, (n + L - 1) / L),
            [&](const int b, double& t) {
              double part[L];
              for (int j = 0; j < L; ++j) {
                const double e = b * L + j < n ? double(x[b * L + j]) : 0.0;
                part[j] = e * e;
              }
              double block = 0;
              for (int j = 0; j < L; ++j) block += part[j];
              t += block;
            },
            chunk);
        Kokkos::single(Kokkos::PerTeam(team), [&]() { acc += chunk; });
      },
      s);
  return s;
}

// g *= factor.
template <class Real>
void scale_inplace(const ExecSpace& exec, View1<Real> g, Real factor) {
  Kokkos::parallel_for(
      "moe::scale_inplace", range(exec, Index(g.extent(0))),
      KOKKOS_LAMBDA(const Index i) { g(i) *= factor; });
}

// The clipping rule, given the norm (computed over one buffer, or over several ranks' shares):
// if max_norm > 0 and norm > max_norm, scales g by max_norm / norm; otherwise leaves it.
template <class Real>
void clip_to_norm(const ExecSpace& exec, View1<Real> g, double norm, double max_norm) {
  if (max_norm > 0 && norm > max_norm) scale_inplace<Real>(exec, g, Real(max_norm / norm));
}

// Clips g to global norm max_norm (if max_norm > 0 and the norm exceeds it) and returns the
// norm before clipping, which is what training logs report.
template <class Real>
double clip_grad_norm(const ExecSpace& exec, View1<Real> g, double max_norm) {
  const double norm = std::sqrt(grad_norm_squared<Real>(exec, g));
  clip_to_norm<Real>(exec, g, norm, max_norm);
  return norm;
}

}  // namespace moe
