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

const float* round_operand_copy(MatmulPrecision mode, const float* X, int rows, int cols, int ld,
                                const MatrixBatch& batch, int slot) {
  const Index per = Index(rows) * cols, n = per * batch.outer * batch.inner;
  const View1<float> out = operand_workspace(slot, n);
  const int m = int(mode), inner = batch.inner;
  const Index is = batch.inner_stride, os = batch.outer_stride;
  Kokkos::parallel_for(
      "moe::gemm_round_operand", range(n), KOKKOS_LAMBDA(const Index idx) {
        const Index p = idx / per, e = idx % per;
        const Index r = e / cols, c = e % cols;
        out(idx) = round_operand(X[(p / inner) * os + (p % inner) * is + r * ld + c], m);
      });
  return out.data();
}

void round_output_bf16(float* C, int rows, int cols, int ld, const MatrixBatch& batch) {
  const Index per = Index(rows) * cols, n = per * batch.outer * batch.inner;
  const int inner = batch.inner;
  const Index is = batch.inner_stride, os = batch.outer_stride;
  Kokkos::parallel_for(
      "moe::gemm_round_output", range(n), KOKKOS_LAMBDA(const Index idx) {
        const Index p = idx / per, e = idx % per;
        float* c = C + (p / inner) * os + (p % inner) * is + (e / cols) * ld + e % cols;
        *c = round_to_bf16(*c);
      });
}

}  // namespace moe
