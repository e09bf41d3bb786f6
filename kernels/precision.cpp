// The process-wide matmul precision and the rounding passes of kernels/precision.hpp.
#include "precision.hpp"

#include <cstring>

namespace moe {
namespace {

MatmulPrecision g_precision = MatmulPrecision::fp32;

// One grow-only array per operand slot, kept across calls (a training step allocates nothing)
// and freed by Kokkos::finalize, as kernels/workspace.hpp does for the other kernels.
View1<float> operand_workspace(int slot, Index n) {
  static Buffer<float>* bufs = nullptr;
  if (!bufs) {
    bufs = new Buffer<float>[2];
    Kokkos::push_finalize_hook([] {
      delete[] bufs;
      bufs = nullptr;
    });
  }
  Buffer<float>& buf = bufs[slot];
  if (Index(buf.extent(0)) < n) {
    buf = Buffer<float>();  // free the old array before allocating the larger one
    buf = Buffer<float>(Kokkos::view_alloc(Kokkos::WithoutInitializing, "moe::gemm_operand"), n);
  }
  return View1<float>(buf.data(), n);
}

}  // namespace

void set_matmul_precision(MatmulPrecision p) {
  g_precision = p;
}

MatmulPrecision matmul_precision() {
  return g_precision;
}

const char* matmul_precision_name(MatmulPrecision p) {
  switch (p) {
    case MatmulPrecision::tf32:
      return "tf32";
    case MatmulPrecision::bf16:
      return "bf16";
    default:
      return "fp32";
  }
}

bool parse_matmul_precision(const char* name, MatmulPrecision* out) {
  for (MatmulPrecision p : {MatmulPrecision::fp32, MatmulPrecision::tf32, MatmulPrecision::bf16})
    if (std::strcmp(name, matmul_precision_name(p)) == 0) {
      *out = p;
      return true;
    }
  return false;
}

// One team per matrix row, its threads over the row's columns: one index division per row, a
// contiguous (vectorizable, coalesced) inner loop.
using RowPolicy = Kokkos::TeamPolicy<ExecSpace>;

const float* round_operand_copy(MatmulPrecision mode, const float* X, int rows, int cols, int ld,
                                const MatrixBatch& batch, int slot) {
  const Index per = Index(rows) * cols, n = per * batch.outer * batch.inner;
  const View1<float> out = operand_workspace(slot, n);
  const int m = int(mode), inner = batch.inner, nrows = rows * batch.outer * inner;
  const Index is = batch.inner_stride, os = batch.outer_stride;
  if (nrows == 0 || cols == 0) return out.data();
  Kokkos::parallel_for(
      "moe::gemm_round_operand", RowPolicy(nrows, Kokkos::AUTO),
      KOKKOS_LAMBDA(const RowPolicy::member_type& team) {
        const int row = team.league_rank(), p = row / rows, r = row % rows;
        const float* src = X + (p / inner) * os + (p % inner) * is + Index(r) * ld;
        float* dst = out.data() + Index(row) * cols;
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, cols),
                             [&](const int c) { dst[c] = round_operand(src[c], m); });
      });
  return out.data();
}

void round_output_bf16(float* C, int rows, int cols, int ld, const MatrixBatch& batch) {
  const int inner = batch.inner, nrows = rows * batch.outer * inner;
  const Index is = batch.inner_stride, os = batch.outer_stride;
  if (nrows == 0 || cols == 0) return;
  Kokkos::parallel_for(
      "moe::gemm_round_output", RowPolicy(nrows, Kokkos::AUTO),
      KOKKOS_LAMBDA(const RowPolicy::member_type& team) {
        const int row = team.league_rank(), p = row / rows, r = row % rows;
        float* c = C + (p / inner) * os + (p % inner) * is + Index(r) * ld;
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, cols),
                             [&](const int j) { c[j] = round_to_bf16(c[j]); });
      });
}

}  // namespace moe
