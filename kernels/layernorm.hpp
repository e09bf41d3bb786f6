// Layer normalisation over the C channels of each of N rows:
//   out = (x - mean) * rstd * gamma + beta,  rstd = 1 / sqrt(var + eps), var biased (/C).
// mean and rstd are saved by the forward so the backward need not recompute them. Rows are
// handled by one Kokkos team each so the C-long loops are spread over threads with coalesced
// access on GPUs; the team reductions have a fixed order, so results are reproducible.
#pragma once

#include <cmath>

#include "common.hpp"

namespace moe {

template <class Real>
void layernorm_forward(View1<const Real> x, View1<const Real> gamma, View1<const Real> beta,
                       View1<Real> out, View1<Real> mean, View1<Real> rstd, int N, int C,
                       Real eps = Real(1e-5)) {
  using Policy = Kokkos::TeamPolicy<ExecSpace>;
  Kokkos::parallel_for(
      "moe::layernorm_forward", Policy(N, Kokkos::AUTO),
      KOKKOS_LAMBDA(const Policy::member_type& team) {
        const Index row = Index(team.league_rank()) * C;
        Real s = 0;
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(team, C), [&](const int c, Real& acc) { acc += x(row + c); },
            s);
        const Real mu = s / C;
        // Two passes (mean, then squared deviations) instead of E[x^2] - E[x]^2, which cancels
        // badly in float when |mean| >> std.
        Real ss = 0;
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(team, C),
            [&](const int c, Real& acc) {
              const Real d = x(row + c) - mu;
              acc += d * d;
            },
            ss);
        const Real rs = Real(1) / math::sqrt(ss / C + eps);
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, C), [&](const int c) {
          out(row + c) = (x(row + c) - mu) * rs * gamma(c) + beta(c);
        });
        Kokkos::single(Kokkos::PerTeam(team), [&]() {
          mean(team.league_rank()) = mu;
          rstd(team.league_rank()) = rs;
        });
      });
}

// Accumulates dx, dgamma, dbeta. With xhat = (x - mean) * rstd and g = dout * gamma:
//   dx = rstd * (g - mean_c(g) - xhat * mean_c(g * xhat))
//   dgamma[c] = sum_n dout * xhat,  dbeta[c] = sum_n dout.
template <class Real>
void layernorm_backward(View1<const Real> dout, View1<const Real> x, View1<const Real> gamma,
                        View1<const Real> mean, View1<const Real> rstd, View1<Real> dx,
                        View1<Real> dgamma, View1<Real> dbeta, int N, int C) {
  using Policy = Kokkos::TeamPolicy<ExecSpace>;
  Kokkos::parallel_for(
      "moe::layernorm_backward_dx", Policy(N, Kokkos::AUTO),
      KOKKOS_LAMBDA(const Policy::member_type& team) {
        const int n = team.league_rank();
        const Index row = Index(n) * C;
        const Real mu = mean(n), rs = rstd(n);
        Real sg = 0, sgx = 0;
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(team, C),
            [&](const int c, Real& acc) { acc += dout(row + c) * gamma(c); }, sg);
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(team, C),
            [&](const int c, Real& acc) {
              acc += dout(row + c) * gamma(c) * (x(row + c) - mu) * rs;
            },
            sgx);
        const Real mg = sg / C, mgx = sgx / C;
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, C), [&](const int c) {
          const Real xhat = (x(row + c) - mu) * rs;
          dx(row + c) += rs * (dout(row + c) * gamma(c) - mg - xhat * mgx);
        });
      });
  // dgamma/dbeta sum over rows: one thread per channel walks the rows in order (no atomics).
  Kokkos::parallel_for(
      "moe::layernorm_backward_dgamma", range(C), KOKKOS_LAMBDA(const Index c) {
        Real sg = 0, sb = 0;
        for (Index n = 0; n < N; ++n) {
          const Real d = dout(n * C + c);
          sg += d * (x(n * C + c) - mean(n)) * rstd(n);
          sb += d;
        }
        dgamma(c) += sg;
        dbeta(c) += sb;
      });
}

}  // namespace moe
