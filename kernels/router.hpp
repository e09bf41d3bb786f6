// The MoE router after its linear layer: a row softmax over experts, top-k selection, and the
// two auxiliary losses that keep routing healthy (ST-MoE z-loss on the logits, Switch load
// balance on the probabilities). One thread owns one row of E experts: E is small (tens), so a
// sequential loop per row is cheap and gives a fixed summation order (bit-reproducible).
#pragma once

#include <Kokkos_Complex.hpp>
#include <cmath>
#include <limits>

#include "common.hpp"

namespace moe {

namespace router_detail {
// probs[row..row+E) = softmax of logits there; returns false (and zero probabilities) when every
// logit is -inf (or NaN), else true with the row's max m and sum s of exp(logit - m).
template <class Real>
KOKKOS_INLINE_FUNCTION bool softmax_row(const View1<const Real>& logits, const View1<Real>& probs,
                                        Index row, int E, Real lowest, Real& m, Real& s) {
  m = logits(row);
  for (int e = 1; e < E; ++e) m = logits(row + e) > m ? logits(row + e) : m;
  if (!(m >= lowest)) {
    for (int e = 0; e < E; ++e) probs(row + e) = Real(0);
    return false;
  }
  s = 0;
  for (int e = 0; e < E; ++e) {
    const Real v = math::exp(logits(row + e) - m);
    probs(row + e) = v;
    s += v;
  }
  const Real inv = Real(1) / s;
  for (int e = 0; e < E; ++e) probs(row + e) *= inv;
  return true;
}

// The k largest of probs[row..row+E) into idx/val[out..out+k), as topk_rows describes.
template <class Real, class Probs>
KOKKOS_INLINE_FUNCTION void topk_row(const Probs& probs, Index row, const View1<int>& idx,
                                     const View1<Real>& val, Index out, int E, int k) {
  int prev_i = -1;
  Real prev_v = 0;
  for (int j = 0; j < k; ++j) {
    int best = -1;
    Real best_v = 0;
    for (int e = 0; e < E; ++e) {
      const Real v = probs(row + e);
      const bool after_prev = j == 0 || v < prev_v || (v == prev_v && e > prev_i);
      // Strict '>' while scanning e upward keeps the lower index on ties.
      if (after_prev && (best < 0 || v > best_v)) {
        best = e;
        best_v = v;
      }
    }
    idx(out + j) = best;
    val(out + j) = best_v;
    prev_i = best;
    prev_v = best_v;
  }
}
}  // namespace router_detail

// probs[n,:] = softmax(logits[n,:]), max-subtracted for stability. A masked expert has logit
// -inf: exp(-inf - max) is exactly 0, so its probability is exactly 0 without a special case,
// provided the row has one finite logit (the caller's guarantee). A row that is masked
// entirely gets all-zero probabilities instead of NaN (defensive; no expert is preferred).
template <class Real>
void softmax_rows_forward(View1<const Real> logits, View1<Real> probs, int N, int E) {
  const Real lowest = std::numeric_limits<Real>::lowest();  // on the host: no constexpr on device
  Kokkos::parallel_for(
      "moe::softmax_rows_forward", range(N), KOKKOS_LAMBDA(const Index n) {
        Real m, s;
        router_detail::softmax_row(logits, probs, n * E, E, lowest, m, s);
      });
}

// dlogits[n,e] += p[n,e] * (dp[n,e] - sum_j dp[n,j] p[n,j]). Masked experts have p = 0 and so
// receive no gradient.
template <class Real>
void softmax_rows_backward(View1<const Real> probs, View1<const Real> dprobs, View1<Real> dlogits,
                           int N, int E) {
  Kokkos::parallel_for(
      "moe::softmax_rows_backward", range(N), KOKKOS_LAMBDA(const Index n) {
        const Index row = n * E;
        Real d = 0;
        for (int e = 0; e < E; ++e) d += dprobs(row + e) * probs(row + e);
        for (int e = 0; e < E; ++e) dlogits(row + e) += probs(row + e) * (dprobs(row + e) - d);
      });
}

// The k largest probabilities of each row, in descending order, ties to the lower expert index.
// Selection without scratch memory: the j-th pick is the largest entry that comes strictly after
// the (j-1)-th pick in the order (value descending, index ascending). That order is total, so
// every pick is distinct; cost O(k E) per row, fine for small k.
template <class Real>
void topk_rows(View1<const Real> probs, View1<int> idx, View1<Real> val, int N, int E, int k) {
  MOE_CHECK(k >= 1 && k <= E, "topk_rows needs 1 <= k <= E");
  Kokkos::parallel_for(
      "moe::topk_rows", range(N), KOKKOS_LAMBDA(const Index n) {
        router_detail::topk_row<Real>(probs, n * E, idx, val, n * k, E, k);
      });
}

// dprobs[n, idx[n,j]] += dval[n,j]. The k picks of a row are distinct and one thread owns the
// row, so there is no write conflict. Negative indices (an unused slot) are skipped.
template <class Real>
void topk_backward(View1<const int> idx, View1<const Real> dval, View1<Real> dprobs, int N, int E,
                   int k) {
  Kokkos::parallel_for(
      "moe::topk_backward", range(N), KOKKOS_LAMBDA(const Index n) {
        for (int j = 0; j < k; ++j) {
          const int e = idx(n * k + j);
          if (e >= 0) dprobs(n * E + e) += dval(n * k + j);
        }
      });
}

// logsumexp of one row of E logits, max-subtracted, with its parts (the z-loss backward needs
// them to form the softmax): lse = max + log(sum), sum = sum_e exp(logits[row + e] - max).
template <class Real>
struct RowLogSumExp {
  Real max, sum, lse;
  KOKKOS_INLINE_FUNCTION RowLogSumExp(const View1<const Real>& logits, Index row, int E) {
    max = logits(row);
    for (int e = 1; e < E; ++e) max = logits(row + e) > max ? logits(row + e) : max;
    sum = 0;
    for (int e = 0; e < E; ++e) sum += math::exp(logits(row + e) - max);
    lse = max + math::log(sum);
  }
};

// ST-MoE z-loss: mean over rows of logsumexp(logits[n,:])^2. It penalises large logits, which
// keeps the router's softmax out of the range where float round-off dominates. -inf entries
// add 0 to the sum of exps.
template <class Real>
Real router_zloss_forward(View1<const Real> logits, int N, int E) {
  Real total = 0;
  Kokkos::parallel_reduce(
      "moe::router_zloss_forward", range(N),
      KOKKOS_LAMBDA(const Index n, Real& acc) {
        const RowLogSumExp<Real> r(logits, n * E, E);
        acc += r.lse * r.lse;
      },
      total);
  return N > 0 ? total / Real(N) : Real(0);
}

// d(weight * z-loss)/dlogits[n,e] = weight * 2 lse_n / N * softmax(logits[n,:])[e]; accumulates.
template <class Real>
void router_zloss_backward(View1<const Real> logits, Real weight, View1<Real> dlogits, int N,
                           int E) {
  Kokkos::parallel_for(
      "moe::router_zloss_backward", range(N), KOKKOS_LAMBDA(const Index n) {
        const Index row = n * E;
        const RowLogSumExp<Real> r(logits, row, E);
        const Real scale = weight * Real(2) * r.lse / Real(N) / r.sum;
        for (int e = 0; e < E; ++e) dlogits(row + e) += scale * math::exp(logits(row + e) - r.max);
      });
}

// ---- Fused top-k routing: the kernels above, fewer launches -----------------------------------
// A top-k router's forward is softmax_rows_forward + topk_rows + router_zloss_forward over the
// same rows, plus the balance statistics per expert; its backward is topk_backward + the balance
// gradient + softmax_rows_backward + router_zloss_backward, row by row. Fused: two launches forward
// (one host read), one backward (each launch costs a few microseconds on a GPU, as much as the work
// at these sizes). Same arithmetic in the same order as the separate kernels; kernel_test_router
// checks them against each other.

// Per row n: probs = softmax(logits), the top k (as topk_rows), and lse2[n] = lse_n^2 for the
// z-loss (summed by balance_stats_forward, so that the forward reads the host once). An entirely
// masked row gets all-zero probabilities, the picks topk_rows gives those, and lse2 = 0.
template <class Real>
void topk_route_forward(View1<const Real> logits, View1<Real> probs, View1<int> idx,
                        View1<Real> val, View1<Real> lse2, int N, int E, int k) {
  MOE_CHECK(k >= 1 && k <= E, "topk_route_forward needs 1 <= k <= E");
  const Real lowest = std::numeric_limits<Real>::lowest();  // on the host: no constexpr on device
  Kokkos::parallel_for(
      "moe::topk_route_forward", range(N), KOKKOS_LAMBDA(const Index n) {
        Real m = 0, s = 1;
        const bool finite = router_detail::softmax_row(logits, probs, n * E, E, lowest, m, s);
        const Real lse = m + math::log(s);
        lse2(n) = finite ? lse * lse : Real(0);
        router_detail::topk_row<Real>(probs, n * E, idx, val, n * k, E, k);
      });
}

// What balance_stats_forward returns: the Switch balance loss E * sum_e f_e P_e, and the mean of
// lse2 (the z-loss) when lse2 was given (else 0).
template <class Real>
struct BalanceAndZ {
  Real balance = 0, z = 0;
};

// The Switch-Transformer load-balance loss E * sum_e f_e P_e, where f_e is the fraction of
// routed copies that went to expert e (counted over the A entries of expert_of with
// a % stride == 0; -1 = unused slot) and P_e the mean router probability of expert e. With
// stride = k only first choices count (GShard and Switch define f by a token's top expert);
// stride = 1 counts all k. f is piecewise constant in the logits, so the gradient flows only
// through P (topk_route_backward); f_counts is kept for it. 0 when nothing is routed.
// One team per expert e: f_counts[e] = entries a < A with a % stride == 0 naming e,
// all_counts[e] (when given) = every entry naming e, col_sums[e] (when given) = sum_n p[n,e],
// and its term f_counts[e] P_e / assigned (each team also counts the assigned entries: E is
// small and a host read would block). With lse2 [N] given, one more team sums it
// for the z-loss. Both sums leave in one reduction, as the real and imaginary parts of a
// Kokkos::complex (Kokkos reduces those on every backend and version), so the router's forward
// reads the host once.
template <class Real>
BalanceAndZ<Real> balance_stats_forward(View1<const Real> probs, View1<const int> expert_of,
                                        View1<int> f_counts, View1<int> all_counts,
                                        View1<double> col_sums, int N, int E, Index A, int stride,
                                        View1<const Real> lse2 = {}) {
  using Policy = Kokkos::TeamPolicy<ExecSpace>;
  using Sums = Kokkos::complex<Real>;  // (balance's weighted sum, sum of lse^2)
  const bool want_all = all_counts.extent(0) > 0, want_sums = col_sums.extent(0) > 0;
  const bool want_z = lse2.extent(0) > 0;
  Sums sums(0, 0);
  Kokkos::parallel_reduce(
      "moe::balance_stats_forward", Policy(E + (want_z ? 1 : 0), Kokkos::AUTO),
      KOKKOS_LAMBDA(const Policy::member_type& team, Sums& acc) {
        const int e = team.league_rank();
        if (e == E) {  // the z-loss team
          Real z = 0;
          Kokkos::parallel_reduce(
              Kokkos::TeamThreadRange(team, N), [&](const Index n, Real& t) { t += lse2(n); }, z);
          Kokkos::single(Kokkos::PerTeam(team), [&]() { acc += Sums(0, z); });
          return;
        }
        Index f = 0, all = 0, assigned = 0;
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(team, A),
            [&](const Index a, Index& c) {
              const int x = expert_of(a);
              c += a % stride == 0 && x == e ? 1 : 0;
            },
            f);
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(team, A),
            [&](const Index a, Index& c) {
              const int x = expert_of(a);
              c += a % stride == 0 && x >= 0 && x < E ? 1 : 0;
            },
            assigned);
        if (want_all)
          Kokkos::parallel_reduce(
              Kokkos::TeamThreadRange(team, A),
              [&](const Index a, Index& c) { c += expert_of(a) == e ? 1 : 0; }, all);
        Real col = 0;
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(team, N),
            [&](const Index n, Real& c) { c += probs(n * E + e); }, col);
        Kokkos::single(Kokkos::PerTeam(team), [&]() {
          f_counts(e) = int(f);
          if (want_all) all_counts(e) = int(all);
          if (want_sums) col_sums(e) = double(col);
          if (assigned > 0) acc += Sums(Real(f) * col / Real(assigned), 0);
        });
      },
      sums);
  BalanceAndZ<Real> out;
  if (N > 0) {
    out.balance = Real(E) * sums.real() / Real(N);
    out.z = sums.imag() / Real(N);
  }
  return out;
}

// Per row n, dlogits[n,:] = (or +=, with accumulate) the softmax backward of
//   dp[e] = dprobs_in[n,e] (when given) or the row's top-k gate gradients (dgate[n,j] at
//           expert idx[n,j], unused slots -1 skipped)
//         + balance_scale * f_counts[e] / sum(f_counts)          (balance_scale = w E / N)
// plus the z-loss gradient z_scale * lse_n / sum_n * exp(logit - max)  (z_scale = w 2 / N).
// A zero scale skips its term.
template <class Real>
void topk_route_backward(View1<const Real> probs, View1<const int> idx, View1<const Real> dgate,
                         View1<const Real> dprobs_in, View1<const int> f_counts, Real balance_scale,
                         View1<const Real> logits, Real z_scale, View1<Real> dlogits, int N, int E,
                         int k, bool accumulate) {
  const bool given = dprobs_in.extent(0) > 0;
  Kokkos::parallel_for(
      "moe::topk_route_backward", range(N), KOKKOS_LAMBDA(const Index n) {
        const Index row = n * E;
        Index assigned = 0;
        if (balance_scale != Real(0))
          for (int j = 0; j < E; ++j) assigned += f_counts(j);
        // dp[e], recomputed where needed: E and k are small, and no per-row scratch is needed.
        auto dp = [&](const int e) {
          Real v = 0;
          if (given) {
            v = dprobs_in(row + e);
          } else {
            for (int j = 0; j < k; ++j)
              if (idx(n * k + j) == e) v += dgate(n * k + j);
          }
          if (assigned > 0) v += balance_scale * Real(f_counts(e)) / Real(assigned);
          return v;
        };
        Real d = 0;
        for (int e = 0; e < E; ++e) d += dp(e) * probs(row + e);
        Real zs = 0, zmax = 0;
        if (z_scale != Real(0)) {
          const RowLogSumExp<Real> r(logits, row, E);
          zs = z_scale * r.lse / r.sum;
          zmax = r.max;
        }
        for (int e = 0; e < E; ++e) {
          Real g = probs(row + e) * (dp(e) - d);
          if (z_scale != Real(0)) g += zs * math::exp(logits(row + e) - zmax);
          dlogits(row + e) = accumulate ? dlogits(row + e) + g : g;
        }
      });
}

}  // namespace moe
