// Disjoint ranges of one flat buffer walked in a single launch, so that an update over many
// tensors (the optimizer over every parameter tensor, the gradient norm over the owned ones) is
// one kernel instead of one per tensor. Each segment is cut into chunks of at most kChunk
// elements and the kernels run one team per chunk: the chunk's place is a table lookup (no search
// per element) and its elements are a contiguous run, a plain loop that vectorizes on a CPU and
// coalesces on a GPU. flag(segment) is a per-segment value the kernels interpret (the
// weight-decay factor of AdamW); every chunk carries its segment's.
#pragma once

#include <string>
#include <vector>

#include "common.hpp"

namespace moe {

struct Segments {
  static constexpr Index kChunk = 4096;

  Buffer<Index> chunk_begin;  // [chunks]: first element of the chunk in the flat buffer
  Buffer<int> chunk_size;     // [chunks]: 1..kChunk
  Buffer<float> chunk_flag;   // [chunks]: its segment's flag
  int chunks = 0;

  Segments() = default;
  // begins[s], sizes[s], flags[s] on the host; the chunk table is copied to the device once.
  Segments(const std::vector<Index>& begins, const std::vector<Index>& sizes,
           const std::vector<float>& flags) {
    MOE_CHECK(sizes.size() == begins.size() && flags.size() == begins.size(),
              "segments: begins, sizes and flags differ in length");
    std::vector<Index> cb;
    std::vector<int> cs;
    std::vector<float> cf;
    for (std::size_t s = 0; s < begins.size(); ++s) {
      MOE_CHECK(sizes[s] >= 0, "segments: negative size");
      for (Index off = 0; off < sizes[s]; off += kChunk) {
        cb.push_back(begins[s] + off);
        cs.push_back(int(sizes[s] - off < kChunk ? sizes[s] - off : kChunk));
        cf.push_back(flags[s]);
      }
    }
    chunks = int(cb.size());
    chunk_begin = Buffer<Index>(std::string("moe::segments.chunk_begin"), cb.size());
    chunk_size = Buffer<int>(std::string("moe::segments.chunk_size"), cs.size());
    chunk_flag = Buffer<float>(std::string("moe::segments.chunk_flag"), cf.size());
    auto hb = Kokkos::create_mirror_view(chunk_begin);
    auto hs = Kokkos::create_mirror_view(chunk_size);
    auto hf = Kokkos::create_mirror_view(chunk_flag);
    for (int c = 0; c < chunks; ++c) {
      hb(c) = cb[std::size_t(c)];
      hs(c) = cs[std::size_t(c)];
      hf(c) = cf[std::size_t(c)];
    }
    Kokkos::deep_copy(chunk_begin, hb);
    Kokkos::deep_copy(chunk_size, hs);
    Kokkos::deep_copy(chunk_flag, hf);
  }
};

}  // namespace moe
