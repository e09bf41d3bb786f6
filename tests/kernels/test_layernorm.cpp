// Layer normalisation: forward against plain loops, backward against finite differences.
#include <cmath>

#include "layernorm.hpp"
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
}  // namespace

TEST(LayerNorm, ForwardMatchesReference) {
  auto x = random_vector(kN * kC, 1, -2.0, 3.0), g = random_vector(kC, 2), b = random_vector(kC, 3);
  auto dx = to_device(x), dg = to_device(g), db = to_device(b);
  Buffer<double> out("out", kN * kC), mean("mean", kN), rstd("rstd", kN);
  layernorm_forward<double>(ExecSpace(), matrix(dx, kN, kC), dg, db, matrix(out, kN, kC), mean,
                            rstd, 1e-5);
  auto ref = ref_layernorm(x, g, b, 1e-5);
  EXPECT_LT(rel_error(to_host(out), ref.out), 1e-13);
  EXPECT_LT(rel_error(to_host(mean), ref.mean), 1e-13);
  EXPECT_LT(rel_error(to_host(rstd), ref.rstd), 1e-13);
}

TEST(LayerNorm, BackwardMatchesFiniteDifferences) {
  auto x = random_vector(kN * kC, 4), g = random_vector(kC, 5), b = random_vector(kC, 6);
  auto r = random_vector(kN * kC, 7);  // loss = sum(out * r)
  auto forward = [&]() {
    auto dx = to_device(x), dg = to_device(g), db = to_device(b);
    Buffer<double> out("out", kN * kC), mean("mean", kN), rstd("rstd", kN);
    layernorm_forward<double>(ExecSpace(), matrix(dx, kN, kC), dg, db, matrix(out, kN, kC), mean,
                              rstd);
    return dot(to_host(out), r);
  };
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
  auto forward = [&]() {
    auto dx = to_device(x), dg = to_device(g), db = to_device(b);
    Buffer<double> out("out", kN * kC), mean("mean", kN), rstd("rstd", kN);
    layernorm_forward<double>(ExecSpace(), matrix(dx, kN, kC), dg, db, matrix(out, kN, kC), mean,
                              rstd);
    return dot(to_host(out), r);
  };
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
