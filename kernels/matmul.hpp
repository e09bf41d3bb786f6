// Dense matrix products: one interface, three paths. On host memory it calls CBLAS (OpenBLAS),
// on CUDA memory cuBLAS (when built with it), otherwise a portable Kokkos kernel. All matrices
// are row-major; op(X) is X or X^T. The linear layer (y = x W + b) and its backward sit on top.
// Float products follow the process-wide matmul precision (fp32, tf32 or bf16:
// kernels/precision.hpp, which says what each mode rounds); double products never round.
#pragma once

#include <cstdint>

#include "common.hpp"
#include "precision.hpp"

namespace moe {

// C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C. Pointers are into the execution
// space's memory; lda/ldb/ldc are row strides of A, B, C as stored.
template <class Real>
void gemm(bool transA, bool transB, int M, int N, int K, Real alpha, const Real* A, int lda,
          const Real* B, int ldb, Real beta, Real* C, int ldc);

// `batch` independent products; matrix i of X starts at X + i * strideX.
template <class Real>
void gemm_strided_batched(bool transA, bool transB, int M, int N, int K, Real alpha, const Real* A,
                          int lda, Index strideA, const Real* B, int ldb, Index strideB, Real beta,
                          Real* C, int ldc, Index strideC, int batch);

// The layout of a two-level batch of products: product (o, i), o < outer, i < inner, reads
// A + o * outer_a + i * inner_a (likewise B) and writes C + o * outer_c + i * inner_c. Attention
// needs it: its heads are hd apart within a sequence, its sequences S rows apart.
struct GemmBatch {
  int inner = 1;
  Index inner_a = 0, inner_b = 0, inner_c = 0;
  int outer = 1;
  Index outer_a = 0, outer_b = 0, outer_c = 0;
};

// outer * inner independent products laid out as `batch` says. On the host, a loop of BLAS
// calls; with cuBLAS, min(outer, inner) strided-batched calls; the Kokkos path is one kernel.
template <class Real>
void gemm_batched(bool transA, bool transB, int M, int N, int K, Real alpha, const Real* A, int lda,
                  const Real* B, int ldb, Real beta, Real* C, int ldc, const GemmBatch& batch);

// db [cols] += the column sums of dy [rows, cols]: a product with a vector of ones, so it runs
// at BLAS speed (a gemv on every path) and in a fixed order for a fixed BLAS thread count.
template <class Real>
void add_column_sums(View2<const Real> dy, View1<Real> db);

// In bf16 mode, rounds a fresh float activation [rows, cols] (row stride ld) to bf16 in place, as
// a bf16 product's output is; otherwise (fp32, tf32, double) nothing.
template <class Real>
void round_activation(Real* C, int rows, int cols, int ld);

// Name of the path gemm takes in this build ("cblas", "cublas" or "kokkos").
const char* gemm_backend();

// Library calls this process's products have made so far, counted as a cuBLAS build makes them
// (one per gemm; min(outer, inner) strided-batched calls per gemm_batched), whatever the path
// of this build: each is at least one kernel launch on a GPU, beside the Kokkos launches the
// Kokkos Tools counter sees. Host code, not thread-safe (the products are issued by one thread).
std::int64_t gemm_call_count();

// Where linear_forward's bias comes from. Fill: it writes b into every row of y first (one
// launch). Preset: the caller already did (e.g. the layernorm before the layer, through its
// RowBias output, in a launch it makes anyway), so only the product runs.
enum class BiasMode { Fill, Preset };

// y [N,out] = x [N,in] * w [in,out] + b [out]  (b may be empty: no bias). The bias fill runs on
// `exec`; the product on the gemm path's stream (the default instance's). In bf16 mode y is an
// activation: rounded to bf16 with its bias added (the product accumulates onto the bias in FP32).
template <class Real>
void linear_forward(const ExecSpace& exec, View2<const Real> x, View2<const Real> w,
                    View1<const Real> b, View2<Real> y, BiasMode bias_mode = BiasMode::Fill) {
  const int N = int(x.extent(0)), in = int(x.extent(1)), out = int(w.extent(1));
  MOE_CHECK(Index(w.extent(0)) == in && Index(y.extent(1)) == out, "linear: shapes disagree");
  const bool has_bias = b.extent(0) > 0;
  if (has_bias && bias_mode == BiasMode::Fill) {
    // One team per row, threads over columns: no index division, a vectorizable row copy.
    using Policy = Kokkos::TeamPolicy<ExecSpace>;
    Kokkos::parallel_for(
        "moe::linear_bias", Policy(exec, N, Kokkos::AUTO),
        KOKKOS_LAMBDA(const Policy::member_type& team) {
          Real* row = &y(team.league_rank(), 0);
          Kokkos::parallel_for(Kokkos::TeamThreadRange(team, out),
                               [&](const int o) { row[o] = b(o); });
        });
  }
  gemm<Real>(false, false, N, out, in, Real(1), x.data(), in, w.data(), out,
             has_bias ? Real(1) : Real(0), y.data(), out);
  if (has_bias) round_activation<Real>(y.data(), N, out, out);  // beta = 0 rounds in gemm
}

// Whether a backward adds its input gradient to dx or writes it (sparing the caller a zero-fill
// of a buffer nothing else writes to).
enum class DxMode { Accumulate, Overwrite };

// Accumulates dx [N,in] += dy w^T (or writes it: DxMode::Overwrite), dw [in,out] += x^T dy,
// db [out] += sum over rows of dy (dx, db may be empty).
template <class Real>
void linear_backward(const ExecSpace& /*exec*/, View2<const Real> dy, View2<const Real> x,
                     View2<const Real> w, View2<Real> dx, View2<Real> dw, View1<Real> db,
                     DxMode dx_mode = DxMode::Accumulate) {
  const int N = int(dy.extent(0)), in = int(x.extent(1)), out = int(dy.extent(1));
  if (dx.extent(0) > 0)
    gemm<Real>(false, true, N, in, out, Real(1), dy.data(), out, w.data(), out,
               dx_mode == DxMode::Accumulate ? Real(1) : Real(0), dx.data(), in);
  gemm<Real>(true, false, in, out, N, Real(1), x.data(), in, dy.data(), out, Real(1), dw.data(),
             out);
  if (db.extent(0) > 0) add_column_sums<Real>(dy, db);
}

}  // namespace moe
