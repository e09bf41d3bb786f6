#include "train/device_batch.hpp"

namespace moe {

DeviceBatch::DeviceBatch(Index tokens_per_rank, int rank)
    : n_(tokens_per_rank),
      rank_(rank),
      tokens_(std::string("moe::batch.tokens"), std::size_t(tokens_per_rank)),
      targets_(std::string("moe::batch.targets"), std::size_t(tokens_per_rank)) {}

void DeviceBatch::upload(const Batch& b) {
  auto ht = Kokkos::create_mirror_view(tokens_);
  auto hg = Kokkos::create_mirror_view(targets_);
  const std::size_t n = std::size_t(n_), start = first();
  for (std::size_t i = 0; i < n; ++i) {
    ht(i) = b.tokens[start + i];
    hg(i) = b.targets[start + i];
  }
  Kokkos::deep_copy(tokens_, ht);
  Kokkos::deep_copy(targets_, hg);
}

}  // namespace moe
