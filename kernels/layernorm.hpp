// Layer normalisation over the C channels of each of N rows:
//   out = (x - mean) * rstd * gamma + beta,  rstd = 1 / sqrt(var + eps), var biased (/C).
// mean and rstd are saved by the forward so the backward need not recompute them. Rows are
// handled by one Kokkos team each so the C-long loops are spread over threads with coalesced
// access on GPUs; the team reductions have a fixed order, so results are reproducible.
#pragma once

#include <cmath>

#include "common.hpp"
#include "matmul.hpp"  // DxMode; precision.hpp (round_to_bf16)
#include "workspace.hpp"

namespace moe {

namespace layernorm_detail {

// One row of the forward, for a team: out = LN(x) over C channels; returns mean and rstd (every
// thread of the team gets them). Shared by the plain and the fused forwards so that both do
// exactly the same arithmetic.
template <class Real, class Member>
KOKKOS_INLINE_FUNCTION void normalize_row(const Member& team, const Real* x, int C,
                                          const View1<const Real>& gamma,
                                          const View1<const Real>& beta, Real* out, Real eps,
                                          Real& mu, Real& rs) {
  Real s = 0;
  Kokkos::parallel_reduce(
      Kokkos::TeamThreadRange(team, C), [&](const int c, Real& acc) { acc += x[c]; }, s);
  mu = s / C;
  // Two passes (mean, then squared deviations) instead of E[x^2] - E[x]^2, which cancels
  // badly in float when |mean| >> std.
  Real ss = 0;
  const Real m = mu;
  Kokkos::parallel_reduce(
      Kokkos::TeamThreadRange(team, C),
      [&](const int c, Real& acc) {
        const Real d = x[c] - m;
        acc += d * d;
      },
      ss);
  rs = Real(1) / math::sqrt(ss / C + eps);
  const Real r = rs;
  Kokkos::parallel_for(Kokkos::TeamThreadRange(team, C),
                       [&](const int c) { out[c] = (x[c] - m) * r * gamma(c) + beta(c); });
}

// x rounded to bf16 when `on` (a float branch in bf16 mode); doubles are never rounded.
KOKKOS_INLINE_FUNCTION float maybe_bf16(float x, bool on) {
  return on ? round_to_bf16(x) : x;
}
KOKKOS_INLINE_FUNCTION double maybe_bf16(double x, bool) {
  return x;
}

// The end of a forward row, for a team: the bias rows (W > 0, see RowBias) and the saved mean
// and rstd.
template <class Real, class Fill>
KOKKOS_INLINE_FUNCTION void finish_row(const Kokkos::TeamPolicy<ExecSpace>::member_type& team,
                                       int n, const Fill& fill, int W, const View1<Real>& mean,
                                       const View1<Real>& rstd, Real mu, Real rs) {
  if (W > 0) {
    Real* y = &fill.y(n, 0);
    Kokkos::parallel_for(Kokkos::TeamThreadRange(team, W), [&](const int j) { y[j] = fill.b(j); });
  }
  Kokkos::single(Kokkos::PerTeam(team), [&]() {
    mean(n) = mu;
    rstd(n) = rs;
  });
}

}  // namespace layernorm_detail

// An optional second output of a layernorm forward: y(n, :) = b for every row n it normalises.
// The linear layer that reads the normalised rows can then accumulate its product onto y
// (linear_forward with BiasMode::Preset) instead of launching a bias fill of its own: the team
// already owns row n, so the fill costs no launch. Empty y: none.
template <class Real>
struct RowBias {
  View2<Real> y;
  View1<const Real> b;
};

// x, out [N,C]; gamma, beta [C]; mean, rstd [N]; fill: see RowBias (y [N, b's extent]).
template <class Real>
void layernorm_forward(const ExecSpace& exec, View2<const Real> x, View1<const Real> gamma,
                       View1<const Real> beta, View2<Real> out, View1<Real> mean, View1<Real> rstd,
                       RowBias<Real> fill = {}, Real eps = Real(1e-5)) {
  using Policy = Kokkos::TeamPolicy<ExecSpace>;
  const int N = int(x.extent(0)), C = int(x.extent(1));
  const int W = fill.y.extent(0) > 0 ? int(fill.b.extent(0)) : 0;
  MOE_CHECK(W == 0 || (int(fill.y.extent(0)) == N && int(fill.y.extent(1)) == W),
            "layernorm: the bias rows must be [N, bias size]");
  Kokkos::parallel_for(
      "moe::layernorm_forward", Policy(exec, N, Kokkos::AUTO),
      KOKKOS_LAMBDA(const Policy::member_type& team) {
        const int n = team.league_rank();
        Real mu, rs;
        layernorm_detail::normalize_row(team, &x(n, 0), C, gamma, beta, &out(n, 0), eps, mu, rs);
        layernorm_detail::finish_row(team, n, fill, W, mean, rstd, mu, rs);
      });
}

// The branch a residual_layernorm_forward adds to the stream: y [N,C], plus bias [C] (empty:
// none) when the linear layer that produced y left its bias to this kernel. round_bf16: y + bias
// is rounded to bf16 before it joins the stream, as that layer's own bias add would have left
// it in bf16 mode (y then is the bf16-rounded product; floats only).
template <class Real>
struct ResidualBranch {
  View2<const Real> y;
  View1<const Real> bias = {};
  bool round_bf16 = false;
};

// The residual add fused with the layernorm that follows it (pre-LN blocks: every residual sum
// is normalised at once by the next sublayer or the final LN), one launch instead of two:
//   sum = res + (branch.y + branch.bias),  out = LN(sum) as layernorm_forward computes it.
// res, sum, out [N,C]; gamma, beta [C]; mean, rstd [N]; fill as in layernorm_forward.
template <class Real>
void residual_layernorm_forward(const ExecSpace& exec, View2<const Real> res,
                                ResidualBranch<Real> branch, View2<Real> sum,
                                View1<const Real> gamma, View1<const Real> beta, View2<Real> out,
                                View1<Real> mean, View1<Real> rstd, RowBias<Real> fill = {},
                                Real eps = Real(1e-5)) {
  using Policy = Kokkos::TeamPolicy<ExecSpace>;
  const int N = int(res.extent(0)), C = int(res.extent(1));
  const int W = fill.y.extent(0) > 0 ? int(fill.b.extent(0)) : 0;
  MOE_CHECK(W == 0 || (int(fill.y.extent(0)) == N && int(fill.y.extent(1)) == W),
            "layernorm: the bias rows must be [N, bias size]");
  const bool has_bias = branch.bias.extent(0) > 0;
  MOE_CHECK(!has_bias || int(branch.bias.extent(0)) == C, "residual: the bias must be [C]");
  const View2<const Real> y = branch.y;
  const View1<const Real> bias = branch.bias;
  const bool round = branch.round_bf16;
  Kokkos::parallel_for(
      "moe::residual_layernorm_forward", Policy(exec, N, Kokkos::AUTO),
      KOKKOS_LAMBDA(const Policy::member_type& team) {
        const int n = team.league_rank();
        const Real* a = &res(n, 0);
        const Real* b = &y(n, 0);
        Real* s = &sum(n, 0);
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, C), [&](const int c) {
          s[c] = a[c] + (has_bias ? layernorm_detail::maybe_bf16(b[c] + bias(c), round) : b[c]);
        });
        team.team_barrier();  // the row's sum is complete before any thread normalises it
        Real mu, rs;
        layernorm_detail::normalize_row(team, static_cast<const Real*>(s), C, gamma, beta,
                                        &out(n, 0), eps, mu, rs);
        layernorm_detail::finish_row(team, n, fill, W, mean, rstd, mu, rs);
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
