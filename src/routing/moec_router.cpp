#include "routing/moec_router.hpp"

#include <algorithm>
#include <cmath>

#include "expert_dropout.hpp"
#include "router.hpp"
#include "routing/expert_dropout_rule.hpp"
#include "util/rng.hpp"

namespace moe {
namespace {

// Picks `count` distinct values of [0, n) (partial Fisher-Yates).
std::vector<int> choose(Rng& rng, int n, int count) {
  std::vector<int> pool(n);
  for (int i = 0; i < n; ++i) pool[i] = i;
  for (int i = 0; i < count; ++i) {
    const int j = i + int(rng.uniform_int(std::uint64_t(n - i)));
    std::swap(pool[i], pool[j]);
  }
  pool.resize(count);
  return pool;
}

constexpr std::uint64_t kDropoutSalt = 0x4d6f45432d64726fULL;  // "MoEC-dro"

}  // namespace

template <class Real>
MoECRouter<Real>::MoECRouter(const Config& cfg, const RouterSetup& setup)
    : TopKRouter<Real>(cfg, setup),
      cluster_size_(cfg.router.cluster_size),
      cluster_weight_(cfg.router.cluster_loss_weight),
      dropout_(cfg.router.expert_dropout),
      dropout_interval_(cfg.router.dropout_interval),
      cluster_mode_(cfg.router.dropout_mode == "cluster"),
      drop_at_eval_(cfg.router.dropout_at_eval),
      public_scale_(cfg.router.cluster_loss_scale == "public_sum"),
      form_(cfg.router.cluster_loss == "inter" ? ClusterLossForm::inter : ClusterLossForm::intra),
      seed_(hash64(hash64(cfg.train.seed, kDropoutSalt), std::uint64_t(setup.layer))),
      keep_(std::string("moe::moec.keep"), std::size_t(cfg.model.num_experts)),
      P_(std::string("moe::moec.P"), std::size_t(cfg.model.num_experts)),
      dP_(std::string("moe::moec.dP"), std::size_t(cfg.model.num_experts)) {
  MOE_CHECK(cluster_size_ >= 1 && E_ % cluster_size_ == 0, "cluster_size must divide E");
  MOE_CHECK(k_ >= 1 && k_ <= E_, "moec needs 1 <= top_k <= E");
  MOE_CHECK(dropout_interval_ >= 1, "dropout_interval must be >= 1");
  // The kept count does not depend on the draw, so any step tells whether dropout removes any.
  drops_any_ = dropout_ > 0 && int(kept_experts(0).size()) < E_;
}

template <class Real>
std::vector<int> MoECRouter<Real>::kept_experts(std::int64_t step) const {
  std::vector<int> kept;
  // Floor division, so a (never expected) negative step still maps to one interval.
  std::int64_t interval = step / dropout_interval_;
  if (step < 0 && step % dropout_interval_ != 0) --interval;
  Rng rng(hash64(seed_, std::uint64_t(interval)));
  if (!cluster_mode_) {
    kept = choose(rng, E_, dropout_kept_count(dropout_, E_, cluster_size_, k_, false));
  } else {
    const int c = cluster_size_, G = E_ / c;
    const int n_drop = dropout_ > 0 ? dropout_per_cluster(dropout_, E_, c, k_) : 0;
    for (int g = 0; g < G; ++g)
      for (int i : choose(rng, c, c - n_drop)) kept.push_back(g * c + i);
  }
  std::sort(kept.begin(), kept.end());
  return kept;
}

template <class Real>
void MoECRouter<Real>::update_mask(std::int64_t step) {
  std::int64_t interval = step / dropout_interval_;
  if (step < 0 && step % dropout_interval_ != 0) --interval;
  if (interval == mask_interval_) return;
  auto host = Kokkos::create_mirror_view(keep_);
  for (int e = 0; e < E_; ++e) host(e) = 0;
  for (int e : kept_experts(step)) host(e) = 1;
  Kokkos::deep_copy(keep_, host);
  mask_interval_ = interval;
}

template <class Real>
View1<const Real> MoECRouter<Real>::routing_logits(const RouteContext& ctx,
                                                   View1<const Real> logits, int N) {
  if ((!ctx.training && !drop_at_eval_) || !drops_any_) return logits;
  update_mask(ctx.step);
  View1<Real> masked = this->masked_logits_buffer(N);
  expert_mask_forward<Real>(logits, keep_, masked, N, E_);
  return masked;
}

template <class Real>
double MoECRouter<Real>::extra_losses_forward(const RouteContext&, View1<const Real> logits,
                                              RoutingState<Real>& st, int N) {
  // The cluster loss regularises the router's distribution. Under dropout the masked
  // distribution gives dropped experts P_e = 0, a within-cluster variance no router can remove
  // (its gradient would only push the surviving experts towards zero), so the loss reads the
  // softmax over all experts instead.
  View1<const Real> cluster_probs = st.probs;
  if (this->routed_masked()) {
    auto full = this->scratch(full_probs_, Index(N) * E_, "moe::moec.full_probs");
    softmax_rows_forward<Real>(logits, full, N, E_);
    cluster_probs = full;
  }
  // The balance loss (computed before this hook) set local_share() = N / N_global.
  const double tokens = double(N) / double(this->stats_.local_share());
  scaling_ =
      public_scale_ ? ClusterLossScaling::public_sum(E_) : ClusterLossScaling::share(E_, tokens);
  st.losses.cluster =
      double(cluster_loss_forward<Real>(cluster_probs, P_, N, E_, cluster_size_, form_, scaling_));
  if (const Comm* comm = this->stats_.comm(); comm && comm->distributed()) {
    // P_e sums over the global batch: add the other ranks' sums, then the loss of the sums.
    comm->sum<Real>(slice(P_, 0, E_), E_, comm->world());
    st.losses.cluster =
        double(cluster_loss_from_sums<Real>(P_, E_, cluster_size_, form_, scaling_));
  }
  return cluster_weight_ * st.losses.cluster;
}

template <class Real>
void MoECRouter<Real>::extra_losses_backward(const RouteContext&, View1<const Real>,
                                             const RoutingState<Real>&, View1<Real> dprobs,
                                             View1<Real> dlogits, int N) {
  if (!(cluster_weight_ > 0)) return;
  if (!this->routed_masked()) {
    cluster_loss_backward<Real>(P_, Real(cluster_weight_), dP_, dprobs, N, E_, cluster_size_, form_,
                                scaling_);
    return;
  }
  // Under dropout the loss has its own path: through the unmasked softmax, to every expert's
  // logit.
  const Index NE = Index(N) * E_;
  auto dfull = this->scratch(dfull_, NE, "moe::moec.dfull");
  fill_zero<Real>(dfull, NE);
  cluster_loss_backward<Real>(P_, Real(cluster_weight_), dP_, dfull, N, E_, cluster_size_, form_,
                              scaling_);
  softmax_rows_backward<Real>(slice(full_probs_, 0, NE), dfull, dlogits, N, E_);
}

template class MoECRouter<float>;
template class MoECRouter<double>;

}  // namespace moe
