// Hash Layers (Roller et al. 2021): fixed routing by token id. A table token id -> expert is
// built once, before training, and never changes; the router has no parameters, so the layer
// skips the router logits and the routing receives no gradient. K = 1 slot, gate 1.
//   router.hash_table = "balanced" (default): tokens in descending training frequency (ties by
//     token id), each to the expert with the least token mass so far (ties to the lower index):
//     max load - min load <= the largest single token count.
//   router.hash_table = "random": expert = hash64(key(train.seed, layer), token id) mod E.
#pragma once

#include <cstdint>
#include <vector>

#include "routing/strategy.hpp"

namespace moe {

// The host-side tables, exposed for tests and for the trace writer.
// Greedy least-loaded assignment of tokens by descending count (ties by id; loads tied to the
// lower expert index).
std::vector<int> balanced_hash_table(const std::vector<std::int64_t>& token_counts, int E);
// expert = hash64(hash64(seed, layer) ^ salt, token) % E for every token id < vocab_size.
std::vector<int> random_hash_table(int vocab_size, int E, std::uint64_t seed, int layer);

template <class Real>
class HashRouter : public Router<Real> {
 public:
  HashRouter(const Config& cfg, const RouterSetup& setup);
  std::string name() const override { return "hash"; }
  bool uses_logits() const override { return false; }
  int slots_per_token() const override { return 1; }
  int capacity(Index N) const override;
  void forward(const RouteContext& ctx, View1<const Real> logits, RoutingState<Real>& st,
               int N) override;
  void backward(const RouteContext& ctx, View1<const Real> logits, const RoutingState<Real>& st,
                View1<const Real> dgate, View1<Real> dlogits, int N) override;

  // The table on the host (a copy of the device one), for tests and reports.
  const std::vector<int>& host_table() const { return host_table_; }

 private:
  int E_, V_;
  double capacity_factor_;
  std::vector<int> host_table_;
  Buffer<int> table_;  // [vocab_size] on the device
};

}  // namespace moe
