#include "routing/hash_router.hpp"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>

#include "dispatch.hpp"
#include "hash_routing.hpp"
#include "util/rng.hpp"

namespace moe {

std::vector<int> balanced_hash_table(const std::vector<std::int64_t>& token_counts, int E) {
  if (E < 1) throw std::invalid_argument("balanced_hash_table needs at least one expert");
  const std::size_t V = token_counts.size();
  std::vector<int> order(V);
  std::iota(order.begin(), order.end(), 0);
  // Descending count, ties by ascending token id (a total order: the table is deterministic).
  std::sort(order.begin(), order.end(), [&](int a, int b) {
    return token_counts[a] != token_counts[b] ? token_counts[a] > token_counts[b] : a < b;
  });
  std::vector<int> table(V, 0);
  std::vector<std::int64_t> load(std::size_t(E), 0);
  for (int t : order) {
    // Least-loaded expert, lowest index on ties. O(E) per token: V*E is small next to training.
    int best = 0;
    for (int e = 1; e < E; ++e)
      if (load[e] < load[best]) best = e;
    table[t] = best;
    load[best] += std::max<std::int64_t>(token_counts[t], 0);
  }
  return table;
}

std::vector<int> random_hash_table(int vocab_size, int E, std::uint64_t seed, int layer) {
  if (E < 1) throw std::invalid_argument("random_hash_table needs at least one expert");
  // A salt keeps this stream apart from other users of hash64(seed, layer).
  const std::uint64_t key =
      hash64(seed, std::uint64_t(layer)) ^ 0x68617368726f7574ULL;  // "hashrout"
  std::vector<int> table(std::size_t(std::max(vocab_size, 0)));
  for (int t = 0; t < vocab_size; ++t)
    table[t] = int(hash64(key, std::uint64_t(t)) % std::uint64_t(E));
  return table;
}

template <class Real>
HashRouter<Real>::HashRouter(const Config& cfg, const RouterSetup& setup)
    : E_(cfg.model.num_experts),
      V_(cfg.model.vocab_size),
      capacity_factor_(cfg.router.capacity_factor) {
  const std::string& kind = cfg.router.hash_table;
  if (kind == "balanced") {
    if (setup.token_counts == nullptr)
      throw std::invalid_argument(
          "router.type = hash with hash_table = balanced needs training token counts");
    if (setup.token_counts->size() != std::size_t(V_))
      throw std::invalid_argument("router.type = hash: token counts cover " +
                                  std::to_string(setup.token_counts->size()) +
                                  " tokens, model.vocab_size = " + std::to_string(V_));
    host_table_ = balanced_hash_table(*setup.token_counts, E_);
  } else if (kind == "random") {
    host_table_ = random_hash_table(V_, E_, cfg.train.seed, setup.layer);
  } else {
    throw std::invalid_argument("router.hash_table = \"" + kind + "\" (allowed: balanced, random)");
  }
  table_ = Buffer<int>(std::string("moe::hash.table"), host_table_.size());
  auto m = Kokkos::create_mirror_view(table_);
  for (std::size_t i = 0; i < host_table_.size(); ++i) m(i) = host_table_[i];
  Kokkos::deep_copy(table_, m);
}

template <class Real>
int HashRouter<Real>::capacity(Index N) const {
  return expert_capacity(N, 1, E_, capacity_factor_);
}

template <class Real>
void HashRouter<Real>::forward(const RouteContext& ctx, View1<const Real>, RoutingState<Real>& st,
                               int N) {
  MOE_CHECK(Index(ctx.tokens.extent(0)) >= N, "hash routing needs the token ids of the batch");
  const Index invalid = table_route_forward<Real>(table_, ctx.tokens, st.expert_of, st.gate,
                                                  st.probs, st.counts, N, E_, V_);
  MOE_CHECK(invalid == 0, "hash routing got a token id outside [0, vocab_size)");
  // Fixed routing: no balance loss (a loss cannot move it), no z-loss (no logits).
  st.losses = AuxLosses{};
}

template <class Real>
void HashRouter<Real>::backward(const RouteContext&, View1<const Real>, const RoutingState<Real>&,
                                View1<const Real>, View1<Real>, int) {
  // No router parameters: the gates are constant 1, so nothing flows back (dgate is ignored).
}

template class HashRouter<float>;
template class HashRouter<double>;

}  // namespace moe
