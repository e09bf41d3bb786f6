// Chunk splits (data/splits.hpp): a partition of the corpus into whole chunks, one validation
// and one test chunk in every block, each split's order a permutation, all fixed by the seed.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>

#include "data/splits.hpp"

namespace moe {
namespace {

void expect_partition(const SplitPlan& p, std::int64_t units) {
  ASSERT_FALSE(p.kind.empty());
  EXPECT_EQ(p.chunk_begin.front(), 0);
  EXPECT_EQ(p.chunk_end.back(), units);
  for (std::size_t c = 0; c + 1 < p.kind.size(); ++c)
    EXPECT_EQ(p.chunk_end[c], p.chunk_begin[c + 1]) << c;
  // Each split's order lists exactly its chunks, once.
  for (int k = 0; k < 3; ++k) {
    std::vector<std::int64_t> mine;
    for (std::size_t c = 0; c < p.kind.size(); ++c)
      if (int(p.kind[c]) == k) mine.push_back(std::int64_t(c));
    std::vector<std::int64_t> order = p.order[k];
    std::sort(order.begin(), order.end());
    EXPECT_EQ(order, mine) << k;
    EXPECT_FALSE(mine.empty()) << k;
  }
}

TEST(ChunkSplit, EveryBlockHoldsOutOneValidationAndOneTestChunk) {
  for (const std::int64_t units : {3, 10, 600, 31102, 100003})
    for (const std::int64_t chunk : {1, 7, 50})
      for (const int k : {3, 10, 20})
        for (const std::uint64_t seed : {1u, 2u}) {
          SCOPED_TRACE(std::to_string(units) + " " + std::to_string(chunk) + " " +
                       std::to_string(k));
          const SplitPlan p = chunk_split(units, chunk, k, seed);
          expect_partition(p, units);
          const std::int64_t n = std::int64_t(p.kind.size());
          EXPECT_GE(n, 3);
          for (std::int64_t b = 0; b < n; b += k) {
            const std::int64_t len = std::min<std::int64_t>(k, n - b);
            int val = 0, test = 0;
            for (std::int64_t c = b; c < b + len; ++c) {
              val += p.kind[std::size_t(c)] == SplitKind::Val;
              test += p.kind[std::size_t(c)] == SplitKind::Test;
            }
            // A short last block (fewer than 3 chunks) only trains.
            const int want = (len >= 3 || b == 0) ? 1 : 0;
            EXPECT_EQ(val, want) << b;
            EXPECT_EQ(test, want) << b;
          }
        }
}

TEST(ChunkSplit, SeedChoosesTheHeldOutChunksAndTheirOrder) {
  const SplitPlan a = chunk_split(31102, 50, 20, 1), b = chunk_split(31102, 50, 20, 1),
                  c = chunk_split(31102, 50, 20, 2);
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.order[0], b.order[0]);
  EXPECT_NE(a.kind, c.kind);
  // Shuffled storage: the first tenth of the training order reaches both ends of the corpus.
  const std::size_t tenth = a.order[0].size() / 10;
  const auto [lo, hi] = std::minmax_element(a.order[0].begin(), a.order[0].begin() + tenth);
  EXPECT_LT(*lo, std::int64_t(a.kind.size()) / 10);
  EXPECT_GT(*hi, std::int64_t(a.kind.size()) * 9 / 10);
}

TEST(TailSplit, ValidationIsTheLastFivePercent) {
  const SplitPlan p = tail_split(600);
  expect_partition(p, 600);
  ASSERT_EQ(p.kind.size(), 3u);
  EXPECT_EQ(p.kind[2], SplitKind::Val);
  EXPECT_EQ(p.chunk_begin[2], 570);
  EXPECT_EQ(p.kind[1], SplitKind::Test);
  EXPECT_EQ(p.chunk_begin[1], 540);
}

}  // namespace
}  // namespace moe
