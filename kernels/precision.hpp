// Reduced-precision products (train.matmul_precision): the rounding of a float to TF32 or bf16,
// and the two passes the gemm paths build on. A float keeps its 8 exponent bits in both; TF32
// keeps 10 explicit mantissa bits (of 23), bf16 7. Rounding is to nearest, ties to even, on the
// bit pattern (so denormals round on their own grid and the largest finite values may round to
// infinity, as a hardware conversion does); infinities pass through and a NaN stays a (quiet)
// NaN. The value stays a float: a rounded float is exactly representable in the narrow format.
// Doubles (the finite-difference tests) are never rounded.
#pragma once

#include "common.hpp"

namespace moe {

// How gemm multiplies floats (process-wide, like torch.set_float32_matmul_precision):
// fp32: plain FP32; tf32: operands rounded to TF32, FP32 accumulation and output; bf16:
// operands rounded to bf16, FP32 accumulation, and a fresh output (beta == 0, or a linear
// layer's forward) rounded to bf16 — a product accumulated into an existing FP32 buffer
// (beta != 0: the weight and bias gradients) stays FP32, as mixed-precision training keeps its
// main gradients. Set once from the config (Trainer); tests switch it with MatmulPrecisionScope.
enum class MatmulPrecision { fp32 = 0, tf32 = 1, bf16 = 2 };

void set_matmul_precision(MatmulPrecision p);
MatmulPrecision matmul_precision();
const char* matmul_precision_name(MatmulPrecision p);  // "fp32", "tf32", "bf16"
// The mode of a train.matmul_precision value; false for anything else.
bool parse_matmul_precision(const char* name, MatmulPrecision* out);

// Sets a mode for a scope and restores the previous one on leaving it.
class MatmulPrecisionScope {
 public:
  explicit MatmulPrecisionScope(MatmulPrecision p) : saved_(matmul_precision()) {
    set_matmul_precision(p);
  }
  ~MatmulPrecisionScope() { set_matmul_precision(saved_); }
  MatmulPrecisionScope(const MatmulPrecisionScope&) = delete;
  MatmulPrecisionScope& operator=(const MatmulPrecisionScope&) = delete;

 private:
  MatmulPrecision saved_;
};

namespace precision_detail {
// Keeps the top 32 - drop bits of x, rounded to nearest even on the dropped ones. Branch-free
// (selects only), so that loops over it vectorize.
KOKKOS_INLINE_FUNCTION float round_mantissa(float x, int drop) {
  union {
    float f;
    std::uint32_t u;
  } v{x};
  const std::uint32_t keep = ~((std::uint32_t(1) << drop) - 1u);
  const bool special = (v.u & 0x7f800000u) == 0x7f800000u;  // inf or NaN: no carry
  const std::uint32_t quiet = special && (v.u & 0x007fffffu) ? 0x00400000u : 0u;  // NaN stays NaN
  const std::uint32_t half = (std::uint32_t(1) << (drop - 1)) - 1u;      // just under half an ulp
  const std::uint32_t add = special ? 0u : half + ((v.u >> drop) & 1u);  // odd: the tie goes up
  v.u = ((v.u | quiet) + add) & keep;
  return v.f;
}
}  // namespace precision_detail

// x rounded to bf16 (1 sign, 8 exponent, 7 mantissa bits), as a float.
KOKKOS_INLINE_FUNCTION float round_to_bf16(float x) {
  return precision_detail::round_mantissa(x, 16);
}
// x rounded to TF32 (1 sign, 8 exponent, 10 mantissa bits), as a float.
KOKKOS_INLINE_FUNCTION float round_to_tf32(float x) {
  return precision_detail::round_mantissa(x, 13);
}

// A gemm operand as the mode multiplies it (fp32: unchanged).
KOKKOS_INLINE_FUNCTION float round_operand(float x, int mode) {
  return mode == int(MatmulPrecision::bf16)   ? round_to_bf16(x)
         : mode == int(MatmulPrecision::tf32) ? round_to_tf32(x)
                                              : x;
}

// Where the matrices of a two-level batch start: matrix (o, i) at X + o * outer_stride +
// i * inner_stride (matmul.hpp's GemmBatch, for one operand).
struct MatrixBatch {
  int inner = 1;
  Index inner_stride = 0;
  int outer = 1;
  Index outer_stride = 0;
};

// Copies the outer * inner matrices [rows, cols] (row stride ld) of X into workspace `slot`
// (0 or 1: one per operand), contiguous (matrix p at p * rows * cols, row stride cols), each
// element rounded as `mode` says; returns the copy. A Kokkos kernel on the default instance.
const float* round_operand_copy(MatmulPrecision mode, const float* X, int rows, int cols, int ld,
                                const MatrixBatch& batch, int slot);

// Rounds the outer * inner matrices [rows, cols] (row stride ld) of C to bf16 in place.
void round_output_bf16(float* C, int rows, int cols, int ld, const MatrixBatch& batch);

}  // namespace moe
