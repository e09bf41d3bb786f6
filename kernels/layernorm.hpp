// Layer normalisation over the C channels of each of N rows:
//   out = (x - mean) * rstd * gamma + beta,  rstd = 1 / sqrt(var + eps), var biased (/C).
// mean and rstd are saved by the forward so the backward need not recompute them. Rows are
// handled by one Kokkos team each so the C-long loops are spread over threads with coalesced
// access on GPUs; the team reductions have a fixed order, so results are reproducible.
#pragma once

#include <cmath>

#include "common.hpp"
#include "matmul.hpp"  // DxMode
#include "workspace.hpp"

namespace moe {

// x, out [N,C]; gamma, beta [C]; mean, rstd [N].
template <class Real>
void layernorm_forward(const ExecSpace& exec, View2<const Real> x, View1<const Real> gamma,
                       View1<const Real> beta, View2<Real> out, View1<Real> mean, View1<Real> rstd,
                       Real eps = Real(1e-5)) {
  using Policy = Kokkos::TeamPolicy<ExecSpace>;
  const int N = int(x.extent(0)), C = int(x.extent(1));
  Kokkos::parallel_for(
      "moe::layernorm_forward", Policy(exec, N, Kokkos::AUTO),
      KOKKOS_LAMBDA(const Policy::member_type& team) {
        const int n = team.league_rank();
        Real s = 0;
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(team, C), [&](const int c, Real& acc) { acc += x(n, c); }, s);
        const Real mu = s / C;
        // Two passes (mean, then squared deviations) instead of E[x^2] - E[x]^2, which cancels
        // badly in float when |mean| >> std.
        Real ss = 0;
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(team, C),
            [&](const int c, Real& acc) {
              const Real d = x(n, c) - mu;
              acc += d * d;
            },
            ss);
        const Real rs = Real(1) / math::sqrt(ss / C + eps);
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, C), [&](const int c) {
          out(n, c) = (x(n, c) - mu) * rs * gamma(c) + beta(c);
        });
        Kokkos::single(Kokkos::PerTeam(team), [&]() {
          mean(team.league_rank()) = mu;
          rstd(team.league_rank()) = rs;
        });
      });
}

// Accumulates dx (or writes it: DxMode::Overwrite, sparing the caller a zero-fill), dgamma,
// dbeta. With xhat = (x - mean) * rstd and g = dout * gamma:
//   dx = rstd * (g - mean_c(g) - xhat * mean_c(g * xhat))
//   dgamma[c] = sum_n dout * xhat,  dbeta[c] = sum_n dout.
// dout, x, dx [N,C]; gamma, dgamma, dbeta [C]; mean, rstd [N] from the forward.
template <class Real>
void layernorm_backward(const ExecSpace& exec, View2<const Real> dout, View2<const Real> x,
                        View1<const Real> gamma, View1<const Real> mean, View1<const Real> rstd,
                        View2<Real> dx, View1<Real> dgamma, View1<Real> dbeta,
                        DxMode dx_mode = DxMode::Accumulate) {
  using Policy = Kokkos::TeamPolicy<ExecSpace>;
  const int N = int(x.extent(0)), C = int(x.extent(1));
  // One team per chunk of kChunk rows does each row's dx (two team reductions, then the
  // update) and sums the chunk's dgamma/dbeta contributions into partials [chunks, 2C] while the
  // rows are at hand (threads over channels: coalesced, and a loop that vectorizes on a CPU);
  // a second launch adds the chunks' partials per channel in order. Both parallel, fixed order.
  // A GPU gets smaller chunks: more teams for the dx work.
#if defined(KOKKOS_ENABLE_CUDA) || defined(KOKKOS_ENABLE_HIP) || defined(KOKKOS_ENABLE_SYCL)
  constexpr int kChunk = 8;
#else
  constexpr int kChunk = 64;
#endif
  const int chunks = (N + kChunk - 1) / kChunk;
  const bool overwrite = dx_mode == DxMode::Overwrite;
  View1<Real> part = workspace<Real, WorkspaceTag::LayernormPartials>(Index(chunks) * 2 * C);
  Kokkos::parallel_for(
      "moe::layernorm_backward_rows", Policy(exec, chunks, Kokkos::AUTO),
      KOKKOS_LAMBDA(const Policy::member_type& team) {
        const int r = team.league_rank();
        Real* pg = &part(Index(r) * 2 * C);
        Real* pb = pg + C;
        const int n0 = r * kChunk, n1 = n0 + kChunk < N ? n0 + kChunk : N;
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, C), [&](const int c) {
          pg[c] = Real(0);
          pb[c] = Real(0);
        });
        for (int n = n0; n < n1; ++n) {
          const Real mu = mean(n), rs = rstd(n);
          const Real* d = &dout(n, 0);
          const Real* xr = &x(n, 0);
          Real sg = 0, sgx = 0;
          Kokkos::parallel_reduce(
              Kokkos::TeamThreadRange(team, C),
              [&](const int c, Real& acc) { acc += d[c] * gamma(c); }, sg);
          Kokkos::parallel_reduce(
              Kokkos::TeamThreadRange(team, C),
              [&](const int c, Real& acc) { acc += d[c] * gamma(c) * (xr[c] - mu) * rs; }, sgx);
          const Real mg = sg / C, mgx = sgx / C;
          Real* dxr = &dx(n, 0);
          Kokkos::parallel_for(Kokkos::TeamThreadRange(team, C), [&](const int c) {
            const Real xhat = (xr[c] - mu) * rs;
            const Real g = rs * (d[c] * gamma(c) - mg - xhat * mgx);
            dxr[c] = overwrite ? g : dxr[c] + g;  // overwrite never reads dx (may be garbage)
            pg[c] += d[c] * xhat;
            pb[c] += d[c];
          });
        }
      });
  Kokkos::parallel_for(
      "moe::layernorm_backward_dgamma", range(exec, 2 * Index(C)), KOKKOS_LAMBDA(const Index i) {
        Real acc = 0;
        for (int r = 0; r < chunks; ++r) acc += part(Index(r) * 2 * C + i);
        if (i < C)
          dgamma(i) += acc;
        else
          dbeta(i - C) += acc;
      });
}

}  // namespace moe
