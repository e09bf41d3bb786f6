// moe-alltoall-bench's data check: every element sent carries a code of its source rank and
// index, and the receivers count the elements that are not where they belong.
#pragma once

#include "common.hpp"

namespace moe_alltoall_bench {

using moe::Index;

// The value every element carries: its source rank and its index in the
// source's buffer, kept below 2^24 so the float holds it exactly (a misplaced
// element would need to move by a multiple of 2^24 floats, or across ranks by
// an exact multiple of the rank stride, to go unseen).
KOKKOS_INLINE_FUNCTION float code(Index source, Index index) {
  return float((source * 1000003 + index) & ((Index(1) << 24) - 1));
}

inline void fill_codes(moe::Buffer<float> buf, int rank) {
  moe::View1<float> v(buf.data(), buf.extent(0));
  const Index src = rank;
  Kokkos::parallel_for(
      "moe::a2a_fill", moe::range(Index(buf.extent(0))),
      KOKKOS_LAMBDA(const Index j) { v(j) = code(src, j); });
}

// Mismatches in an MPI_Alltoall result: receiver q's block s came from block q
// of rank s.
inline Index alltoall_errors(moe::View1<const float> recv, Index block, int P, int q) {
  Index bad = 0;
  Kokkos::parallel_reduce(
      "moe::a2a_check", moe::range(block * P),
      KOKKOS_LAMBDA(const Index k, Index& acc) {
        const Index s = k / block, i = k - s * block;
        if (recv(k) != code(s, Index(q) * block + i)) ++acc;
      },
      bad);
  return bad;
}

// Mismatches in the exchange output on rank q: expert-major, local expert 0 (a
// rows from each source in rank order) then local expert 1 (b rows each).
// Source s sent rank q its rows [q*R, q*R + a) for expert 0 and [q*R + a,
// (q+1)*R) for expert 1, where R = a + b.
inline Index exchange_errors(moe::View1<const float> out, Index a, Index b, int P, int q, int C) {
  const Index R = a + b;
  Index bad = 0;
  Kokkos::parallel_reduce(
      "moe::a2a_exchange_check", moe::range(R * P * C),
      KOKKOS_LAMBDA(const Index i, Index& acc) {
        const Index p = i / C, c = i - p * C;
        Index s, row;
        if (p < a * P) {
          s = p / a;
          row = Index(q) * R + (p - s * a);
        } else {
          const Index p2 = p - a * P;
          s = p2 / b;
          row = Index(q) * R + a + (p2 - s * b);
        }
        if (out(i) != code(s, row * C + c)) ++acc;
      },
      bad);
  return bad;
}

}  // namespace moe_alltoall_bench
