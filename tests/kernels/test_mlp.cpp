// GELU and the grouped GELU MLP: forward against plain loops, backward against finite
// differences, including an empty group and the one-group (dense FFN) case.
#include "mlp.hpp"
#include "support.hpp"

using namespace moe;
using namespace moe::test;

namespace {

double ref_gelu(double x) {
  const double pi = std::acos(-1.0);
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / pi) * (x + 0.044715 * x * x * x)));
}

struct RefMlp {
  std::vector<double> pre, act, out;
};

// Reference: for each row of group g, pre = x w1_g + b1_g, act = gelu(pre), out = act w2_g + b2_g.
RefMlp ref_mlp(const std::vector<double>& x, const std::vector<double>& w1,
               const std::vector<double>& b1, const std::vector<double>& w2,
               const std::vector<double>& b2, const std::vector<int>& offsets, int C, int F) {
  const int M = offsets.back();
  RefMlp r{std::vector<double>(std::size_t(M) * F), std::vector<double>(std::size_t(M) * F),
           std::vector<double>(std::size_t(M) * C)};
  for (std::size_t g = 0; g + 1 < offsets.size(); ++g)
    for (int m = offsets[g]; m < offsets[g + 1]; ++m) {
      for (int f = 0; f < F; ++f) {
        double s = b1[g * F + f];
        for (int c = 0; c < C; ++c) s += x[m * C + c] * w1[(g * C + c) * F + f];
        r.pre[m * F + f] = s;
        r.act[m * F + f] = ref_gelu(s);
      }
      for (int c = 0; c < C; ++c) {
        double s = b2[g * C + c];
        for (int f = 0; f < F; ++f) s += r.act[m * F + f] * w2[(g * F + f) * C + c];
        r.out[m * C + c] = s;
      }
    }
  return r;
}

struct MlpInputs {
  std::vector<double> x, w1, b1, w2, b2;
};

MlpInputs random_inputs(int M, int G, int C, int F, std::uint64_t seed) {
  return {
      random_vector(std::size_t(M) * C, seed, -2.0, 2.0),
      random_vector(std::size_t(G) * C * F, seed + 1), random_vector(std::size_t(G) * F, seed + 2),
      random_vector(std::size_t(G) * F * C, seed + 3), random_vector(std::size_t(G) * C, seed + 4)};
}

// Runs mlp_forward in precision Real; returns pre, act, out (as double).
template <class Real = double>
RefMlp run_mlp(const MlpInputs& in, const std::vector<int>& offsets, int C, int F) {
  const int M = offsets.back();
  auto dev = [](const std::vector<double>& v) {
    return to_device(std::vector<Real>(v.begin(), v.end()));
  };
  auto host = [](const Buffer<Real>& b) {
    auto h = to_host(b);
    return std::vector<double>(h.begin(), h.end());
  };
  auto x = dev(in.x), w1 = dev(in.w1), b1 = dev(in.b1), w2 = dev(in.w2), b2 = dev(in.b2);
  Buffer<Real> pre("pre", std::size_t(M) * F), act("act", std::size_t(M) * F),
      out("out", std::size_t(M) * C);
  mlp_forward<Real>(ExecSpace(), matrix(x, M, C), MlpWeights<Real>(w1, b1, w2, b2),
                    {matrix(pre, M, F), matrix(act, M, F)}, matrix(out, M, C), offsets);
  return {host(pre), host(act), host(out)};
}

}  // namespace

TEST(Mlp, GeluForwardMatchesFormula) {
  const int n = 101;
  auto x = random_vector(n, 21, -5.0, 5.0);
  x[0] = 0.0;
  auto dx = to_device(x);
  Buffer<double> out("out", n);
  gelu_forward<double>(ExecSpace(), dx, out, n);
  std::vector<double> ref(n);
  for (int i = 0; i < n; ++i) ref[i] = ref_gelu(x[i]);
  EXPECT_LT(rel_error(to_host(out), ref), 1e-14);
}

TEST(Mlp, GeluBackwardMatchesFiniteDifferences) {
  const int n = 64;
  auto x = random_vector(n, 22, -4.0, 4.0);
  auto r = random_vector(n, 23);
  auto loss = [&]() {
    auto dx = to_device(x);
    Buffer<double> out("out", n);
    gelu_forward<double>(ExecSpace(), dx, out, n);
    return dot(to_host(out), r);
  };
  const auto prior = random_vector(n, 24);  // dx accumulates: start from non-zero
  auto dx = to_device(x), dr = to_device(r), grad = to_device(prior);
  gelu_backward<double>(ExecSpace(), dx, dr, grad, n);
  auto g = to_host(grad);
  for (int i = 0; i < n; ++i) g[i] -= prior[i];
  EXPECT_LT(rel_error(g, numeric_gradient(x, loss)), 1e-6);
}

TEST(Mlp, GroupedForwardMatchesReferenceWithEmptyGroup) {
  const int C = 5, F = 7;
  const std::vector<int> offsets = {0, 3, 3, 8};  // group 1 is empty
  const auto in = random_inputs(offsets.back(), 3, C, F, 31);
  const auto ref = ref_mlp(in.x, in.w1, in.b1, in.w2, in.b2, offsets, C, F);
  const auto got = run_mlp(in, offsets, C, F);
  EXPECT_LT(rel_error(got.pre, ref.pre), 1e-14);
  EXPECT_LT(rel_error(got.act, ref.act), 1e-14);
  EXPECT_LT(rel_error(got.out, ref.out), 1e-14);
  // The training precision agrees to float rounding.
  EXPECT_LT(rel_error(run_mlp<float>(in, offsets, C, F).out, ref.out), 1e-5);
}

TEST(Mlp, OneGroupEqualsDenseMlp) {
  const int M = 6, C = 4, F = 16;
  const auto in = random_inputs(M, 1, C, F, 41);
  // Dense reference written out directly: out = gelu(x w1 + b1) w2 + b2.
  std::vector<double> ref(std::size_t(M) * C);
  for (int m = 0; m < M; ++m) {
    std::vector<double> h(F);
    for (int f = 0; f < F; ++f) {
      double s = in.b1[f];
      for (int c = 0; c < C; ++c) s += in.x[m * C + c] * in.w1[c * F + f];
      h[f] = ref_gelu(s);
    }
    for (int c = 0; c < C; ++c) {
      double s = in.b2[c];
      for (int f = 0; f < F; ++f) s += h[f] * in.w2[f * C + c];
      ref[m * C + c] = s;
    }
  }
  EXPECT_LT(rel_error(run_mlp(in, {0, M}, C, F).out, ref), 1e-14);
}

TEST(Mlp, BackwardMatchesFiniteDifferences) {
  const int C = 4, F = 6, G = 3;
  const std::vector<int> offsets = {0, 2, 2, 5};  // includes an empty group
  const int M = offsets.back();
  auto in = random_inputs(M, G, C, F, 51);
  auto r = random_vector(std::size_t(M) * C, 56);  // loss = sum(out * r)
  auto loss = [&]() { return dot(run_mlp(in, offsets, C, F).out, r); };

  const auto fwd = run_mlp(in, offsets, C, F);
  auto x = to_device(in.x), w1 = to_device(in.w1), b1 = to_device(in.b1), w2 = to_device(in.w2),
       b2 = to_device(in.b2);
  auto pre = to_device(fwd.pre), act = to_device(fwd.act), dr = to_device(r);
  // Gradients start non-zero (they are accumulated into); the scratch starts as garbage.
  const auto px = random_vector(in.x.size(), 61), pw1 = random_vector(in.w1.size(), 62),
             pb1 = random_vector(in.b1.size(), 63), pw2 = random_vector(in.w2.size(), 64),
             pb2 = random_vector(in.b2.size(), 65);
  auto gx = to_device(px), gw1 = to_device(pw1), gb1 = to_device(pb1), gw2 = to_device(pw2),
       gb2 = to_device(pb2);
  auto dpre = to_device(random_vector(std::size_t(M) * F, 66));
  mlp_backward<double>(ExecSpace(), matrix(dr, M, C), matrix(x, M, C),
                       {matrix(pre, M, F), matrix(act, M, F)}, MlpWeights<double>(w1, b1, w2, b2),
                       matrix(dpre, M, F), matrix(gx, M, C), MlpWeights<double>(gw1, gb1, gw2, gb2),
                       offsets);

  auto delta = [](const Buffer<double>& g, const std::vector<double>& prior) {
    auto h = to_host(g);
    for (std::size_t i = 0; i < h.size(); ++i) h[i] -= prior[i];
    return h;
  };
  EXPECT_LT(rel_error(delta(gx, px), numeric_gradient(in.x, loss)), 1e-6);
  EXPECT_LT(rel_error(delta(gw1, pw1), numeric_gradient(in.w1, loss)), 1e-6);
  EXPECT_LT(rel_error(delta(gb1, pb1), numeric_gradient(in.b1, loss)), 1e-6);
  EXPECT_LT(rel_error(delta(gw2, pw2), numeric_gradient(in.w2, loss)), 1e-6);
  EXPECT_LT(rel_error(delta(gb2, pb2), numeric_gradient(in.b2, loss)), 1e-6);
  // The empty group's weights get no gradient at all.
  const auto dw1 = delta(gw1, pw1);
  for (int i = C * F; i < 2 * C * F; ++i) EXPECT_EQ(dw1[i], 0.0);
}

TEST(Gelu, FloatPathAgreesWithReferenceToFloatRounding) {
  // float uses an arithmetic exp (vectorizable); it must stay within float rounding of the
  // double reference everywhere, including the saturated tails.
  const int n = 4001;
  std::vector<float> x(n);
  for (int i = 0; i < n; ++i) x[i] = -20.f + 40.f * float(i) / float(n - 1);
  auto dx = to_device(x);
  Buffer<float> out("out", n), grad("grad", n), ones("ones", n);
  Kokkos::deep_copy(ones, 1.f);
  gelu_forward<float>(ExecSpace(), dx, out, n);
  gelu_backward<float>(ExecSpace(), dx, ones, grad, n);
  const auto o = to_host(out), g = to_host(grad);
  for (int i = 0; i < n; ++i) {
    const double xi = x[i], h = 1e-6;
    const double want = ref_gelu(xi), want_g = (ref_gelu(xi + h) - ref_gelu(xi - h)) / (2 * h);
    EXPECT_NEAR(o[i], want, 1e-6 * std::max(1.0, std::abs(want))) << xi;
    EXPECT_NEAR(g[i], want_g, 1e-5) << xi;
  }
  for (float v : {-1e30f, -100.f, 100.f, 1e30f}) EXPECT_TRUE(std::isfinite(mlp_detail::gelu(v)));
}
