// Global gradient-norm clipping: norm against a plain sum, clipping to exactly max_norm, and
// no change when under the limit or when clipping is disabled.
#include <cmath>

#include "grad_clip.hpp"
#include "support.hpp"

using namespace moe;
using namespace moe::test;

namespace {
const int kNum = 1001;

double ref_norm(const std::vector<double>& g) {
  double s = 0;
  for (double x : g) s += x * x;
  return std::sqrt(s);
}
}  // namespace

TEST(GradClip, NormMatchesReference) {
  auto g = random_vector(kNum, 1);
  auto dg = to_device(g);
  EXPECT_NEAR(std::sqrt(grad_norm_squared<double>(ExecSpace(), dg)), ref_norm(g),
              1e-12 * ref_norm(g));
  // float input, double accumulation
  std::vector<float> gf(g.begin(), g.end());
  std::vector<double> gfd(gf.begin(), gf.end());
  auto dgf = to_device(gf);
  EXPECT_NEAR(std::sqrt(grad_norm_squared<float>(ExecSpace(), dgf)), ref_norm(gfd),
              1e-12 * ref_norm(gfd));
}

TEST(GradClip, ScaleInplaceMultiplies) {
  auto g = random_vector(kNum, 2);
  auto dg = to_device(g);
  scale_inplace<double>(ExecSpace(), dg, 0.25);
  auto h = to_host(dg);
  for (int i = 0; i < kNum; ++i) EXPECT_EQ(h[i], 0.25 * g[i]);
}

TEST(GradClip, ClipsToMaxNorm) {
  auto g = random_vector(kNum, 3);
  const double norm = ref_norm(g), max_norm = 0.3 * norm;
  auto dg = to_device(g);
  const double before = clip_grad_norm<double>(ExecSpace(), dg, max_norm);
  EXPECT_NEAR(before, norm, 1e-12 * norm);  // returns the norm before clipping
  auto h = to_host(dg);
  EXPECT_NEAR(ref_norm(h), max_norm, 1e-12 * max_norm);
  for (int i = 0; i < kNum; ++i)
    EXPECT_NEAR(h[i], g[i] * max_norm / norm, 1e-15);  // direction kept
}

TEST(GradClip, NoChangeUnderLimitOrDisabled) {
  auto g = random_vector(kNum, 4);
  const double norm = ref_norm(g);
  for (double max_norm : {2.0 * norm, 0.0, -1.0}) {
    auto dg = to_device(g);
    const double before = clip_grad_norm<double>(ExecSpace(), dg, max_norm);
    EXPECT_NEAR(before, norm, 1e-12 * norm);
    EXPECT_EQ(to_host(dg), g);
  }
}

TEST(GradClip, SegmentsNormMatchesReference) {
  auto g = random_vector(kNum, 5);
  auto dg = to_device(g);
  const Segments segs({0, 500}, {300, 501}, {1.0f, 0.0f});
  std::vector<double> owned(g.begin(), g.begin() + 300);
  owned.insert(owned.end(), g.begin() + 500, g.end());
  EXPECT_NEAR(std::sqrt(grad_norm_squared_segments<double>(ExecSpace(), dg, segs)), ref_norm(owned),
              1e-12 * ref_norm(owned));
}
