// AdamW: several steps against a plain double loop, float against the double reference, and
// the decoupled weight decay on a parameter with zero gradient.
#include <cmath>

#include "adamw.hpp"
#include "grad_clip.hpp"
#include "support.hpp"

using namespace moe;
using namespace moe::test;

namespace {
const double kLr = 1e-2, kB1 = 0.9, kB2 = 0.95, kEps = 1e-8, kWd = 0.1;
const int kSteps = 5, kNum = 37;

// Plain reference: the update rule written out, straight from the paper's Algorithm 2.
void ref_adamw(std::vector<double>& p, const std::vector<double>& g, std::vector<double>& m,
               std::vector<double>& v, int t) {
  for (std::size_t i = 0; i < p.size(); ++i) {
    m[i] = kB1 * m[i] + (1 - kB1) * g[i];
    v[i] = kB2 * v[i] + (1 - kB2) * g[i] * g[i];
    const double mhat = m[i] / (1 - std::pow(kB1, t));
    const double vhat = v[i] / (1 - std::pow(kB2, t));
    p[i] -= kLr * (mhat / (std::sqrt(vhat) + kEps) + kWd * p[i]);
  }
}

// Runs kSteps steps with gradients drawn per step; returns the final parameters.
template <class Real>
std::vector<double> run_adamw(const std::vector<double>& p0) {
  std::vector<Real> p(p0.begin(), p0.end()), zeros(p0.size(), Real(0));
  auto dp = to_device(p), dm = to_device(zeros), dv = to_device(zeros);
  for (int t = 1; t <= kSteps; ++t) {
    auto gd = random_vector(kNum, 100 + t);
    std::vector<Real> g(gd.begin(), gd.end());
    auto dg = to_device(g);
    const AdamW<Real> h{t, Real(kLr), Real(kB1), Real(kB2), Real(kEps), Real(kWd)};
    adamw_update<Real>(ExecSpace(), dp, dg, dm, dv, h);
  }
  auto h = to_host(dp);
  return std::vector<double>(h.begin(), h.end());
}
}  // namespace

TEST(AdamW, StepsMatchReferenceInDoubleAndFloat) {
  auto p0 = random_vector(kNum, 1);
  std::vector<double> p = p0, m(kNum, 0.0), v(kNum, 0.0);
  for (int t = 1; t <= kSteps; ++t) ref_adamw(p, random_vector(kNum, 100 + t), m, v, t);
  EXPECT_LT(rel_error(run_adamw<double>(p0), p), 1e-12);
  EXPECT_LT(rel_error(run_adamw<float>(p0), p), 1e-5);
}

TEST(AdamW, ZeroGradientOnlyDecays) {
  auto p0 = random_vector(kNum, 2);
  std::vector<double> zeros(kNum, 0.0);
  for (double wd : {0.0, kWd}) {
    auto dp = to_device(p0), dg = to_device(zeros), dm = to_device(zeros), dv = to_device(zeros);
    adamw_update<double>(ExecSpace(), dp, dg, dm, dv, AdamW<double>{1, kLr, kB1, kB2, kEps, wd});
    auto p = to_host(dp);
    for (int i = 0; i < kNum; ++i) {
      if (wd == 0.0)
        EXPECT_EQ(p[i], p0[i]);
      else  // shrinks by exactly lr * wd * p (4-ulp compare tolerates fused multiply-add)
        EXPECT_DOUBLE_EQ(p[i], p0[i] - kLr * wd * p0[i]);
    }
    EXPECT_EQ(to_host(dm), zeros);
    EXPECT_EQ(to_host(dv), zeros);
  }
}

// The one-launch update over segments equals per-segment updates (decay per segment's flag),
// and leaves the gaps between segments untouched.
TEST(AdamW, SegmentsMatchPerSegmentUpdates) {
  const int n = 100;
  const std::vector<Index> begins = {0, 10, 57}, sizes = {7, 40, 43};
  const std::vector<float> flags = {1.0f, 0.0f, 1.0f};
  const Segments segs(begins, sizes, flags);
  auto p0 = random_vector(n, 3), g = random_vector(n, 4);
  std::vector<double> zeros(n, 0.0);
  auto pa = to_device(p0), ma = to_device(zeros), va = to_device(zeros), ga = to_device(g);
  auto pb = to_device(p0), mb = to_device(zeros), vb = to_device(zeros);
  const AdamW<double> h{2, kLr, kB1, kB2, kEps, kWd};
  adamw_update_segments<double>(ExecSpace(), pa, ga, ma, va, h, segs);
  for (std::size_t s = 0; s < begins.size(); ++s) {
    AdamW<double> hs = h;
    hs.weight_decay = kWd * flags[s];
    adamw_update<double>(ExecSpace(), slice(pb, begins[s], sizes[s]),
                         slice(View1<const double>(ga), begins[s], sizes[s]),
                         slice(mb, begins[s], sizes[s]), slice(vb, begins[s], sizes[s]), hs);
  }
  const auto a = to_host(pa), b = to_host(pb);
  for (int i = 0; i < n; ++i) EXPECT_EQ(a[i], b[i]) << i;
  for (int i = 7; i < 10; ++i) EXPECT_EQ(a[i], p0[i]) << "gap " << i;
}

// The clipping factor passed to the update is the same as scaling the gradients first (which is
// what clip_to_norm does), bit for bit, and leaves the gradients themselves as they were.
TEST(AdamW, GradScaleEqualsScalingTheGradientsFirst) {
  const int n = 64;
  const Segments segs(std::vector<Index>{0, 20}, std::vector<Index>{20, 44},
                      std::vector<float>{1.0f, 0.0f});
  auto p0 = random_vector(n, 5), g = random_vector(n, 6);
  std::vector<float> p0f(p0.begin(), p0.end()), gf(g.begin(), g.end()), zeros(n, 0.0f);
  const float scale = 0.37f;
  auto pa = to_device(p0f), ma = to_device(zeros), va = to_device(zeros), ga = to_device(gf);
  auto pb = to_device(p0f), mb = to_device(zeros), vb = to_device(zeros), gb = to_device(gf);
  const AdamW<float> h{3, float(kLr), float(kB1), float(kB2), float(kEps), float(kWd)};
  adamw_update_segments<float>(ExecSpace(), pa, ga, ma, va, h, segs, scale);
  scale_inplace<float>(ExecSpace(), gb, scale);
  adamw_update_segments<float>(ExecSpace(), pb, gb, mb, vb, h, segs);
  EXPECT_EQ(to_host(pa), to_host(pb));
  EXPECT_EQ(to_host(ma), to_host(mb));
  EXPECT_EQ(to_host(va), to_host(vb));
  EXPECT_EQ(to_host(ga), gf);
}
