// gemm and the linear layer: forward against plain loops, backward against finite differences.
#include "matmul.hpp"
#include "support.hpp"

using namespace moe;
using namespace moe::test;

namespace {
// Reference: C = op(A) op(B), row-major, plain loops.
std::vector<double> ref_gemm(bool tA, bool tB, int M, int N, int K, const std::vector<double>& A,
                             const std::vector<double>& B) {
  std::vector<double> C(std::size_t(M) * N, 0.0);
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      double s = 0;
      for (int k = 0; k < K; ++k)
        s += (tA ? A[k * M + i] : A[i * K + k]) * (tB ? B[j * K + k] : B[k * N + j]);
      C[i * N + j] = s;
    }
  return C;
}
}  // namespace

TEST(Matmul, GemmAllTransposesMatchReference) {
  const int M = 7, N = 5, K = 9;
  for (int tA = 0; tA < 2; ++tA)
    for (int tB = 0; tB < 2; ++tB) {
      auto A = random_vector(M * K, 1), B = random_vector(K * N, 2);
      auto dA = to_device(A), dB = to_device(B);
      Buffer<double> dC("C", M * N);
      gemm<double>(tA, tB, M, N, K, 1.0, dA.data(), tA ? M : K, dB.data(), tB ? K : N, 0.0,
                   dC.data(), N);
      EXPECT_LT(rel_error(to_host(dC), ref_gemm(tA, tB, M, N, K, A, B)), 1e-14);
    }
}

TEST(Matmul, StridedBatchedMatchesPerMatrix) {
  const int M = 4, N = 3, K = 6, batch = 5;
  auto A = random_vector(batch * M * K, 3), B = random_vector(batch * K * N, 4);
  auto dA = to_device(A), dB = to_device(B);
  Buffer<double> dC("C", batch * M * N);
  gemm_strided_batched<double>(false, false, M, N, K, 1.0, dA.data(), K, M * K, dB.data(), N, K * N,
                               0.0, dC.data(), N, M * N, batch);
  auto C = to_host(dC);
  for (int b = 0; b < batch; ++b) {
    std::vector<double> a(A.begin() + b * M * K, A.begin() + (b + 1) * M * K);
    std::vector<double> bb(B.begin() + b * K * N, B.begin() + (b + 1) * K * N);
    std::vector<double> c(C.begin() + b * M * N, C.begin() + (b + 1) * M * N);
    EXPECT_LT(rel_error(c, ref_gemm(false, false, M, N, K, a, bb)), 1e-14);
  }
}

TEST(Matmul, TwoLevelBatchMatchesPerMatrix) {
  // Two outer groups of three products each, read from interleaved rows of wider matrices (as
  // attention's heads are) with beta = 1 accumulating into C.
  const int M = 4, N = 3, K = 5, inner = 3, outer = 2;
  const int lda = inner * K + 1, ldb = inner * N + 2, ldc = inner * N;
  const Index oa = Index(M) * lda, ob = Index(K) * ldb, oc = Index(M) * ldc;
  auto A = random_vector(outer * oa, 31), B = random_vector(outer * ob, 32);
  auto C0 = random_vector(outer * oc, 33);
  auto dA = to_device(A), dB = to_device(B), dC = to_device(C0);
  const GemmBatch g{inner, K, N, N, outer, oa, ob, oc};  // inner strides, then outer ones
  gemm_batched<double>(false, false, M, N, K, 2.0, dA.data(), lda, dB.data(), ldb, 1.0, dC.data(),
                       ldc, g);
  const auto C = to_host(dC);
  for (int o = 0; o < outer; ++o)
    for (int b = 0; b < inner; ++b) {
      std::vector<double> a(M * K), bb(K * N), c(M * N), want(M * N);
      for (int i = 0; i < M; ++i)
        for (int k = 0; k < K; ++k) a[i * K + k] = A[o * oa + i * lda + b * K + k];
      for (int k = 0; k < K; ++k)
        for (int j = 0; j < N; ++j) bb[k * N + j] = B[o * ob + k * ldb + b * N + j];
      const auto prod = ref_gemm(false, false, M, N, K, a, bb);
      for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j) {
          const Index at = o * oc + i * ldc + b * N + j;
          c[i * N + j] = C[at];
          want[i * N + j] = C0[at] + 2.0 * prod[i * N + j];
        }
      EXPECT_LT(rel_error(c, want), 1e-14) << o << " " << b;
    }
}

TEST(Matmul, LinearBackwardMatchesFiniteDifferences) {
  const int N = 6, in = 5, out = 4;
  auto x = random_vector(N * in, 5), w = random_vector(in * out, 6), b = random_vector(out, 7);
  auto r = random_vector(N * out, 8);  // loss = sum(y * r)
  auto forward = [&]() {
    auto dx = to_device(x), dw = to_device(w), db = to_device(b);
    Buffer<double> y("y", N * out);
    linear_forward<double>(ExecSpace(), matrix(dx, N, in), matrix(dw, in, out), db,
                           matrix(y, N, out));
    return dot(to_host(y), r);
  };
  auto dx_d = to_device(x), dw_d = to_device(w), db_d = to_device(b), dr = to_device(r);
  Buffer<double> gx("gx", N * in), gw("gw", in * out), gb("gb", out);
  linear_backward<double>(ExecSpace(), matrix(dr, N, out), matrix(dx_d, N, in),
                          matrix(dw_d, in, out), matrix(gx, N, in), matrix(gw, in, out), gb);
  EXPECT_LT(rel_error(to_host(gx), numeric_gradient(x, forward)), 1e-6);
  EXPECT_LT(rel_error(to_host(gw), numeric_gradient(w, forward)), 1e-6);
  EXPECT_LT(rel_error(to_host(gb), numeric_gradient(b, forward)), 1e-6);
}

TEST(Matmul, LinearForwardPresetBiasEqualsFill) {
  // BiasMode::Preset: the caller wrote the bias rows (the layernorm before the qkv product does);
  // the product accumulates onto them exactly as onto linear_forward's own fill.
  const int N = 6, in = 5, out = 4;
  auto x = random_vector(N * in, 9), w = random_vector(in * out, 10), b = random_vector(out, 11);
  auto dx = to_device(x), dw = to_device(w), db = to_device(b);
  Buffer<double> filled("filled", N * out);
  linear_forward<double>(ExecSpace(), matrix(dx, N, in), matrix(dw, in, out), db,
                         matrix(filled, N, out));
  std::vector<double> rows(N * out);
  for (int n = 0; n < N; ++n)
    for (int o = 0; o < out; ++o) rows[n * out + o] = b[o];
  auto preset = to_device(rows);
  linear_forward<double>(ExecSpace(), matrix(dx, N, in), matrix(dw, in, out), db,
                         matrix(preset, N, out), BiasMode::Preset);
  EXPECT_EQ(to_host(preset), to_host(filled));
}
