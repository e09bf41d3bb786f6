// Router kernels: softmax, top-k, z-loss and balance loss against plain references, backward
// passes against finite differences.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "router.hpp"
#include "support.hpp"

using namespace moe;
using namespace moe::test;

namespace {
const double kNegInf = -std::numeric_limits<double>::infinity();

std::vector<double> ref_softmax(const std::vector<double>& x, int N, int E) {
  std::vector<double> p(x.size());
  for (int n = 0; n < N; ++n) {
    double m = kNegInf;
    for (int e = 0; e < E; ++e) m = std::max(m, x[n * E + e]);
    double s = 0;
    for (int e = 0; e < E; ++e) s += std::exp(x[n * E + e] - m);
    for (int e = 0; e < E; ++e) p[n * E + e] = std::exp(x[n * E + e] - m) / s;
  }
  return p;
}

double ref_zloss(const std::vector<double>& x, int N, int E) {
  double total = 0;
  for (int n = 0; n < N; ++n) {
    double m = kNegInf;
    for (int e = 0; e < E; ++e) m = std::max(m, x[n * E + e]);
    double s = 0;
    for (int e = 0; e < E; ++e) s += std::exp(x[n * E + e] - m);
    const double lse = m + std::log(s);
    total += lse * lse;
  }
  return total / N;
}

// Logits with a few masked (-inf) experts; every row keeps at least one finite logit.
std::vector<double> masked_logits(int N, int E, std::uint64_t seed) {
  auto x = random_vector(std::size_t(N) * E, seed, -3.0, 3.0);
  for (int n = 0; n < N; ++n)
    for (int e = 0; e < E; ++e)
      if ((n * 7 + e * 3) % 5 == 0 && e != n % E) x[n * E + e] = kNegInf;
  return x;
}

// Indices of the entries of x that are finite.
std::vector<std::size_t> finite_entries(const std::vector<double>& x) {
  std::vector<std::size_t> idx;
  for (std::size_t i = 0; i < x.size(); ++i)
    if (std::isfinite(x[i])) idx.push_back(i);
  return idx;
}

std::vector<double> gather(const std::vector<double>& v, const std::vector<std::size_t>& idx) {
  std::vector<double> out;
  for (auto i : idx) out.push_back(v[i]);
  return out;
}

// The balance loss as separate kernels: the reference the fused balance_stats_forward and
// topk_route_backward are checked against (the suite itself no longer runs these).
// counts[e] = entries a < A of expert_of with a % stride == 0 that name expert e (-1 = unused
// slot). stride = k counts only each token's first choice (slot 0). Integer atomics: the
// counts do not depend on the order.
inline void count_assignments(View1<const int> expert_of, View1<int> counts, int E, Index A,
                              int stride = 1) {
  Kokkos::parallel_for(
      "moe::balance_counts_zero", range(E), KOKKOS_LAMBDA(const Index e) { counts(e) = 0; });
  Kokkos::parallel_for(
      "moe::balance_counts", range(A), KOKKOS_LAMBDA(const Index a) {
        const int e = expert_of(a);
        if (a % stride == 0 && e >= 0 && e < E) Kokkos::atomic_add(&counts(e), 1);
      });
}

// Switch-Transformer load-balance loss E * sum_e f_e P_e, where f_e is the fraction of routed
// copies that went to expert e (counted over the A entries of expert_of with a % stride == 0;
// -1 = unused slot) and P_e the mean router probability of expert e. With stride = k only first
// choices count (GShard and Switch define f by a token's top expert); stride = 1 counts all k.
// f is piecewise constant in the logits, so the gradient flows only through P; counts[e] is
// kept for the backward pass. Returns 0 when nothing is routed.
template <class Real>
Real balance_loss_forward(View1<const Real> probs, View1<const int> expert_of, View1<int> counts,
                          int N, int E, Index A, int stride = 1) {
  count_assignments(expert_of, counts, E, A, stride);
  if (N == 0) return Real(0);
  // sum_e f_e * (sum_n p[n,e]) in one reduction (a host read is a sync): one thread per expert
  // sums its column in row order, and each forms f_e = counts[e] / sum(counts) itself (E is
  // small). Nothing assigned: every term is 0.
  Real weighted = 0;
  Kokkos::parallel_reduce(
      "moe::balance_loss_forward", range(E),
      KOKKOS_LAMBDA(const Index e, Real& acc) {
        Index assigned = 0;
        for (int j = 0; j < E; ++j) assigned += counts(j);
        if (assigned == 0) return;
        Real col = 0;
        for (Index n = 0; n < N; ++n) col += probs(n * E + e);
        acc += Real(counts(e)) * col / Real(assigned);
      },
      weighted);
  return Real(E) * weighted / Real(N);
}

// dprobs[n,e] += weight * E * f_e / N, with f_e = counts[e] / sum(counts) held fixed.
template <class Real>
void balance_loss_backward(View1<const int> counts, Real weight, View1<Real> dprobs, int N, int E) {
  if (N == 0) return;
  const Real scale = weight * Real(E) / Real(N);
  // sum(counts) on the device, per element (E is small): no host read.
  Kokkos::parallel_for(
      "moe::balance_loss_backward", range(Index(N) * E), KOKKOS_LAMBDA(const Index i) {
        Index assigned = 0;
        for (int j = 0; j < E; ++j) assigned += counts(j);
        if (assigned > 0) dprobs(i) += scale * Real(counts(i % E)) / Real(assigned);
      });
}

}  // namespace

TEST(Router, SoftmaxForwardMatchesReferenceWithMaskedExperts) {
  const int N = 9, E = 7;
  auto x = masked_logits(N, E, 11);
  int masked = 0;
  for (double v : x) masked += std::isinf(v);
  ASSERT_GT(masked, 0);
  Buffer<double> p("p", N * E);
  softmax_rows_forward<double>(to_device(x), p, N, E);
  auto got = to_host(p);
  for (std::size_t i = 0; i < x.size(); ++i) {
    EXPECT_FALSE(std::isnan(got[i])) << i;
    if (std::isinf(x[i])) {
      EXPECT_EQ(got[i], 0.0) << i;  // exactly zero
    }
  }
  EXPECT_LT(rel_error(got, ref_softmax(x, N, E)), 1e-14);
}

TEST(Router, SoftmaxForwardFloatIsStableForLargeLogits) {
  const int N = 2, E = 3;
  std::vector<float> x = {1000.f, 999.f,  -std::numeric_limits<float>::infinity(),
                          -500.f, -501.f, -502.f};
  Buffer<float> p("p", N * E);
  softmax_rows_forward<float>(to_device(x), p, N, E);
  auto got = to_host(p);
  for (float v : got) EXPECT_TRUE(std::isfinite(v));
  EXPECT_EQ(got[2], 0.f);
  EXPECT_NEAR(got[0], 1.0 / (1.0 + std::exp(-1.0)), 1e-6);
  EXPECT_NEAR(got[3] + got[4] + got[5], 1.0, 1e-6);
}

TEST(Router, SoftmaxBackwardMatchesFiniteDifferences) {
  const int N = 6, E = 5;
  auto x = masked_logits(N, E, 12);
  auto r = random_vector(N * E, 13);  // loss = sum(p * r)
  auto forward = [&]() {
    Buffer<double> p("p", N * E);
    softmax_rows_forward<double>(to_device(x), p, N, E);
    return dot(to_host(p), r);
  };
  Buffer<double> p("p", N * E);
  softmax_rows_forward<double>(to_device(x), p, N, E);
  auto g0 = random_vector(N * E, 14);  // backward accumulates onto whatever is there
  auto g = to_device(g0);
  softmax_rows_backward<double>(p, to_device(r), g, N, E);
  auto got = to_host(g);
  for (std::size_t i = 0; i < got.size(); ++i) got[i] -= g0[i];
  auto num = numeric_gradient(x, forward);
  auto fin = finite_entries(x);
  EXPECT_LT(rel_error(gather(got, fin), gather(num, fin)), 1e-6);
  for (std::size_t i = 0; i < x.size(); ++i)
    if (std::isinf(x[i])) {
      EXPECT_EQ(got[i], 0.0) << i;
    }
}

TEST(Router, TopkMatchesReferenceWithTies) {
  const int N = 25, E = 8, k = 3;
  // Values on a coarse grid so that ties are frequent.
  auto u = random_vector(N * E, 21, 0.0, 4.0);
  std::vector<double> p(u.size());
  for (std::size_t i = 0; i < u.size(); ++i) p[i] = std::floor(u[i]) / 4.0;
  Buffer<int> idx("idx", N * k);
  Buffer<double> val("val", N * k);
  topk_rows<double>(to_device(p), idx, val, N, E, k);
  auto gi = to_host(idx);
  auto gv = to_host(val);
  int ties = 0;
  for (int n = 0; n < N; ++n) {
    std::vector<int> order(E);
    std::iota(order.begin(), order.end(), 0);
    // Stable sort by value descending keeps the lower index first among equal values.
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return p[n * E + a] > p[n * E + b]; });
    for (int j = 0; j < k; ++j) {
      EXPECT_EQ(gi[n * k + j], order[j]) << "row " << n << " pick " << j;
      EXPECT_EQ(gv[n * k + j], p[n * E + order[j]]);
    }
    for (int j = 0; j + 1 < E; ++j) ties += p[n * E + order[j]] == p[n * E + order[j + 1]];
  }
  EXPECT_GT(ties, 0);
}

TEST(Router, TopkWithKEqualsEIsAFullSort) {
  const int N = 3, E = 4;
  std::vector<double> p = {0.1, 0.4, 0.4, 0.1, 0.25, 0.25, 0.25, 0.25, 0.0, 0.0, 1.0, 0.0};
  Buffer<int> idx("idx", N * E);
  Buffer<double> val("val", N * E);
  topk_rows<double>(to_device(p), idx, val, N, E, E);
  std::vector<int> want = {1, 2, 0, 3, 0, 1, 2, 3, 2, 0, 1, 3};
  EXPECT_EQ(to_host(idx), want);
}

TEST(Router, TopkBackwardMatchesFiniteDifferences) {
  const int N = 7, E = 6, k = 2;
  auto p = random_vector(N * E, 31, 0.0, 1.0);  // distinct values: selection stable under h
  auto r = random_vector(N * k, 32);            // loss = sum(val * r)
  Buffer<int> idx("idx", N * k);
  auto forward = [&]() {
    Buffer<double> val("val", N * k);
    topk_rows<double>(to_device(p), idx, val, N, E, k);
    return dot(to_host(val), r);
  };
  forward();
  auto g0 = random_vector(N * E, 33);
  auto g = to_device(g0);
  topk_backward<double>(idx, to_device(r), g, N, E, k);
  auto got = to_host(g);
  for (std::size_t i = 0; i < got.size(); ++i) got[i] -= g0[i];
  EXPECT_LT(rel_error(got, numeric_gradient(p, forward)), 1e-6);
}

TEST(Router, ZLossForwardMatchesReference) {
  const int N = 8, E = 5;
  auto x = masked_logits(N, E, 41);
  const double got = router_zloss_forward<double>(to_device(x), N, E);
  EXPECT_NEAR(got, ref_zloss(x, N, E), 1e-13 * std::abs(ref_zloss(x, N, E)));
}

TEST(Router, ZLossBackwardMatchesFiniteDifferences) {
  const int N = 6, E = 4;
  const double weight = 0.7;
  auto x = masked_logits(N, E, 42);
  auto forward = [&]() { return weight * router_zloss_forward<double>(to_device(x), N, E); };
  auto g0 = random_vector(N * E, 43);
  auto g = to_device(g0);
  router_zloss_backward<double>(to_device(x), weight, g, N, E);
  auto got = to_host(g);
  for (std::size_t i = 0; i < got.size(); ++i) got[i] -= g0[i];
  auto num = numeric_gradient(x, forward);
  auto fin = finite_entries(x);
  EXPECT_LT(rel_error(gather(got, fin), gather(num, fin)), 1e-6);
  for (std::size_t i = 0; i < x.size(); ++i)
    if (std::isinf(x[i])) {
      EXPECT_EQ(got[i], 0.0) << i;
    }
}

TEST(Router, BalanceLossHandComputedExample) {
  // N=4 tokens, E=2 experts, k=1:
  //   probs = [0.7 0.3; 0.6 0.4; 0.2 0.8; 0.9 0.1], expert_of = argmax = [0, 0, 1, 0]
  //   counts = [3, 1], f = [3/4, 1/4], P = [(0.7+0.6+0.2+0.9)/4, (0.3+0.4+0.8+0.1)/4] = [0.6, 0.4]
  //   loss = E * (f0 P0 + f1 P1) = 2 * (0.45 + 0.1) = 1.1
  // With token 1's slot unused (expert_of = [0, -1, 1, 0]): counts = [2, 1], f = [2/3, 1/3],
  //   loss = 2 * (2/3 * 0.6 + 1/3 * 0.4) = 2 * (0.4 + 0.4/3) = 16/15.
  const int N = 4, E = 2;
  std::vector<double> p = {0.7, 0.3, 0.6, 0.4, 0.2, 0.8, 0.9, 0.1};
  auto dp = to_device(p);
  Buffer<int> counts("counts", E);
  auto loss = [&](const std::vector<int>& expert_of) {  // the suite's kernel, and the reference
    Buffer<int> ref_counts("ref_counts", E);
    const double ref = balance_loss_forward<double>(dp, to_device(expert_of), ref_counts, N, E, 4);
    const double got =
        balance_stats_forward<double>(dp, to_device(expert_of), counts, {}, {}, N, E, 4, 1).balance;
    EXPECT_EQ(to_host(ref_counts), to_host(counts));
    EXPECT_NEAR(got, ref, 1e-15);
    return got;
  };
  EXPECT_NEAR(loss({0, 0, 1, 0}), 1.1, 1e-15);
  EXPECT_EQ(to_host(counts), (std::vector<int>{3, 1}));
  EXPECT_NEAR(loss({0, -1, 1, 0}), 16.0 / 15.0, 1e-15);
  EXPECT_EQ(to_host(counts), (std::vector<int>{2, 1}));
  // Nothing routed: loss 0, counts 0.
  EXPECT_EQ(loss({-1, -1, -1, -1}), 0.0);
  EXPECT_EQ(to_host(counts), (std::vector<int>{0, 0}));
}

TEST(Router, BalanceLossMatchesReferenceAndFiniteDifferences) {
  const int N = 10, E = 5, K = 2;
  const Index A = Index(N) * K;
  auto p = random_vector(N * E, 51, 0.0, 1.0);
  std::vector<int> expert_of(A);
  auto u = random_vector(A, 52, -1.0, double(E));
  for (Index a = 0; a < A; ++a) expert_of[a] = int(std::floor(u[a]));  // some -1
  // Reference.
  std::vector<int> cnt(E, 0);
  int assigned = 0;
  for (int e : expert_of)
    if (e >= 0) ++cnt[e], ++assigned;
  double ref = 0;
  for (int e = 0; e < E; ++e) {
    double P = 0;
    for (int n = 0; n < N; ++n) P += p[n * E + e];
    ref += double(cnt[e]) / assigned * (P / N);
  }
  ref *= E;
  auto de = to_device(expert_of);
  Buffer<int> counts("counts", E);
  EXPECT_NEAR(balance_loss_forward<double>(to_device(p), de, counts, N, E, A), ref, 1e-14);
  EXPECT_EQ(to_host(counts), cnt);
  Buffer<int> got_counts("got_counts", E);  // the suite's kernel
  EXPECT_NEAR(
      balance_stats_forward<double>(to_device(p), de, got_counts, {}, {}, N, E, A, 1).balance, ref,
      1e-14);
  EXPECT_EQ(to_host(got_counts), cnt);
  // Gradient w.r.t. probs with the assignments (hence counts) held fixed.
  const double weight = 0.3;
  auto forward = [&]() {
    Buffer<int> c("c", E);
    return weight * balance_loss_forward<double>(to_device(p), de, c, N, E, A);
  };
  auto g0 = random_vector(N * E, 53);
  auto g = to_device(g0);
  balance_loss_backward<double>(counts, weight, g, N, E);
  auto got = to_host(g);
  for (std::size_t i = 0; i < got.size(); ++i) got[i] -= g0[i];
  EXPECT_LT(rel_error(got, numeric_gradient(p, forward)), 1e-6);
}

// The fused top-k routing kernels do what the separate ones do: same probabilities, picks and
// gates (bit for bit: same arithmetic), same z-loss, same balance statistics.
TEST(Router, FusedForwardMatchesSeparateKernels) {
  const int N = 37, E = 7, k = 2;
  const Index A = Index(N) * k;
  auto x = to_device(masked_logits(N, E, 61));
  Buffer<double> p1("p1", N * E), v1("v1", A), p2("p2", N * E), v2("v2", A), lse2("lse2", N);
  Buffer<int> i1("i1", A), i2("i2", A);
  softmax_rows_forward<double>(x, p1, N, E);
  topk_rows<double>(p1, i1, v1, N, E, k);
  topk_route_forward<double>(x, p2, i2, v2, lse2, N, E, k);
  EXPECT_EQ(to_host(p2), to_host(p1));
  EXPECT_EQ(to_host(i2), to_host(i1));
  EXPECT_EQ(to_host(v2), to_host(v1));

  // Balance statistics over first choices (stride k), with every assignment counted too; some
  // slots unused (-1).
  auto idx = to_host(i1);
  for (Index a = 3; a < A; a += 5) idx[a] = -1;
  auto de = to_device(idx);
  Buffer<int> f_want("f", E), all_want("all", E), f_got("f", E), all_got("all", E);
  Buffer<double> sums("sums", E);
  const double want = balance_loss_forward<double>(p1, de, f_want, N, E, A, k);
  count_assignments(de, all_want, E, A);
  const auto got = balance_stats_forward<double>(p1, de, f_got, all_got, sums, N, E, A, k, lse2);
  EXPECT_NEAR(got.balance, want, 1e-14);
  EXPECT_NEAR(got.z, router_zloss_forward<double>(x, N, E), 1e-12);  // the z-loss, summed here
  EXPECT_EQ(balance_stats_forward<double>(p1, de, f_got, {}, {}, N, E, A, k).z, 0.0);  // no lse2
  EXPECT_EQ(to_host(f_got), to_host(f_want));
  EXPECT_EQ(to_host(all_got), to_host(all_want));
  auto p = to_host(p1);
  for (int e = 0; e < E; ++e) {
    double col = 0;
    for (int n = 0; n < N; ++n) col += p[n * E + e];
    EXPECT_NEAR(to_host(sums)[e], col, 1e-14);
  }
}

// Loss = sum_a r[a] * gate[a] + wb * balance + wz * zloss as a function of the logits, with the
// picks (and so the balance counts) held fixed: the fused backward against finite differences.
TEST(Router, FusedBackwardMatchesFiniteDifferences) {
  const int N = 9, E = 5, k = 2;
  const Index A = Index(N) * k;
  const double wb = 0.7, wz = 0.4;
  auto x = random_vector(N * E, 62, -2.0, 2.0);
  auto r = random_vector(A, 63);
  Buffer<double> probs("p", N * E), gate("g", A), lse2("lse2", N);
  Buffer<int> idx("i", A), counts("c", E);
  topk_route_forward<double>(to_device(x), probs, idx, gate, lse2, N, E, k);
  const auto picks = to_host(idx);
  balance_stats_forward<double>(probs, idx, counts, {}, {}, N, E, A, k);
  auto loss = [&]() {
    auto xd = to_device(x);
    Buffer<double> p("p", N * E);
    softmax_rows_forward<double>(xd, p, N, E);
    const auto ph = to_host(p);
    double l = 0;
    for (Index a = 0; a < A; ++a) l += r[a] * ph[(a / k) * E + picks[a]];
    Buffer<int> c("c", E);
    l += wb * balance_loss_forward<double>(p, to_device(picks), c, N, E, A, k);
    return l + wz * router_zloss_forward<double>(xd, N, E);
  };
  // dlogits is written: what it held before must not matter.
  auto dl = to_device(random_vector(N * E, 64));
  topk_route_backward<double>(probs, idx, to_device(r), {}, counts, wb * E / N, to_device(x),
                              wz * 2 / N, dl, N, E, k, /*accumulate=*/false);
  EXPECT_LT(rel_error(to_host(dl), numeric_gradient(x, loss)), 1e-6);

  // With the gate gradients already turned into dprobs, and accumulating: the separate kernels.
  auto dp = to_device(random_vector(N * E, 65));
  auto start = random_vector(N * E, 66);
  auto want = to_device(start), got = to_device(start);
  Buffer<double> dp_total("dp", N * E);
  Kokkos::deep_copy(dp_total, dp);
  balance_loss_backward<double>(counts, wb, dp_total, N, E);
  softmax_rows_backward<double>(probs, dp_total, want, N, E);
  router_zloss_backward<double>(to_device(x), wz, want, N, E);
  topk_route_backward<double>(probs, idx, to_device(r), dp, counts, wb * E / N, to_device(x),
                              wz * 2 / N, got, N, E, k, /*accumulate=*/true);
  EXPECT_LT(rel_error(to_host(got), to_host(want)), 1e-12);
}
