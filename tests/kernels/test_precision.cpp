// Reduced-precision products (kernels/precision.hpp): the TF32 and bf16 rounding against an
// arithmetic reference (scale to the format's grid, round to nearest even in double), the ties,
// infinities, NaNs and denormals by bit pattern; gemm, the two-level batch and the linear layer
// in tf32 and bf16 mode against products of operands the test rounds itself.
#include <cstring>
#include <limits>

#include "matmul.hpp"
#include "precision.hpp"
#include "support.hpp"

using namespace moe;
using namespace moe::test;

namespace {

std::uint32_t bits(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}
float from_bits(std::uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

// x rounded to `mant` explicit mantissa bits with float's exponent range: the grid spacing at
// x's binade (the denormal one below 2^-126) times the nearest integer, ties to even
// (std::nearbyint in the default rounding mode); beyond the largest finite value: infinity.
float ref_round(float x, int mant) {
  if (std::isnan(x) || std::isinf(x) || x == 0.f) return x;
  const double ax = std::fabs(double(x));
  int e = 0;
  std::frexp(ax, &e);  // ax = f 2^e, f in [0.5, 1): the leading bit is 2^(e - 1)
  const double ulp = std::ldexp(1.0, std::max(e - 1, -126) - mant);
  double y = std::nearbyint(ax / ulp) * ulp;
  const double largest = std::ldexp(2.0 - std::ldexp(1.0, -mant), 127);
  if (y > largest) y = std::numeric_limits<double>::infinity();
  return float(std::copysign(y, double(x)));
}

bool same(float a, float b) {  // bitwise, any NaN equal to any NaN
  return (std::isnan(a) && std::isnan(b)) || bits(a) == bits(b);
}

std::vector<double> rounded(const std::vector<double>& v, int mant) {
  std::vector<double> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = ref_round(float(v[i]), mant);
  return out;
}

std::vector<double> as_float(std::vector<double> v) {  // the values a float buffer holds
  for (double& x : v) x = float(x);
  return v;
}

// C = op(A) op(B) in double, row-major, A and B stored as in the gemm call (lda = stored cols).
std::vector<double> ref_gemm(bool tA, bool tB, int M, int N, int K, const std::vector<double>& A,
                             const std::vector<double>& B) {
  std::vector<double> C(std::size_t(M) * N, 0.0);
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j)
      for (int k = 0; k < K; ++k)
        C[i * N + j] += (tA ? A[k * M + i] : A[i * K + k]) * (tB ? B[j * K + k] : B[k * N + j]);
  return C;
}

std::vector<double> host_doubles(const Buffer<float>& d) {
  const auto h = to_host(d);
  return std::vector<double>(h.begin(), h.end());
}

// Emulated paths (BLAS, the Kokkos kernel) multiply exactly the rounded operands in FP32;
// cuBLAS down-converts itself, so its results are only held to the size of the rounding.
bool emulated() {
  return std::strcmp(gemm_backend(), "cublas") != 0;
}

constexpr int kTf32 = 10, kBf16 = 7;  // explicit mantissa bits

}  // namespace

TEST(Precision, RoundingMatchesArithmeticReferenceOnRandomBitPatterns) {
  std::mt19937 rng(7);
  for (int i = 0; i < 400000; ++i) {
    const float x = from_bits(rng());  // every class: normals, denormals, zeros, inf, NaN
    ASSERT_TRUE(same(round_to_bf16(x), ref_round(x, kBf16))) << std::hex << bits(x);
    ASSERT_TRUE(same(round_to_tf32(x), ref_round(x, kTf32))) << std::hex << bits(x);
  }
}

TEST(Precision, TiesGoToEvenAndSpecialValuesPass) {
  struct Case {
    std::uint32_t in, bf16, tf32;
  };
  const Case cases[] = {
      {0x3F800000u, 0x3F800000u, 0x3F800000u},  // 1: exact in both
      {0x3F808000u, 0x3F800000u, 0x3F808000u},  // 1 + 2^-8: bf16 tie, even (down)
      {0x3F818000u, 0x3F820000u, 0x3F818000u},  // bf16 tie above an odd mantissa: up
      {0x3F808001u, 0x3F810000u, 0x3F808000u},  // just above the bf16 tie: up
      {0x3F807FFFu, 0x3F800000u, 0x3F808000u},  // just below the bf16 tie: down
      {0x3F801000u, 0x3F800000u, 0x3F800000u},  // 1 + 2^-11: TF32 tie, even (down)
      {0x3F803000u, 0x3F800000u, 0x3F804000u},  // TF32 tie above an odd mantissa: up
      {0xBF808001u, 0xBF810000u, 0xBF808000u},  // negative values mirror positive ones
      {0x7F7FFFFFu, 0x7F800000u, 0x7F800000u},  // the largest float rounds to infinity
      {0x7F7F7FFFu, 0x7F7F0000u, 0x7F7F8000u},  // just below bf16's overflow tie: finite
      {0x7F800000u, 0x7F800000u, 0x7F800000u},  // +inf
      {0xFF800000u, 0xFF800000u, 0xFF800000u},  // -inf
      {0x80000000u, 0x80000000u, 0x80000000u},  // -0
      {0x00008000u, 0x00000000u, 0x00008000u},  // denormal bf16 tie: to even zero
      {0x00018000u, 0x00020000u, 0x00018000u},  // denormal bf16 tie above odd: up
      {0x00000001u, 0x00000000u, 0x00000000u},  // the smallest denormal
      {0x007FFFFFu, 0x00800000u, 0x00800000u},  // the largest denormal rounds up to 2^-126
  };
  for (const Case& c : cases) {
    EXPECT_EQ(bits(round_to_bf16(from_bits(c.in))), c.bf16) << std::hex << c.in;
    EXPECT_EQ(bits(round_to_tf32(from_bits(c.in))), c.tf32) << std::hex << c.in;
  }
  // NaNs stay NaN even when the payload sits in the dropped bits only.
  for (std::uint32_t nan : {0x7F800001u, 0xFF800001u, 0x7FC00000u, 0x7F801000u}) {
    EXPECT_TRUE(std::isnan(round_to_bf16(from_bits(nan)))) << std::hex << nan;
    EXPECT_TRUE(std::isnan(round_to_tf32(from_bits(nan)))) << std::hex << nan;
  }
}

TEST(Precision, NamesParse) {
  for (MatmulPrecision p : {MatmulPrecision::fp32, MatmulPrecision::tf32, MatmulPrecision::bf16}) {
    MatmulPrecision q = MatmulPrecision::fp32;
    EXPECT_TRUE(parse_matmul_precision(matmul_precision_name(p), &q));
    EXPECT_EQ(q, p);
  }
  MatmulPrecision q = MatmulPrecision::tf32;
  EXPECT_FALSE(parse_matmul_precision("fp16", &q));
  EXPECT_FALSE(parse_matmul_precision("BF16", &q));
  EXPECT_EQ(q, MatmulPrecision::tf32);  // untouched
}

// Every transpose, both modes, beta = 0: the product of the rounded operands (and in bf16 the
// output rounded too), and visibly not the FP32 product.
TEST(Precision, GemmMultipliesRoundedOperands) {
  const int M = 7, N = 5, K = 33;
  for (MatmulPrecision mode : {MatmulPrecision::tf32, MatmulPrecision::bf16}) {
    const MatmulPrecisionScope scope(mode);
    const int mant = mode == MatmulPrecision::bf16 ? kBf16 : kTf32;
    for (int tA = 0; tA < 2; ++tA)
      for (int tB = 0; tB < 2; ++tB) {
        const auto A = as_float(random_vector(M * K, 11 + tA)),
                   B = as_float(random_vector(K * N, 13 + tB));
        const Buffer<float> dA = to_device(std::vector<float>(A.begin(), A.end())),
                            dB = to_device(std::vector<float>(B.begin(), B.end()));
        Buffer<float> dC("C", M * N);
        gemm<float>(tA, tB, M, N, K, 1.f, dA.data(), tA ? M : K, dB.data(), tB ? K : N, 0.f,
                    dC.data(), N);
        const auto C = host_doubles(dC);
        const auto want = ref_gemm(tA, tB, M, N, K, rounded(A, mant), rounded(B, mant));
        const auto fp32 = ref_gemm(tA, tB, M, N, K, A, B);
        const std::string where = std::string(matmul_precision_name(mode)) +
                                  " tA=" + std::to_string(tA) + " tB=" + std::to_string(tB);
        // Rounding the operands moves the product by ~2^-mant relative; FP32 accumulation
        // of the rounded ones by ~1e-7, the bf16 output rounding by <= 2^-8 per element.
        const double out_tol = mode == MatmulPrecision::bf16 ? 4e-3 : 1e-6;
        if (emulated()) {
          EXPECT_LT(rel_error(C, want), out_tol) << where;
          EXPECT_GT(rel_error(C, fp32), mode == MatmulPrecision::bf16 ? 1e-3 : 5e-5) << where;
        } else {
          EXPECT_LT(rel_error(C, fp32), 2e-2) << where;
        }
        if (mode == MatmulPrecision::bf16) {
          for (double c : C) {
            ASSERT_EQ(bits(float(c)) & 0xFFFFu, 0u) << where << ": output not bf16: " << c;
          }
        }
      }
  }
}

// beta != 0 accumulates into FP32 (a gradient buffer): bf16 operands, no output rounding.
TEST(Precision, Bf16AccumulationIntoExistingBufferStaysFp32) {
  const int M = 6, N = 8, K = 17;
  const MatmulPrecisionScope scope(MatmulPrecision::bf16);
  const auto A = as_float(random_vector(M * K, 21)), B = as_float(random_vector(K * N, 22));
  const auto C0 = as_float(random_vector(M * N, 23));
  const Buffer<float> dA = to_device(std::vector<float>(A.begin(), A.end())),
                      dB = to_device(std::vector<float>(B.begin(), B.end()));
  Buffer<float> dC = to_device(std::vector<float>(C0.begin(), C0.end()));
  gemm<float>(false, false, M, N, K, 1.f, dA.data(), K, dB.data(), N, 1.f, dC.data(), N);
  const auto C = host_doubles(dC);
  auto want = ref_gemm(false, false, M, N, K, rounded(A, kBf16), rounded(B, kBf16));
  for (std::size_t i = 0; i < want.size(); ++i) want[i] += C0[i];
  if (emulated()) {
    EXPECT_LT(rel_error(C, want), 1e-6);
  }
  int not_bf16 = 0;
  for (double c : C) not_bf16 += (bits(float(c)) & 0xFFFFu) != 0;
  EXPECT_GT(not_bf16, int(C.size()) / 2);  // FP32 values, not bf16 ones
}

// The two-level batch (attention's layout) with alpha and beta = 0, and the linear layer with a
// bias (beta = 1 onto the bias, then the activation rounded).
TEST(Precision, BatchedProductsAndLinearLayerFollowTheMode) {
  const MatmulPrecisionScope scope(MatmulPrecision::bf16);
  const int M = 3, N = 4, K = 6, inner = 2, outer = 3;
  const int lda = inner * K + 1, ldb = inner * N, ldc = inner * N + 3;
  const Index oa = Index(M) * lda, ob = Index(K) * ldb, oc = Index(M) * ldc;
  const auto A = as_float(random_vector(outer * oa, 31)),
             B = as_float(random_vector(outer * ob, 32));
  const Buffer<float> dA = to_device(std::vector<float>(A.begin(), A.end())),
                      dB = to_device(std::vector<float>(B.begin(), B.end()));
  Buffer<float> dC("C", outer * oc);
  const GemmBatch g{inner, K, N, N, outer, oa, ob, oc};
  gemm_batched<float>(false, false, M, N, K, 0.5f, dA.data(), lda, dB.data(), ldb, 0.f, dC.data(),
                      ldc, g);
  const auto C = host_doubles(dC);
  for (int o = 0; o < outer; ++o)
    for (int b = 0; b < inner; ++b) {
      std::vector<double> a(M * K), bb(K * N), c(M * N);
      for (int i = 0; i < M; ++i)
        for (int k = 0; k < K; ++k) a[i * K + k] = A[o * oa + i * lda + b * K + k];
      for (int k = 0; k < K; ++k)
        for (int j = 0; j < N; ++j) bb[k * N + j] = B[o * ob + k * ldb + b * N + j];
      auto want = ref_gemm(false, false, M, N, K, rounded(a, kBf16), rounded(bb, kBf16));
      for (double& w : want) w *= 0.5;
      for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j) {
          c[i * N + j] = C[o * oc + i * ldc + b * N + j];
          ASSERT_EQ(bits(float(c[i * N + j])) & 0xFFFFu, 0u) << o << " " << b;
        }
      if (emulated()) {
        EXPECT_LT(rel_error(c, want), 4e-3) << o << " " << b;
      }
    }
  for (Index i = 0; i < outer * oc; ++i)  // the padding columns between products are untouched
    if (i % ldc >= inner * N) {
      ASSERT_EQ(C[i], 0.0) << i;
    }

  const int rows = 5, in = 9, out = 4;
  const auto x = as_float(random_vector(rows * in, 41)), w = as_float(random_vector(in * out, 42));
  const auto bias = as_float(random_vector(out, 43));
  const Buffer<float> dx = to_device(std::vector<float>(x.begin(), x.end())),
                      dw = to_device(std::vector<float>(w.begin(), w.end())),
                      db = to_device(std::vector<float>(bias.begin(), bias.end()));
  Buffer<float> dy("y", rows * out);
  linear_forward<float>(ExecSpace(), matrix(View1<const float>(dx.data(), rows * in), rows, in),
                        matrix(View1<const float>(dw.data(), in * out), in, out),
                        View1<const float>(db.data(), out), matrix(dy, rows, out));
  const auto y = host_doubles(dy);
  auto want = ref_gemm(false, false, rows, out, in, rounded(x, kBf16), rounded(w, kBf16));
  for (int r = 0; r < rows; ++r)
    for (int o = 0; o < out; ++o) want[r * out + o] += bias[o];
  for (double v : y) ASSERT_EQ(bits(float(v)) & 0xFFFFu, 0u) << "linear output not bf16: " << v;
  if (emulated()) {
    EXPECT_LT(rel_error(y, want), 4e-3);
  }
}

// Doubles (the finite-difference tests) are never rounded, whatever the mode.
TEST(Precision, DoubleProductsIgnoreTheMode) {
  const int M = 4, N = 6, K = 11;
  const auto A = random_vector(M * K, 51), B = random_vector(K * N, 52);
  const auto dA = to_device(A), dB = to_device(B);
  std::vector<std::vector<double>> results;
  for (MatmulPrecision mode :
       {MatmulPrecision::fp32, MatmulPrecision::tf32, MatmulPrecision::bf16}) {
    const MatmulPrecisionScope scope(mode);
    Buffer<double> dC("C", M * N);
    gemm<double>(false, true, M, N, K, 1.0, dA.data(), K, dB.data(), K, 0.0, dC.data(), N);
    results.push_back(to_host(dC));
  }
  EXPECT_EQ(results[1], results[0]);
  EXPECT_EQ(results[2], results[0]);
}
