// MoEC cluster loss: a hand-computed example, a plain reference on random inputs, and the
// backward pass against finite differences, for both forms (intra, inter) and both scalings
// (share: loads relative to uniform, the default; public_sum: the public code's batch sums);
// the share scaling gives the same value for batches of 4 and 16 tokens from one distribution.
#include <cmath>
#include <vector>

#include "cluster_loss.hpp"
#include "support.hpp"

using namespace moe;
using namespace moe::test;

namespace {

// Plain two-pass reference of kernels/cluster_loss.hpp's definitions.
double ref_cluster_loss(const std::vector<double>& probs, int N, int E, int c, bool inter,
                        bool share = false) {
  const int G = E / c;
  std::vector<double> P(E, 0.0), m(G, 0.0);
  for (int n = 0; n < N; ++n)
    for (int e = 0; e < E; ++e) P[e] += probs[n * E + e];
  // share: loads E * mean probability, loss factor 1; public: sums, loss factor E.
  const double load = share ? double(E) / N : 1.0, factor = share ? 1.0 : double(E);
  for (double& v : P) v *= load;
  for (int e = 0; e < E; ++e) m[e / c] += P[e] / c;
  if (!inter) {
    if (c < 2) return 0;
    double mean_var = 0;
    for (int g = 0; g < G; ++g) {
      double v = 0;
      for (int i = 0; i < c; ++i) v += (P[g * c + i] - m[g]) * (P[g * c + i] - m[g]);
      mean_var += v / (c - 1) / G;
    }
    return factor * mean_var;
  }
  if (G < 2) return 0;
  double mu = 0;
  for (int g = 0; g < G; ++g) mu += m[g] / G;
  double v = 0;
  for (int g = 0; g < G; ++g) v += (m[g] - mu) * (m[g] - mu);
  return factor * v / (G - 1);
}

ClusterLossScaling scaling_for(bool share, int N, int E) {
  return share ? ClusterLossScaling::share(E, N) : ClusterLossScaling::public_sum(E);
}

double device_loss(const std::vector<double>& probs, int N, int E, int c, ClusterLossForm form,
                   bool share = false) {
  auto p = to_device(probs);
  Buffer<double> P("P", E);
  return cluster_loss_forward<double>(p, P, N, E, c, form, scaling_for(share, N, E));
}

// Row-stochastic random probabilities.
std::vector<double> random_probs(int N, int E, std::uint64_t seed) {
  auto p = random_vector(std::size_t(N) * E, seed, 0.05, 1.0);
  for (int n = 0; n < N; ++n) {
    double s = 0;
    for (int e = 0; e < E; ++e) s += p[n * E + e];
    for (int e = 0; e < E; ++e) p[n * E + e] /= s;
  }
  return p;
}

// Hand example: N = 2 tokens, E = 4 experts, cluster_size c = 2 (G = 2 clusters {0,1} {2,3}).
//   probs row 0 = [0.1, 0.2, 0.3, 0.4], row 1 = [0.5, 0.1, 0.3, 0.1]
//   P = [0.6, 0.3, 0.6, 0.5]; cluster means m = [0.45, 0.55]; mu = 0.5
//   intra: Var_0 = ((0.15)^2 + (0.15)^2) / 1 = 0.045, Var_1 = ((0.05)^2 + (0.05)^2) / 1 = 0.005
//          L = E * mean(Var) = 4 * 0.025 = 0.1
//          dL/dP_e = (E/G) * 2 (P_e - m_g) / (c-1) = 4 (P_e - m_g) = [0.6, -0.6, 0.2, -0.2]
//   inter: L = E * ((0.45-0.5)^2 + (0.55-0.5)^2) / (G-1) = 4 * 0.005 = 0.02
//          dL/dP_e = E * 2 (m_g - mu) / ((G-1) c) = 4 (m_g - mu) = [-0.2, -0.2, 0.2, 0.2]
const std::vector<double> kHandProbs = {0.1, 0.2, 0.3, 0.4, 0.5, 0.1, 0.3, 0.1};

void check_hand_gradient(ClusterLossForm form, const std::vector<double>& dP_expected) {
  auto p = to_device(kHandProbs);
  Buffer<double> P("P", 4), dP("dP", 4), dprobs("dprobs", 8);
  const auto scaling = ClusterLossScaling::public_sum(4);
  cluster_loss_forward<double>(p, P, 2, 4, 2, form, scaling);
  cluster_loss_backward<double>(P, 1.0, dP, dprobs, 2, 4, 2, form, scaling);
  auto d = to_host(dprobs);
  for (int n = 0; n < 2; ++n)
    for (int e = 0; e < 4; ++e) EXPECT_NEAR(d[n * 4 + e], dP_expected[e], 1e-12);
}

}  // namespace

TEST(ClusterLoss, IntraMatchesHandComputedExample) {
  EXPECT_NEAR(device_loss(kHandProbs, 2, 4, 2, ClusterLossForm::intra), 0.1, 1e-12);
  EXPECT_NEAR(ref_cluster_loss(kHandProbs, 2, 4, 2, false), 0.1, 1e-12);
  check_hand_gradient(ClusterLossForm::intra, {0.6, -0.6, 0.2, -0.2});
}

TEST(ClusterLoss, InterMatchesHandComputedExample) {
  EXPECT_NEAR(device_loss(kHandProbs, 2, 4, 2, ClusterLossForm::inter), 0.02, 1e-12);
  EXPECT_NEAR(ref_cluster_loss(kHandProbs, 2, 4, 2, true), 0.02, 1e-12);
  check_hand_gradient(ClusterLossForm::inter, {-0.2, -0.2, 0.2, 0.2});
}

TEST(ClusterLoss, MatchesReferenceOnRandomInputs) {
  struct Shape {
    int N, E, c;
  };
  for (Shape s : {Shape{7, 6, 3}, Shape{16, 8, 2}, Shape{5, 12, 4}, Shape{9, 8, 8}, Shape{3, 4, 1}})
    for (bool inter : {false, true})
      for (bool share : {false, true}) {
        auto p = random_probs(s.N, s.E, 100 + s.E * 10 + s.c);
        const auto form = inter ? ClusterLossForm::inter : ClusterLossForm::intra;
        EXPECT_NEAR(device_loss(p, s.N, s.E, s.c, form, share),
                    ref_cluster_loss(p, s.N, s.E, s.c, inter, share), 1e-12)
            << "N=" << s.N << " E=" << s.E << " c=" << s.c << " inter=" << inter
            << " share=" << share;
      }
}

TEST(ClusterLoss, BackwardMatchesFiniteDifferencesAndAccumulates) {
  const int N = 5, E = 12, c = 3;
  const double w = 0.7;
  for (bool inter : {false, true})
    for (bool share : {false, true}) {
      const auto form = inter ? ClusterLossForm::inter : ClusterLossForm::intra;
      auto p = random_probs(N, E, 42);
      auto base = random_vector(std::size_t(N) * E, 43);  // dprobs already holds something
      auto dp = to_device(p), dprobs = to_device(base);
      Buffer<double> P("P", E), dP("dP", E);
      const auto scaling = scaling_for(share, N, E);
      cluster_loss_forward<double>(dp, P, N, E, c, form, scaling);
      cluster_loss_backward<double>(P, w, dP, dprobs, N, E, c, form, scaling);
      auto analytic = to_host(dprobs);
      for (std::size_t i = 0; i < analytic.size(); ++i) analytic[i] -= base[i];
      auto numeric =
          numeric_gradient(p, [&]() { return w * device_loss(p, N, E, c, form, share); });
      EXPECT_LT(rel_error(analytic, numeric), 1e-8) << "inter=" << inter << " share=" << share;
      double norm = 0;
      for (double v : analytic) norm += v * v;
      EXPECT_GT(norm, 1e-12);
    }
}

TEST(ClusterLoss, DegenerateFormsAreZero) {
  auto p = random_probs(4, 4, 9);
  // intra with one expert per cluster, inter with one cluster: no variance to take.
  EXPECT_EQ(device_loss(p, 4, 4, 1, ClusterLossForm::intra), 0.0);
  EXPECT_EQ(device_loss(p, 4, 4, 4, ClusterLossForm::inter), 0.0);
}

// The defining property of the default scaling: batches of 4 and 16 tokens from the same
// distribution (the 16 are the 4 repeated) give the same loss; the public code's batch sums
// give 16 times the value (P quadruples, its variance grows 16-fold).
TEST(ClusterLoss, ShareScalingIsInvariantToBatchSize) {
  const int E = 8, c = 4;
  const auto four = random_probs(4, E, 77);
  std::vector<double> sixteen;
  for (int r = 0; r < 4; ++r) sixteen.insert(sixteen.end(), four.begin(), four.end());
  for (bool inter : {false, true}) {
    const auto form = inter ? ClusterLossForm::inter : ClusterLossForm::intra;
    const double small = device_loss(four, 4, E, c, form, true);
    const double large = device_loss(sixteen, 16, E, c, form, true);
    EXPECT_GT(small, 0.0);
    EXPECT_NEAR(large, small, 1e-12 * small) << "inter=" << inter;
    EXPECT_NEAR(device_loss(sixteen, 16, E, c, form, false),
                16.0 * device_loss(four, 4, E, c, form, false), 1e-9)
        << "inter=" << inter;
  }
  // A uniform router has loads of exactly 1 and no variance.
  std::vector<double> uniform(std::size_t(16) * E, 1.0 / E);
  EXPECT_NEAR(device_loss(uniform, 16, E, c, ClusterLossForm::intra, true), 0.0, 1e-24);
}
