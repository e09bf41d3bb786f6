#include "routing/maskmoe_router.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

#include "data/frequency.hpp"
#include "routing_mask.hpp"
#include "util/rng.hpp"

namespace moe {
namespace {

// Salt of the mask seeds ("maskmoe" in ASCII), so masks never share a stream with other draws.
constexpr std::uint64_t kMaskSalt = 0x6d61736b6d6f65ULL;

}  // namespace

template <class Real>
MaskMoERouter<Real>::MaskMoERouter(const Config& cfg, const RouterSetup& setup)
    : TopKRouter<Real>(cfg, setup), V_(cfg.router.visible_experts), vocab_(cfg.model.vocab_size) {
  if (setup.token_counts == nullptr)
    throw std::invalid_argument(
        "router.type = \"maskmoe\" needs the training-split token counts "
        "(RouterSetup::token_counts) to build its routing masks");
  const std::vector<std::int64_t>& counts = *setup.token_counts;
  if (vocab_ < 1 || counts.size() != std::size_t(vocab_))
    throw std::invalid_argument("router.type = \"maskmoe\": token_counts has " +
                                std::to_string(counts.size()) +
                                " entries, model.vocab_size = " + std::to_string(vocab_));
  if (V_ < 1 || V_ > E_)
    throw std::invalid_argument("router.visible_experts = " + std::to_string(V_) +
                                " (allowed: 1..num_experts = " + std::to_string(E_) + ")");
  if (k_ < 1 || k_ > V_)
    throw std::invalid_argument("model.top_k = " + std::to_string(k_) +
                                " (allowed: 1..visible_experts = " + std::to_string(V_) + ")");

  infrequent_ = infrequent_tokens(counts, cfg.router.mask_ratio, cfg.router.mask_by);
  num_infrequent_ = int(std::count(infrequent_.begin(), infrequent_.end(), true));

  // One seed per layer (or one for all layers), then one stream per token: token t's visible
  // experts are the first 1 or V of its own seeded shuffle of the experts, so a token's mask does
  // not depend on how the other tokens were classified.
  const std::uint64_t layer_mix =
      cfg.router.mask_per_layer ? hash64(kMaskSalt, std::uint64_t(setup.layer)) : kMaskSalt;
  const std::uint64_t layer_seed = hash64(cfg.train.seed, layer_mix);
  visible_.assign(std::size_t(vocab_), {});
  auto host_mask = Kokkos::View<unsigned char*, Kokkos::HostSpace>(
      std::string("moe::maskmoe.mask_host"), std::size_t(vocab_) * std::size_t(E_));
  std::vector<int> perm(static_cast<std::size_t>(E_));
  for (int t = 0; t < vocab_; ++t) {
    Rng rng(hash64(layer_seed, std::uint64_t(t)));
    const int visible = infrequent_[std::size_t(t)] ? 1 : V_;
    std::iota(perm.begin(), perm.end(), 0);
    // Partial Fisher-Yates: the first `visible` entries are a uniform draw without replacement.
    for (int i = 0; i < visible; ++i) {
      const int j = i + int(rng.uniform_int(std::uint64_t(E_ - i)));
      std::swap(perm[std::size_t(i)], perm[std::size_t(j)]);
    }
    std::vector<int>& set = visible_[std::size_t(t)];
    set.assign(perm.begin(), perm.begin() + visible);
    std::sort(set.begin(), set.end());
    for (int e : set) host_mask(std::size_t(t) * std::size_t(E_) + std::size_t(e)) = 1;
  }
  mask_ = Buffer<unsigned char>(std::string("moe::maskmoe.mask"),
                                std::size_t(vocab_) * std::size_t(E_));
  Kokkos::deep_copy(mask_, host_mask);
}

template <class Real>
View1<const Real> MaskMoERouter<Real>::routing_logits(const RouteContext& ctx,
                                                      View1<const Real> logits, int N) {
  MOE_CHECK(Index(ctx.tokens.extent(0)) >= N, "maskmoe routing needs the token ids of the batch");
  MOE_CHECK(routing_tokens_out_of_range(ctx.tokens, N, vocab_) == 0,
            "maskmoe routing got a token id outside [0, vocab_size)");
  View1<Real> masked = this->masked_logits_buffer(N);
  routing_mask_logits<Real>(ctx.tokens, mask_, logits, masked, N, E_);
  return masked;
}

template <class Real>
void MaskMoERouter<Real>::after_topk(RoutingState<Real>& st, int N) {
  routing_empty_zero_slots<Real>(st.expert_of, st.gate, Index(N) * k_);
}

template class MaskMoERouter<float>;
template class MaskMoERouter<double>;

}  // namespace moe
