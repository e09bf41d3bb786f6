// MoEC cluster loss (Xie et al., AAAI 2023, arXiv 2207.09094). Experts form G = E / c contiguous
// clusters of c experts (cluster g holds experts g*c .. g*c + c - 1). From the batch-summed
// routing probability P_e = sum_n probs[n,e] each expert gets a load u_e = s * P_e, and
//   intra: L = f * (1/G) sum_g Var_g,
//          Var_g = 1/(c-1) sum_{e in g} (u_e - m_g)^2,  m_g = (1/c) sum_{e in g} u_e;
//   inter: L = f * 1/(G-1) sum_g (m_g - mu)^2,  mu = (1/G) sum_g m_g = (1/E) sum_e u_e.
// The scaling (s, f) decides what the loss measures:
//   ClusterLossScaling::share(E, T): s = E / T, f = 1. u_e = E * (mean probability of e) is 1
//     for a uniform router whatever E and the batch size T, so L is the within-cluster variance
//     of the experts' load relative to uniform: the same value for the same routing
//     distribution at any batch size, sequence length or E (this suite's default);
//   ClusterLossScaling::public_sum(E): s = 1, f = E: the public MoEC code's scaling (variance of
//     the batch-summed probabilities times E), which grows with T^2.
// Degenerate forms (intra with c < 2, inter with G < 2) are defined as 0 with zero gradient.
// Gradients (the deviations of a group sum to zero, so the mean's own derivative drops out):
//   intra: dL/dP_e = f * s * (1/G) * 2 (u_e - m_g(e)) / (c-1)
//   inter: dL/dP_e = f * s * 2 (m_g(e) - mu) / ((G-1) c)
// and since dP_e/dprobs[n,e] = 1, dprobs[n,e] += weight * dL/dP_e for every token n.
// E is small (tens): one thread per expert or cluster loops sequentially, which fixes the
// summation order (bit-reproducible); no floating-point atomics.
#pragma once

#include "common.hpp"

namespace moe {

enum class ClusterLossForm { intra, inter };

// The load scale s and the loss factor f of the header comment.
struct ClusterLossScaling {
  double load = 1.0;
  double factor = 1.0;
  // Loads relative to a uniform share: u_e = E * P_e / tokens (tokens = the global batch).
  static ClusterLossScaling share(int E, double tokens) {
    return {tokens > 0 ? double(E) / tokens : 0.0, 1.0};
  }
  // The public MoEC code: batch sums, loss times E.
  static ClusterLossScaling public_sum(int E) { return {1.0, double(E)}; }
};

// The loss of `form` from given batch-summed probabilities P[e] (with data parallelism: the
// sums over every rank's tokens).
template <class Real>
Real cluster_loss_from_sums(View1<const Real> P, int E, int cluster_size, ClusterLossForm form,
                            ClusterLossScaling scaling) {
  MOE_CHECK(cluster_size >= 1 && E % cluster_size == 0, "cluster_size must divide E");
  const int c = cluster_size, G = E / cluster_size;
  const Real s = Real(scaling.load);
  Real total = 0;
  if (form == ClusterLossForm::intra) {
    if (c < 2) return Real(0);
    Kokkos::parallel_reduce(
        "moe::cluster_loss_intra", range(G),
        KOKKOS_LAMBDA(const Index g, Real& acc) {
          Real m = 0;
          for (int i = 0; i < c; ++i) m += s * P(g * c + i);
          m /= Real(c);
          Real v = 0;
          for (int i = 0; i < c; ++i) {
            const Real d = s * P(g * c + i) - m;
            v += d * d;
          }
          acc += v / Real(c - 1);
        },
        total);
    return Real(scaling.factor) * total / Real(G);
  }
  if (G < 2) return Real(0);
  Kokkos::parallel_reduce(
      "moe::cluster_loss_inter", range(G),
      KOKKOS_LAMBDA(const Index g, Real& acc) {
        Real mu = 0;
        for (int e = 0; e < E; ++e) mu += s * P(e);
        mu /= Real(E);
        Real m = 0;
        for (int i = 0; i < c; ++i) m += s * P(g * c + i);
        m /= Real(c);
        acc += (m - mu) * (m - mu);
      },
      total);
  return Real(scaling.factor) * total / Real(G - 1);
}

// P[e] = sum_n probs[n,e] (tokens summed in row order), then the loss of `form`, returned.
template <class Real>
Real cluster_loss_forward(View1<const Real> probs, View1<Real> P, int N, int E, int cluster_size,
                          ClusterLossForm form, ClusterLossScaling scaling) {
  MOE_CHECK(cluster_size >= 1 && E % cluster_size == 0, "cluster_size must divide E");
  Kokkos::parallel_for(
      "moe::cluster_prob_sums", range(E), KOKKOS_LAMBDA(const Index e) {
        Real s = 0;
        for (Index n = 0; n < N; ++n) s += probs(n * E + e);
        P(e) = s;
      });
  return cluster_loss_from_sums<Real>(P, E, cluster_size, form, scaling);
}

// dprobs[n,e] += weight * dL/dP_e, with P [E] from cluster_loss_forward. dP [E] is scratch.
template <class Real>
void cluster_loss_backward(View1<const Real> P, Real weight, View1<Real> dP, View1<Real> dprobs,
                           int N, int E, int cluster_size, ClusterLossForm form,
                           ClusterLossScaling scaling) {
  MOE_CHECK(cluster_size >= 1 && E % cluster_size == 0, "cluster_size must divide E");
  const int c = cluster_size, G = E / cluster_size;
  if (form == ClusterLossForm::intra ? c < 2 : G < 2) return;
  const bool intra = form == ClusterLossForm::intra;
  const Real s = Real(scaling.load), scale = weight * Real(scaling.factor) * Real(scaling.load);
  Kokkos::parallel_for(
      "moe::cluster_loss_dP", range(E), KOKKOS_LAMBDA(const Index e) {
        const Index g = e / c;
        Real m = 0;
        for (int i = 0; i < c; ++i) m += s * P(g * c + i);
        m /= Real(c);
        if (intra) {
          dP(e) = scale * Real(2) * (s * P(e) - m) / (Real(G) * Real(c - 1));
        } else {
          Real mu = 0;
          for (int j = 0; j < E; ++j) mu += s * P(j);
          mu /= Real(E);
          dP(e) = scale * Real(2) * (m - mu) / (Real(G - 1) * Real(c));
        }
      });
  Kokkos::parallel_for(
      "moe::cluster_loss_backward", range(Index(N) * E),
      KOKKOS_LAMBDA(const Index i) { dprobs(i) += dP(i % E); });
}

}  // namespace moe
