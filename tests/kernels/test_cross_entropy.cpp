// Softmax cross-entropy: forward against plain loops (including huge logits, which need the
// max subtraction), backward against finite differences.
#include <cmath>

#include "cross_entropy.hpp"
#include "support.hpp"

using namespace moe;
using namespace moe::test;

namespace {
const int kN = 6, kV = 11;
const std::vector<int> kTargets = {0, 10, 3, 3, 7, 5};

// Plain reference; the logsumexp is taken relative to the row max like any careful code must.
void ref_cross_entropy(const std::vector<double>& logits, std::vector<double>& lse,
                       std::vector<double>& loss) {
  lse.assign(kN, 0.0);
  loss.assign(kN, 0.0);
  for (int n = 0; n < kN; ++n) {
    double mx = logits[n * kV];
    for (int v = 1; v < kV; ++v) mx = std::max(mx, logits[n * kV + v]);
    double s = 0;
    for (int v = 0; v < kV; ++v) s += std::exp(logits[n * kV + v] - mx);
    lse[n] = mx + std::log(s);
    loss[n] = lse[n] - logits[n * kV + kTargets[n]];
  }
}
}  // namespace

TEST(CrossEntropy, ForwardMatchesReference) {
  auto logits = random_vector(kN * kV, 1, -3.0, 3.0);
  auto dl = to_device(logits);
  auto dt = to_device(kTargets);
  Buffer<double> lse("lse", kN), loss("loss", kN);
  cross_entropy_forward<double>(ExecSpace(), matrix(dl, kN, kV), dt, lse, loss);
  std::vector<double> rl, rloss;
  ref_cross_entropy(logits, rl, rloss);
  EXPECT_LT(rel_error(to_host(lse), rl), 1e-14);
  EXPECT_LT(rel_error(to_host(loss), rloss), 1e-14);
}

TEST(CrossEntropy, ForwardIsStableForHugeLogits) {
  // exp(1000) overflows double and exp(100) overflows float: only max subtraction survives.
  auto logits = random_vector(kN * kV, 2, -3.0, 3.0);
  for (int n = 0; n < kN; ++n) logits[n * kV + (n % kV)] += (n % 2 ? 1000.0 : -1000.0);
  auto dl = to_device(logits);
  auto dt = to_device(kTargets);
  Buffer<double> lse("lse", kN), loss("loss", kN);
  cross_entropy_forward<double>(ExecSpace(), matrix(dl, kN, kV), dt, lse, loss);
  std::vector<double> rl, rloss;
  ref_cross_entropy(logits, rl, rloss);
  auto hl = to_host(lse), hloss = to_host(loss);
  for (int n = 0; n < kN; ++n) {
    EXPECT_TRUE(std::isfinite(hl[n]) && std::isfinite(hloss[n]));
    EXPECT_NEAR(hl[n], rl[n], 1e-12 * std::abs(rl[n]));
    EXPECT_NEAR(hloss[n], rloss[n], 1e-12 * std::max(1.0, std::abs(rloss[n])));
  }
  // Same in float.
  std::vector<float> lf(logits.begin(), logits.end());
  auto dlf = to_device(lf);
  Buffer<float> lsef("lse", kN), lossf("loss", kN);
  cross_entropy_forward<float>(ExecSpace(), matrix(dlf, kN, kV), dt, lsef, lossf);
  auto hlf = to_host(lossf);
  for (int n = 0; n < kN; ++n) {
    EXPECT_TRUE(std::isfinite(hlf[n]));
    EXPECT_NEAR(hlf[n], rloss[n], 1e-4 * std::max(1.0, std::abs(rloss[n])));
  }
}

TEST(CrossEntropy, BackwardMatchesFiniteDifferences) {
  auto logits = random_vector(kN * kV, 3, -3.0, 3.0);
  const double scale = 1.0 / kN;  // loss = mean over rows
  auto dt = to_device(kTargets);
  auto forward = [&]() {
    auto dl = to_device(logits);
    Buffer<double> lse("lse", kN), loss("loss", kN);
    cross_entropy_forward<double>(ExecSpace(), matrix(dl, kN, kV), dt, lse, loss);
    double s = 0;
    for (double l : to_host(loss)) s += l;
    return scale * s;
  };
  auto dl = to_device(logits);
  Buffer<double> lse("lse", kN), loss("loss", kN);
  cross_entropy_forward<double>(ExecSpace(), matrix(dl, kN, kV), dt, lse, loss);
  // A nonzero starting buffer checks that the backward overwrites it.
  auto g = to_device(random_vector(kN * kV, 4));
  cross_entropy_backward<double>(ExecSpace(), matrix(dl, kN, kV), dt, lse, scale,
                                 matrix(g, kN, kV));
  auto hg = to_host(g);
  EXPECT_LT(rel_error(hg, numeric_gradient(logits, forward)), 1e-6);
}
