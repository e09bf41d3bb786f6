// Disjoint ranges of one flat buffer walked as a single index space, so that an update over many
// tensors (the optimizer over every parameter tensor, the gradient norm over the owned ones) is
// one kernel launch instead of one per tensor. Segment s covers [begin(s), begin(s) + size_s);
// element j of the joint space (0 <= j < total) lies in the segment s with
// start(s) <= j < start(s + 1), at begin(s) + j - start(s). flag(s) is a per-segment value the
// kernels interpret (the weight-decay factor of AdamW).
#pragma once

#include <string>
#include <vector>

#include "common.hpp"

namespace moe {

struct Segments {
  Buffer<Index> begin, start;  // [S], [S + 1]
  Buffer<float> flag;          // [S]
  int count = 0;
  Index total = 0;

  Segments() = default;
  // begins[s], sizes[s], flags[s] on the host; copied to the device once.
  Segments(const std::vector<Index>& begins, const std::vector<Index>& sizes,
           const std::vector<float>& flags)
      : begin(std::string("moe::segments.begin"), begins.size()),
        start(std::string("moe::segments.start"), begins.size() + 1),
        flag(std::string("moe::segments.flag"), begins.size()),
        count(int(begins.size())) {
    auto hb = Kokkos::create_mirror_view(begin);
    auto hs = Kokkos::create_mirror_view(start);
    auto hf = Kokkos::create_mirror_view(flag);
    hs(0) = 0;
    for (int s = 0; s < count; ++s) {
      hb(s) = begins[std::size_t(s)];
      hf(s) = flags[std::size_t(s)];
      hs(s + 1) = hs(s) + sizes[std::size_t(s)];
    }
    total = hs(count);
    Kokkos::deep_copy(begin, hb);
    Kokkos::deep_copy(start, hs);
    Kokkos::deep_copy(flag, hf);
  }
};

// The segment holding joint index j (binary search over start; S is small).
KOKKOS_INLINE_FUNCTION int segment_of(const Buffer<Index>& start, int count, Index j) {
  int lo = 0, hi = count - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (start(mid) <= j)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

}  // namespace moe
