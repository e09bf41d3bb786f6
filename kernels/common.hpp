// Shared vocabulary of every kernel: the execution and memory spaces, the view types that
// kernels take, and small helpers. Kernels are templates over the scalar type so the same
// code runs in float (training) and in double (finite-difference tests).
#pragma once

#include <Kokkos_Core.hpp>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <type_traits>

namespace moe {

using ExecSpace = Kokkos::DefaultExecutionSpace;
using MemSpace = ExecSpace::memory_space;
using HostSpace = Kokkos::HostSpace;
using Index = std::int64_t;  // element offsets; dims fit in int, products may not

// What kernels take: a flat, unmanaged, contiguous array in the execution space's memory.
// Flat arrays (llm.c style) let one parameter buffer hold every tensor, so the optimizer,
// the gradient norm and the all-reduce each see a single range.
template <class T>
using View1 =
    Kokkos::View<T*, Kokkos::LayoutRight, MemSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

// What 2-D kernels take: a row-major [rows, cols] matrix in the execution space's memory, its
// extents named by the view itself (x.extent(0) rows, x.extent(1) columns).
template <class T>
using View2 =
    Kokkos::View<T**, Kokkos::LayoutRight, MemSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

// What owns memory: a managed, reference-counted array in the execution space's memory.
template <class T>
using Buffer = Kokkos::View<T*, Kokkos::LayoutRight, MemSpace>;

// A window [offset, offset + n) of an owning buffer, as a kernel argument.
template <class T>
inline View1<T> slice(const Buffer<T>& buf, Index offset, Index n) {
  return View1<T>(buf.data() + offset, n);
}
template <class T>
inline View1<T> slice(const View1<T>& v, Index offset, Index n) {
  return View1<T>(v.data() + offset, n);
}

// The first rows * cols elements of a flat array as a [rows, cols] matrix.
template <class T>
inline View2<T> matrix(const View1<T>& v, Index rows, Index cols) {
  return View2<T>(v.data(), rows, cols);
}
template <class T>
inline View2<T> matrix(const Buffer<T>& buf, Index rows, Index cols) {
  return View2<T>(buf.data(), rows, cols);
}

// Rows [first, first + n) of a matrix, as a matrix.
template <class T>
inline View2<T> row_block(const View2<T>& m, Index first, Index n) {
  return View2<T>(m.data() + first * Index(m.extent(1)), n, m.extent(1));
}

inline Kokkos::RangePolicy<ExecSpace, Kokkos::IndexType<Index>> range(Index n) {
  return Kokkos::RangePolicy<ExecSpace, Kokkos::IndexType<Index>>(0, n);
}
// [0, n) on a given execution space instance (its stream on a GPU).
inline Kokkos::RangePolicy<ExecSpace, Kokkos::IndexType<Index>> range(const ExecSpace& exec,
                                                                      Index n) {
  return Kokkos::RangePolicy<ExecSpace, Kokkos::IndexType<Index>>(exec, 0, n);
}

// Sets every element to zero (gradient buffers are accumulated into, so they start at 0).
template <class Real>
void fill_zero(View1<Real> x, Index n) {
  Kokkos::parallel_for(
      "moe::fill_zero", range(n), KOKKOS_LAMBDA(const Index i) { x(i) = Real(0); });
}

// Sum of n elements, in Real (a tree reduction on devices; sequential on Serial).
template <class Real>
Real sum(View1<const Real> x, Index n) {
  Real s = 0;
  Kokkos::parallel_reduce(
      "moe::sum", range(n), KOKKOS_LAMBDA(const Index i, Real& acc) { acc += x(i); }, s);
  return s;
}

// Math callable inside kernels on every supported Kokkos. Kokkos' own functions exist from 3.7
// on (what CUDA and HIP builds use); the older Kokkos this also builds against (3.4, host
// backends only) gets std::, which is what Kokkos' versions call on the host anyway.
namespace math {
#if KOKKOS_VERSION >= 30700
#define MOE_KERNEL_MATH(name)                \
  template <class Real>                      \
  KOKKOS_INLINE_FUNCTION Real name(Real x) { \
    return Kokkos::name(x);                  \
  }
#else
#define MOE_KERNEL_MATH(name)                \
  template <class Real>                      \
  KOKKOS_INLINE_FUNCTION Real name(Real x) { \
    return std::name(x);                     \
  }
#endif
MOE_KERNEL_MATH(exp)
MOE_KERNEL_MATH(log)
MOE_KERNEL_MATH(sqrt)
MOE_KERNEL_MATH(tanh)
#undef MOE_KERNEL_MATH

// exp(x) in float from arithmetic only (no library call), so that loops over it vectorize on
// CPUs; also fine on GPUs. x = k ln2 + r with |r| <= ln2/2 (k rounded by the 1.5 * 2^23 trick),
// exp(r) by its Taylor series to r^7 (truncation < 6e-9 relative, below float rounding), and 2^k
// put straight into the exponent bits. Arguments are clamped to [-87, 88] (no inf, no
// denormals): exp(-87) ~ 1.6e-38, exp(88) ~ 1.7e38.
KOKKOS_INLINE_FUNCTION float exp_float(float x) {
  x = x < -87.f ? -87.f : (x > 88.f ? 88.f : x);
  const float magic = 12582912.f;  // 1.5 * 2^23: adding it rounds to an integer
  const float t = x * 1.44269504f + magic;
  const float k = t - magic;
  const float r = (x - k * 0.693145752f) - k * 1.42860677e-6f;  // ln2 split in two parts
  float p = 1.f / 5040.f;
  p = p * r + 1.f / 720.f;
  p = p * r + 1.f / 120.f;
  p = p * r + 1.f / 24.f;
  p = p * r + 1.f / 6.f;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  union {
    float f;
    std::int32_t i;
  } tk{t}, scale{0.f};
  scale.i = (tk.i - 0x4B400000 + 127) << 23;  // k = bits(t) - bits(magic); 2^k
  return p * scale.f;
}

// exp for the hot elementwise loops (GELU, softmax cross-entropy): the arithmetic one in float,
// the library one in double (the precision of the finite-difference tests).
template <class Real>
KOKKOS_INLINE_FUNCTION Real fast_exp(Real x) {
  if constexpr (std::is_same_v<Real, float>)
    return exp_float(x);
  else
    return exp(x);
}
}  // namespace math

// Fatal internal error with file and line (for broken invariants, not for user input).
#define MOE_CHECK(cond, msg)                                                                   \
  do {                                                                                         \
    if (!(cond)) {                                                                             \
      std::fprintf(stderr, "moe-suite internal error at %s:%d: %s (%s)\n", __FILE__, __LINE__, \
                   msg, #cond);                                                                \
      std::abort();                                                                            \
    }                                                                                          \
  } while (0)

}  // namespace moe

namespace moe {

// Counter-based randomness usable inside kernels: a pure function of (key, counter), so every
// element's draw is reproducible whatever the backend, thread count or launch order.
KOKKOS_INLINE_FUNCTION std::uint64_t mix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Uniform in [0, 1) from the top 53 bits of mix64(key ^ mix64(counter)).
KOKKOS_INLINE_FUNCTION double uniform01(std::uint64_t key, std::uint64_t counter) {
  return double(mix64(key ^ mix64(counter)) >> 11) * (1.0 / 9007199254740992.0);
}

}  // namespace moe
