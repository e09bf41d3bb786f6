// This rank's share of a batch on the device: rank r takes sequences [r * B_local,
// (r + 1) * B_local) of the global batch. Also the host copies training and evaluation read back.
#pragma once

#include <string>
#include <vector>

#include "common.hpp"
#include "data/corpus.hpp"

namespace moe {

class DeviceBatch {
 public:
  // tokens_per_rank = B_local * seq_len; rank: this rank's place in the data-parallel world.
  DeviceBatch(Index tokens_per_rank, int rank);

  // The one host-to-device copy of a step: this rank's token ids and targets of `b` (one
  // buffer, tokens then targets, so one copy).
  void upload(const Batch& b);

  View1<const int> tokens() const { return slice(ids_, 0, n_); }
  View1<const int> targets() const { return slice(ids_, n_, n_); }
  Index size() const { return n_; }
  // Index of this rank's first token in the global batch.
  std::size_t first() const { return std::size_t(n_) * std::size_t(rank_); }

 private:
  Index n_;
  int rank_;
  Buffer<int> ids_;  // [2 n]: tokens, then targets
};

// The first n elements of a device view, copied to the host.
template <class V>
std::vector<typename V::non_const_value_type> host_copy(const V& v, Index n) {
  using T = typename V::non_const_value_type;
  Kokkos::View<T*, Kokkos::HostSpace> h(std::string("moe::host_copy"), std::size_t(n));
  Kokkos::deep_copy(h, Kokkos::subview(v, std::make_pair(Index(0), n)));
  return std::vector<T>(h.data(), h.data() + n);
}

}  // namespace moe
