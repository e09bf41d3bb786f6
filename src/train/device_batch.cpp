#include "train/device_batch.hpp"

namespace moe {

DeviceBatch::DeviceBatch(Index tokens_per_rank, int rank)
    : n_(tokens_per_rank),
      rank_(rank),
      ids_(std::string("moe::batch.ids"), 2 * std::size_t(tokens_per_rank)) {}

void DeviceBatch::upload(const Batch& b) {
  auto h = Kokkos::create_mirror_view(ids_);
  const std::size_t n = std::size_t(n_), start = first();
  for (std::size_t i = 0; i < n; ++i) {
    h(i) = b.tokens[start + i];
    h(n + i) = b.targets[start + i];
  }
  Kokkos::deep_copy(ids_, h);
}

}  // namespace moe
