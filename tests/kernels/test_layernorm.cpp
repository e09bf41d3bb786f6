// Layer normalisation: forward against plain loops, backward against finite differences; the
// same for the residual add fused with it, and the bias rows both can write for the next layer.
#include <cmath>

#include "layernorm.hpp"
#include "residual.hpp"
#include "support.hpp"

using namespace moe;
using namespace moe::test;

namespace {
const int kN = 5, kC = 8;

struct RefLN {
  std::vector<double> out, mean, rstd;
};

RefLN ref_layernorm(const std::vector<double>& x, const std::vector<double>& g,
                    const std::vector<double>& b, double eps) {
  RefLN r{std::vector<double>(x.size()), std::vector<double>(kN), std::vector<double>(kN)};
  for (int n = 0; n < kN; ++n) {
    double mu = 0;
    for (int c = 0; c < kC; ++c) mu += x[n * kC + c];
    mu /= kC;
    double var = 0;
    for (int c = 0; c < kC; ++c) var += (x[n * kC + c] - mu) * (x[n * kC + c] - mu);
    var /= kC;
    const double rs = 1.0 / std::sqrt(var + eps);
    for (int c = 0; c < kC; ++c) r.out[n * kC + c] = (x[n * kC + c] - mu) * rs * g[c] + b[c];
    r.mean[n] = mu;
    r.rstd[n] = rs;
  }
  return r;
}

// sum(layernorm(x) * r): the loss the backward checks differentiate.
double loss_of_layernorm(const std::vector<double>& x, const std::vector<double>& g,
                         const std::vector<double>& b, const std::vector<double>& r) {
  auto dx = to_device(x), dg = to_device(g), db = to_device(b);
  Buffer<double> out("out", kN * kC), mean("mean", kN), rstd("rstd", kN);
  layernorm_forward<double>(ExecSpace(), matrix(dx, kN, kC), dg, db, matrix(out, kN, kC), mean,
                            rstd);
  return dot(to_host(out), r);
}
}  // namespace

TEST(LayerNorm, ForwardMatchesReference) {
  auto x = random_vector(kN * kC, 1, -2.0, 3.0), g = random_vector(kC, 2), b = random_vector(kC, 3);
  auto dx = to_device(x), dg = to_device(g), db = to_device(b);
  Buffer<double> out("out", kN * kC), mean("mean", kN), rstd("rstd", kN);
  layernorm_forward<double>(ExecSpace(), matrix(dx, kN, kC), dg, db, matrix(out, kN, kC), mean,
                            rstd, {}, 1e-5);
  auto ref = ref_layernorm(x, g, b, 1e-5);
  EXPECT_LT(rel_error(to_host(out), ref.out), 1e-13);
  EXPECT_LT(rel_error(to_host(mean), ref.mean), 1e-13);
  EXPECT_LT(rel_error(to_host(rstd), ref.rstd), 1e-13);
}

TEST(LayerNorm, BackwardMatchesFiniteDifferences) {
  auto x = random_vector(kN * kC, 4), g = random_vector(kC, 5), b = random_vector(kC, 6);
  auto r = random_vector(kN * kC, 7);  // loss = sum(out * r)
  auto forward = [&]() { return loss_of_layernorm(x, g, b, r); };
  auto dx = to_device(x), dg = to_device(g), db = to_device(b), dr = to_device(r);
  Buffer<double> out("out", kN * kC), mean("mean", kN), rstd("rstd", kN);
  layernorm_forward<double>(ExecSpace(), matrix(dx, kN, kC), dg, db, matrix(out, kN, kC), mean,
                            rstd);
  // Nonzero starting gradients check that the backward accumulates.
  auto g0x = random_vector(kN * kC, 8), g0g = random_vector(kC, 9), g0b = random_vector(kC, 10);
  auto gx = to_device(g0x), gg = to_device(g0g), gb = to_device(g0b);
  layernorm_backward<double>(ExecSpace(), matrix(dr, kN, kC), matrix(dx, kN, kC), dg, mean, rstd,
                             matrix(gx, kN, kC), gg, gb);
  auto minus = [](std::vector<double> a, const std::vector<double>& b0) {
    for (std::size_t i = 0; i < a.size(); ++i) a[i] -= b0[i];
    return a;
  };
  EXPECT_LT(rel_error(minus(to_host(gx), g0x), numeric_gradient(x, forward)), 1e-6);
  EXPECT_LT(rel_error(minus(to_host(gg), g0g), numeric_gradient(g, forward)), 1e-6);
  EXPECT_LT(rel_error(minus(to_host(gb), g0b), numeric_gradient(b, forward)), 1e-6);
}

TEST(LayerNorm, ParameterGradientsOverManyRowChunks) {
  // 150 rows: the row sums run in chunks of 64 rows (the last one short), then across chunks.
  const int N = 150, C = 3;
  auto x = random_vector(N * C, 11, -2.0, 3.0), g = random_vector(C, 12), b = random_vector(C, 13);
  auto r = random_vector(N * C, 14);
  auto dx = to_device(x), dg = to_device(g), db = to_device(b), dr = to_device(r);
  Buffer<double> out("out", N * C), mean("mean", N), rstd("rstd", N), gx("gx", N * C);
  Buffer<double> gg("gg", C), gb("gb", C);
  layernorm_forward<double>(ExecSpace(), matrix(dx, N, C), dg, db, matrix(out, N, C), mean, rstd);
  layernorm_backward<double>(ExecSpace(), matrix(dr, N, C), matrix(dx, N, C), dg, mean, rstd,
                             matrix(gx, N, C), gg, gb);
  const auto hm = to_host(mean), hr = to_host(rstd);
  std::vector<double> want_g(C, 0.0), want_b(C, 0.0);
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) {
      want_g[c] += r[n * C + c] * (x[n * C + c] - hm[n]) * hr[n];
      want_b[c] += r[n * C + c];
    }
  EXPECT_LT(rel_error(to_host(gg), want_g), 1e-13);
  EXPECT_LT(rel_error(to_host(gb), want_b), 1e-13);
}

TEST(LayerNorm, BackwardOverwriteWritesDx) {
  // DxMode::Overwrite: dx starts as garbage (the model no longer zeroes it) and must come out as
  // the plain gradient; dgamma and dbeta still accumulate.
  auto x = random_vector(kN * kC, 15), g = random_vector(kC, 16), b = random_vector(kC, 17);
  auto r = random_vector(kN * kC, 18);
  auto forward = [&]() { return loss_of_layernorm(x, g, b, r); };
  auto dx = to_device(x), dg = to_device(g), db = to_device(b), dr = to_device(r);
  Buffer<double> out("out", kN * kC), mean("mean", kN), rstd("rstd", kN);
  layernorm_forward<double>(ExecSpace(), matrix(dx, kN, kC), dg, db, matrix(out, kN, kC), mean,
                            rstd);
  auto gx = to_device(random_vector(kN * kC, 19, 1e3, 2e3));
  Buffer<double> gg("gg", kC), gb("gb", kC);
  layernorm_backward<double>(ExecSpace(), matrix(dr, kN, kC), matrix(dx, kN, kC), dg, mean, rstd,
                             matrix(gx, kN, kC), gg, gb, DxMode::Overwrite);
  EXPECT_LT(rel_error(to_host(gx), numeric_gradient(x, forward)), 1e-6);
  EXPECT_LT(rel_error(to_host(gg), numeric_gradient(g, forward)), 1e-6);
}

TEST(LayerNorm, ForwardWritesBiasRows) {
  // The RowBias output: every row of y set to b (y wider than the normalised rows, as qkv is),
  // whatever y held before; the normalised output is unchanged by it.
  const int W = 3 * kC;
  auto x = random_vector(kN * kC, 20), g = random_vector(kC, 21), b = random_vector(kC, 22);
  auto qb = random_vector(W, 23);
  auto dx = to_device(x), dg = to_device(g), db = to_device(b), dqb = to_device(qb);
  auto y = to_device(random_vector(std::size_t(kN) * W, 24));
  Buffer<double> out("out", kN * kC), mean("mean", kN), rstd("rstd", kN);
  layernorm_forward<double>(ExecSpace(), matrix(dx, kN, kC), dg, db, matrix(out, kN, kC), mean,
                            rstd, {matrix(y, kN, W), dqb});
  EXPECT_LT(rel_error(to_host(out), ref_layernorm(x, g, b, 1e-5).out), 1e-13);
  const auto hy = to_host(y);
  for (int n = 0; n < kN; ++n)
    for (int j = 0; j < W; ++j) EXPECT_EQ(hy[n * W + j], qb[j]) << n << " " << j;
}

namespace {

// The fused residual add + layernorm on the host's doubles: sum = res + y (+ bias), out =
// LN(sum); bias may be empty. fill: RowBias rows [kN, fill_b.size()] (empty: none).
struct Fused {
  std::vector<double> sum, out, mean, rstd, fill;
};
Fused run_fused(const std::vector<double>& res, const std::vector<double>& y,
                const std::vector<double>& bias, const std::vector<double>& g,
                const std::vector<double>& b, const std::vector<double>& fill_b = {}) {
  auto dres = to_device(res), dy = to_device(y), dg = to_device(g), db = to_device(b);
  Buffer<double> dbias("bias", bias.size()), dfb("fill_b", fill_b.size());
  if (!bias.empty()) dbias = to_device(bias);
  if (!fill_b.empty()) dfb = to_device(fill_b);
  const int W = int(fill_b.size());
  Buffer<double> sum("sum", kN * kC), out("out", kN * kC), mean("mean", kN), rstd("rstd", kN);
  Buffer<double> fy("fill", std::size_t(kN) * W);
  RowBias<double> fill;
  if (W > 0) fill = {matrix(fy, kN, W), dfb};
  residual_layernorm_forward<double>(ExecSpace(), matrix(dres, kN, kC), {matrix(dy, kN, kC), dbias},
                                     matrix(sum, kN, kC), dg, db, matrix(out, kN, kC), mean, rstd,
                                     fill);
  return {to_host(sum), to_host(out), to_host(mean), to_host(rstd), to_host(fy)};
}

}  // namespace

TEST(LayerNorm, ResidualFusedForwardMatchesReference) {
  auto res = random_vector(kN * kC, 30, -2.0, 3.0), y = random_vector(kN * kC, 31);
  auto bias = random_vector(kC, 32), g = random_vector(kC, 33), b = random_vector(kC, 34);
  auto fb = random_vector(2 * kC, 35);
  std::vector<double> want_sum(kN * kC);
  for (int n = 0; n < kN; ++n)
    for (int c = 0; c < kC; ++c) want_sum[n * kC + c] = res[n * kC + c] + y[n * kC + c] + bias[c];
  const auto ref = ref_layernorm(want_sum, g, b, 1e-5);
  const Fused f = run_fused(res, y, bias, g, b, fb);
  EXPECT_LT(rel_error(f.sum, want_sum), 1e-15);
  EXPECT_LT(rel_error(f.out, ref.out), 1e-13);
  EXPECT_LT(rel_error(f.mean, ref.mean), 1e-13);
  EXPECT_LT(rel_error(f.rstd, ref.rstd), 1e-13);
  for (int n = 0; n < kN; ++n)
    for (int j = 0; j < 2 * kC; ++j) EXPECT_EQ(f.fill[n * 2 * kC + j], fb[j]);
}

TEST(LayerNorm, ResidualFusedEqualsTheTwoKernelsItReplaces) {
  // Without a bias the fused kernel does exactly the arithmetic of residual_forward then
  // layernorm_forward, so the model's results do not move: bit for bit.
  auto res = random_vector(kN * kC, 40, -2.0, 3.0), y = random_vector(kN * kC, 41);
  auto g = random_vector(kC, 42), b = random_vector(kC, 43);
  auto dres = to_device(res), dy = to_device(y), dg = to_device(g), db = to_device(b);
  Buffer<double> sum("sum", kN * kC), out("out", kN * kC), mean("mean", kN), rstd("rstd", kN);
  residual_forward<double>(ExecSpace(), matrix(dres, kN, kC), matrix(dy, kN, kC),
                           matrix(sum, kN, kC));
  layernorm_forward<double>(ExecSpace(), matrix(sum, kN, kC), dg, db, matrix(out, kN, kC), mean,
                            rstd);
  const Fused f = run_fused(res, y, {}, g, b);
  EXPECT_EQ(f.sum, to_host(sum));
  EXPECT_EQ(f.out, to_host(out));
  EXPECT_EQ(f.mean, to_host(mean));
  EXPECT_EQ(f.rstd, to_host(rstd));
}

TEST(LayerNorm, ResidualFusedBackwardMatchesFiniteDifferences) {
  // The fused op's gradient is the layernorm's (taken at the saved sum) passed unchanged to the
  // residual, the branch and, summed over rows, the bias: what the model's backward computes.
  auto res = random_vector(kN * kC, 50), y = random_vector(kN * kC, 51);
  auto bias = random_vector(kC, 52), g = random_vector(kC, 53), b = random_vector(kC, 54);
  auto r = random_vector(kN * kC, 55);  // loss = sum(out * r)
  auto loss = [&]() { return dot(run_fused(res, y, bias, g, b).out, r); };
  const Fused f = run_fused(res, y, bias, g, b);
  auto dsum = to_device(f.sum), dmean = to_device(f.mean), drstd = to_device(f.rstd);
  auto dg = to_device(g), dr = to_device(r);
  Buffer<double> gx("gx", kN * kC), gg("gg", kC), gb("gb", kC);
  layernorm_backward<double>(ExecSpace(), matrix(dr, kN, kC), matrix(dsum, kN, kC), dg, dmean,
                             drstd, matrix(gx, kN, kC), gg, gb, DxMode::Overwrite);
  const auto dx = to_host(gx);
  std::vector<double> dbias(kC, 0.0);
  for (int n = 0; n < kN; ++n)
    for (int c = 0; c < kC; ++c) dbias[c] += dx[n * kC + c];
  EXPECT_LT(rel_error(dx, numeric_gradient(res, loss)), 1e-6);
  EXPECT_LT(rel_error(dx, numeric_gradient(y, loss)), 1e-6);
  EXPECT_LT(rel_error(dbias, numeric_gradient(bias, loss)), 1e-6);
  EXPECT_LT(rel_error(to_host(gg), numeric_gradient(g, loss)), 1e-6);
  EXPECT_LT(rel_error(to_host(gb), numeric_gradient(b, loss)), 1e-6);
}

TEST(LayerNorm, ResidualFusedRoundsTheBranchToBf16WhenAsked) {
  // In bf16 mode the projection's output with its bias is a bf16 activation, as linear_forward
  // would have left it: sum = res + bf16(y + bias) exactly, and without the flag no rounding.
  const auto res = random_vector(kN * kC, 60), y = random_vector(kN * kC, 61);
  const auto bias = random_vector(kC, 62), g = random_vector(kC, 63), b = random_vector(kC, 64);
  auto f = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
  auto dres = to_device(f(res)), dy = to_device(f(y)), dbias = to_device(f(bias));
  auto dg = to_device(f(g)), db = to_device(f(b));
  Buffer<float> sum("sum", kN * kC), out("out", kN * kC), mean("mean", kN), rstd("rstd", kN);
  for (bool round : {true, false}) {
    residual_layernorm_forward<float>(ExecSpace(), matrix(dres, kN, kC),
                                      {matrix(dy, kN, kC), dbias, round}, matrix(sum, kN, kC), dg,
                                      db, matrix(out, kN, kC), mean, rstd);
    const auto hs = to_host(sum);
    for (int n = 0; n < kN; ++n)
      for (int c = 0; c < kC; ++c) {
        const float branch = float(y[n * kC + c]) + float(bias[c]);
        const float want = float(res[n * kC + c]) + (round ? round_to_bf16(branch) : branch);
        EXPECT_EQ(hs[n * kC + c], want) << round << " " << n << " " << c;
      }
  }
}
