// The three gemm paths behind kernels/matmul.hpp, instantiated for float and double, and the
// tf32 / bf16 modes of kernels/precision.hpp on each.
#include "matmul.hpp"

#include <algorithm>
#include <type_traits>

#include "precision.hpp"
#include "workspace.hpp"

#if defined(MOE_HAVE_CUBLAS)
#include <cublas_v2.h>
#endif
#include <cblas.h>

namespace moe {
namespace {

constexpr bool kHostMemory = Kokkos::SpaceAccessibility<Kokkos::HostSpace, MemSpace>::accessible;
#if defined(MOE_HAVE_CUBLAS)
constexpr bool kCublas = !kHostMemory;
#else
constexpr bool kCublas = false;
#endif

template <class Real>
void cblas_gemm(bool tA, bool tB, int M, int N, int K, Real alpha, const Real* A, int lda,
                const Real* B, int ldb, Real beta, Real* C, int ldc) {
  const auto opA = tA ? CblasTrans : CblasNoTrans;
  const auto opB = tB ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<Real, float>)
    cblas_sgemm(CblasRowMajor, opA, opB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else
    cblas_dgemm(CblasRowMajor, opA, opB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

#if defined(MOE_HAVE_CUBLAS)
cublasHandle_t cublas_handle() {
  static cublasHandle_t handle = [] {
    cublasHandle_t h;
    MOE_CHECK(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS, "cublasCreate failed");
    // Run on the stream of Kokkos' default instance (its own stream since Kokkos 4), so the
    // products are ordered with the kernels around them.
    MOE_CHECK(cublasSetStream(h, ExecSpace().cuda_stream()) == CUBLAS_STATUS_SUCCESS,
              "cublasSetStream failed");
    return h;
  }();
  return handle;
}

// Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands. Floats
// in tf32 or bf16 mode take cublasGemmStridedBatchedEx with FP32 A, B, C and the tensor-core
// compute type (operands down-converted by cuBLAS, FP32 accumulation).
template <class Real>
void cublas_gemm_batched(bool tA, bool tB, int M, int N, int K, Real alpha, const Real* A, int lda,
                         Index sA, const Real* B, int ldb, Index sB, Real beta, Real* C, int ldc,
                         Index sC, int batch) {
  const auto opA = tA ? CUBLAS_OP_T : CUBLAS_OP_N;
  const auto opB = tB ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasStatus_t st;
  if constexpr (std::is_same_v<Real, float>) {
    const MatmulPrecision mode = matmul_precision();
    if (mode == MatmulPrecision::fp32) {
      st = cublasSgemmStridedBatched(cublas_handle(), opB, opA, N, M, K, &alpha, B, ldb, sB, A, lda,
                                     sA, &beta, C, ldc, sC, batch);
    } else {
      const cublasComputeType_t compute = mode == MatmulPrecision::bf16
                                              ? CUBLAS_COMPUTE_32F_FAST_16BF
                                              : CUBLAS_COMPUTE_32F_FAST_TF32;
      st = cublasGemmStridedBatchedEx(cublas_handle(), opB, opA, N, M, K, &alpha, B, CUDA_R_32F,
                                      ldb, (long long)sB, A, CUDA_R_32F, lda, (long long)sA, &beta,
                                      C, CUDA_R_32F, ldc, (long long)sC, batch, compute,
                                      CUBLAS_GEMM_DEFAULT);
    }
  } else {
    st = cublasDgemmStridedBatched(cublas_handle(), opB, opA, N, M, K, &alpha, B, ldb, sB, A, lda,
                                   sA, &beta, C, ldc, sC, batch);
  }
  MOE_CHECK(st == CUBLAS_STATUS_SUCCESS, "cuBLAS gemm failed");
}
#endif

// Portable fallback, the two-level batch in one kernel: one thread per output element of every
// product. Correct everywhere, fast nowhere.
template <class Real>
void kokkos_gemm_batched(bool tA, bool tB, int M, int N, int K, Real alpha, const Real* A, int lda,
                         const Real* B, int ldb, Real beta, Real* C, int ldc, const GemmBatch& g) {
  const int inner = g.inner;
  Kokkos::parallel_for(
      "moe::gemm_batched_fallback", range(Index(g.outer) * inner * M * N),
      KOKKOS_LAMBDA(const Index idx) {
        const Index p = idx / (Index(M) * N);
        const Index o = p / inner, b = p % inner;
        const Index i = (idx / N) % M;
        const Index j = idx % N;
        const Real* a = A + o * g.outer_a + b * g.inner_a;
        const Real* bb = B + o * g.outer_b + b * g.inner_b;
        Real acc = 0;
        for (Index k = 0; k < K; ++k) {
          const Real av = tA ? a[k * lda + i] : a[i * lda + k];
          const Real bv = tB ? bb[j * ldb + k] : bb[k * ldb + j];
          acc += av * bv;
        }
        Real* c = C + o * g.outer_c + b * g.inner_c + i * ldc + j;
        *c = alpha * acc + (beta == Real(0) ? Real(0) : beta * *c);
      });
}

// The products of a two-level batch on this build's path, in the operands' own precision.
template <class Real>
void run_products(bool tA, bool tB, int M, int N, int K, Real alpha, const Real* A, int lda,
                  const Real* B, int ldb, Real beta, Real* C, int ldc, const GemmBatch& g) {
  if constexpr (kHostMemory) {
    // BLAS reads memory directly: make sure earlier Kokkos kernels have finished.
    ExecSpace().fence();
    for (int o = 0; o < g.outer; ++o)
      for (int i = 0; i < g.inner; ++i)
        cblas_gemm<Real>(tA, tB, M, N, K, alpha, A + o * g.outer_a + i * g.inner_a, lda,
                         B + o * g.outer_b + i * g.inner_b, ldb, beta,
                         C + o * g.outer_c + i * g.inner_c, ldc);
  } else {
#if defined(MOE_HAVE_CUBLAS)
    // One strided-batched call per index of the shorter level, batched over the longer one.
    const bool by_outer = g.outer <= g.inner;
    const int calls = by_outer ? g.outer : g.inner, count = by_outer ? g.inner : g.outer;
    const Index ca = by_outer ? g.outer_a : g.inner_a, sa = by_outer ? g.inner_a : g.outer_a;
    const Index cb = by_outer ? g.outer_b : g.inner_b, sb = by_outer ? g.inner_b : g.outer_b;
    const Index cc = by_outer ? g.outer_c : g.inner_c, sc = by_outer ? g.inner_c : g.outer_c;
    for (int j = 0; j < calls; ++j)
      cublas_gemm_batched<Real>(tA, tB, M, N, K, alpha, A + j * ca, lda, sa, B + j * cb, ldb, sb,
                                beta, C + j * cc, ldc, sc, count);
#else
    kokkos_gemm_batched<Real>(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, g);
#endif
  }
}

constexpr bool kEmulates = !kCublas;  // BLAS and the Kokkos kernel get rounded operand copies

// Float products in tf32 or bf16 mode (kernels/precision.hpp). cuBLAS rounds the operands
// itself; the other paths multiply rounded copies in FP32. A bf16 product with beta == 0 (a
// fresh activation or activation gradient) has its output rounded to bf16 afterwards; with
// beta != 0 it accumulates into an FP32 buffer (weight and bias gradients) and stays FP32.
void reduced_products(MatmulPrecision mode, bool tA, bool tB, int M, int N, int K, float alpha,
                      const float* A, int lda, const float* B, int ldb, float beta, float* C,
                      int ldc, const GemmBatch& g) {
  if constexpr (kEmulates) {
    const int rowsA = tA ? K : M, colsA = tA ? M : K, rowsB = tB ? N : K, colsB = tB ? K : N;
    const Index pa = Index(rowsA) * colsA, pb = Index(rowsB) * colsB;
    const float* a =
        round_operand_copy(mode, A, rowsA, colsA, lda, {g.inner, g.inner_a, g.outer, g.outer_a}, 0);
    const float* b =
        round_operand_copy(mode, B, rowsB, colsB, ldb, {g.inner, g.inner_b, g.outer, g.outer_b}, 1);
    // The copies are contiguous: matrix (o, i) at (o * inner + i) * rows * cols.
    const GemmBatch packed{g.inner, pa,           pb,           g.inner_c,
                           g.outer, pa * g.inner, pb * g.inner, g.outer_c};
    // (BLAS wants a row stride of at least 1 even for an empty matrix.)
    run_products<float>(tA, tB, M, N, K, alpha, a, std::max(colsA, 1), b, std::max(colsB, 1), beta,
                        C, ldc, packed);
  } else {
    run_products<float>(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, g);
  }
  if (mode == MatmulPrecision::bf16 && beta == 0.f)
    round_output_bf16(C, M, N, ldc, {g.inner, g.inner_c, g.outer, g.outer_c});
}

}  // namespace

namespace {
std::int64_t g_gemm_calls = 0;
}  // namespace

std::int64_t gemm_call_count() {
  return g_gemm_calls;
}

template <class Real>
void gemm_batched(bool tA, bool tB, int M, int N, int K, Real alpha, const Real* A, int lda,
                  const Real* B, int ldb, Real beta, Real* C, int ldc, const GemmBatch& g) {
  if (M == 0 || N == 0 || g.inner == 0 || g.outer == 0) return;
  g_gemm_calls += std::min(g.inner, g.outer);  // run_products' cuBLAS calls
  if constexpr (std::is_same_v<Real, float>) {
    const MatmulPrecision mode = matmul_precision();
    if (mode != MatmulPrecision::fp32) {
      reduced_products(mode, tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, g);
      return;
    }
  }
  run_products<Real>(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, g);
}

template <class Real>
void gemm_strided_batched(bool tA, bool tB, int M, int N, int K, Real alpha, const Real* A, int lda,
                          Index sA, const Real* B, int ldb, Index sB, Real beta, Real* C, int ldc,
                          Index sC, int batch) {
  gemm_batched<Real>(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                     GemmBatch{batch, sA, sB, sC, 1, 0, 0, 0});
}

template <class Real>
void round_activation(Real* C, int rows, int cols, int ld) {
  if constexpr (std::is_same_v<Real, float>)
    if (matmul_precision() == MatmulPrecision::bf16 && rows > 0 && cols > 0)
      round_output_bf16(C, rows, cols, ld, MatrixBatch{});
}

template <class Real>
void gemm(bool tA, bool tB, int M, int N, int K, Real alpha, const Real* A, int lda, const Real* B,
          int ldb, Real beta, Real* C, int ldc) {
  gemm_strided_batched<Real>(tA, tB, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
}

template <class Real>
void add_column_sums(View2<const Real> dy, View1<Real> db) {
  const int rows = int(dy.extent(0)), cols = int(dy.extent(1));
  MOE_CHECK(Index(db.extent(0)) == cols, "add_column_sums: db must have one entry per column");
  if (rows == 0) return;
  bool fresh = false;  // the ones are set once per allocation
  View1<Real> ones = workspace<Real, WorkspaceTag::Ones>(rows, &fresh);
  if (fresh)
    Kokkos::parallel_for(
        "moe::ones", range(rows), KOKKOS_LAMBDA(const Index i) { ones(i) = Real(1); });
  // db[1, cols] += ones[1, rows] dy[rows, cols]
  gemm<Real>(false, false, 1, cols, rows, Real(1), ones.data(), rows, dy.data(), cols, Real(1),
             db.data(), cols);
}

const char* gemm_backend() {
  if constexpr (kHostMemory) return "cblas";
#if defined(MOE_HAVE_CUBLAS)
  return "cublas";
#else
  return "kokkos";
#endif
}

template void gemm<float>(bool, bool, int, int, int, float, const float*, int, const float*, int,
                          float, float*, int);
template void gemm<double>(bool, bool, int, int, int, double, const double*, int, const double*,
                           int, double, double*, int);
template void gemm_strided_batched<float>(bool, bool, int, int, int, float, const float*, int,
                                          Index, const float*, int, Index, float, float*, int,
                                          Index, int);
template void gemm_strided_batched<double>(bool, bool, int, int, int, double, const double*, int,
                                           Index, const double*, int, Index, double, double*, int,
                                           Index, int);

template void gemm_batched<float>(bool, bool, int, int, int, float, const float*, int, const float*,
                                  int, float, float*, int, const GemmBatch&);
template void gemm_batched<double>(bool, bool, int, int, int, double, const double*, int,
                                   const double*, int, double, double*, int, const GemmBatch&);
template void round_activation<float>(float*, int, int, int);
template void round_activation<double>(double*, int, int, int);
template void add_column_sums<float>(View2<const float>, View1<float>);
template void add_column_sums<double>(View2<const double>, View1<double>);

}  // namespace moe
