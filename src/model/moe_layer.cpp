#include "model/moe_layer.hpp"

#include "combine.hpp"
#include "matmul.hpp"
#include "mlp.hpp"

namespace moe {
namespace {

// Makes `b` hold at least n elements (contents not kept) and returns its first n as a view.
template <class T>
View1<T> ensure(Buffer<T>& b, Index n, const char* label) {
  if (Index(b.extent(0)) < n) b = Buffer<T>(std::string(label), std::size_t(n));
  return slice(b, 0, n);
}

}  // namespace

template <class Real>
MoeLayer<Real>::MoeLayer(const Config& cfg, const RouterSetup& setup)
    : E_(cfg.model.num_experts),
      C_(cfg.model.d_model),
      F_(cfg.model.d_ff),
      layer_(setup.layer),
      comm_(setup.comm),
      jitter_(cfg.router.jitter_noise),
      seed_(cfg.train.seed),
      router_(make_router<Real>(cfg, setup)) {}

template <class Real>
MoeLayer<Real>::MoeLayer(const Config& cfg, std::unique_ptr<Router<Real>> router)
    : E_(cfg.model.num_experts),
      C_(cfg.model.d_model),
      F_(cfg.model.d_ff),
      jitter_(cfg.router.jitter_noise),
      seed_(cfg.train.seed),
      router_(std::move(router)) {}

template <class Real>
View1<const Real> MoeLayer<Real>::router_input(const RouteContext& ctx, View1<const Real> x,
                                               int N) {
  jittered_ = ctx.training && jitter_ > 0;
  if (!jittered_) return x;
  const Index n = Index(N) * C_;
  auto xr = ensure(xr_, n, "moe::moe.xr");
  auto noise = ensure(noise_, n, "moe::moe.noise");
  const std::uint64_t key =
      mix64(seed_ ^ mix64(std::uint64_t(layer_) * 0x1000003ull + std::uint64_t(ctx.step)));
  const double eps = jitter_;
  Kokkos::parallel_for(
      "moe::router_jitter", range(n), KOKKOS_LAMBDA(const Index i) {
        noise(i) = Real(1.0 - eps + 2.0 * eps * uniform01(key, std::uint64_t(i)));
        xr(i) = x(i) * noise(i);
      });
  return xr;
}

template <class Real>
bool MoeLayer<Real>::expert_parallel() const {
  return comm_ && comm_->ep_size() > 1;
}

template <class Real>
FfnTensors<Real> MoeLayer<Real>::local_experts(const FfnTensors<Real>& t) const {
  const Index first = exchange_.first_expert(), n = exchange_.local_experts();
  const Index CF = Index(C_) * F_;
  return {t.router_w, slice(t.w1, first * CF, n * CF), slice(t.b1, first * F_, n * F_),
          slice(t.w2, first * CF, n * CF), slice(t.b2, first * C_, n * C_)};
}

template <class Real>
void MoeLayer<Real>::make_plan(int N, Index NK) {
  // With data parallelism the capacity is per expert over the global batch, cut by position in
  // the global token order (rank 0's tokens first): a copy is kept iff the copies of its expert
  // on earlier ranks plus its rank here are below the capacity, exactly as on one rank.
  const bool dp = comm_ && comm_->distributed();
  const int capacity = router_->capacity(dp ? Index(N) * comm_->size() : Index(N));
  View1<const Real> priority = router_->drop_priority(state_);
  if (priority.extent(0) > 0) {
    MOE_CHECK(!dp, "drop by probability is refused with several ranks before training");
    dispatch_plan<Real>(state_.expert_of, priority, NK, E_, capacity, plan_);
    return;
  }
  // Slot-major ranking (GShard): the global order is slot 0 of every rank, then slot 1, ...
  const int slots = router_->capacity_slot_major() ? int(NK / N) : 1;
  View1<const int> offsets;
  if (dp && capacity > 0) {
    const int SE = slots * E_;
    auto off = ensure(rank_offset_, SE, "moe::moe.rank_offset");
    slot_expert_counts(state_.expert_of, NK, E_, slots, off);
    std::vector<std::int64_t> mine(SE), before(SE), total;
    auto h = Kokkos::create_mirror_view(Kokkos::subview(off, std::make_pair(0, SE)));
    Kokkos::deep_copy(h, Kokkos::subview(off, std::make_pair(0, SE)));
    for (int i = 0; i < SE; ++i) mine[i] = h(i);
    comm_->exscan(mine.data(), before.data(), SE);
    total = mine;
    if (slots > 1) comm_->sum(total.data(), SE);
    auto ho = Kokkos::create_mirror_view(rank_offset_);
    for (int e = 0; e < E_; ++e) {
      std::int64_t lower_slots = 0;  // copies of e in lower slots, over every rank
      for (int j = 0; j < slots; ++j) {
        ho(j * E_ + e) = int(lower_slots + before[j * E_ + e]);
        lower_slots += total[j * E_ + e];
      }
    }
    Kokkos::deep_copy(rank_offset_, ho);
    offsets = off;
  }
  dispatch_plan(state_.expert_of, NK, E_, capacity, plan_, offsets, slots);
}

template <class Real>
void MoeLayer<Real>::forward(const RouteContext& ctx, View1<const Real> x,
                             const FfnTensors<Real>& p, View1<Real> out, int N) {
  const int K = router_->slots_per_token();
  const Index NE = Index(N) * E_, NK = Index(N) * K;
  auto logits = ensure(logits_, NE, "moe::moe.logits");
  ensure(state_.probs, NE, "moe::moe.probs");
  ensure(state_.expert_of, NK, "moe::moe.expert_of");
  ensure(state_.gate, NK, "moe::moe.gate");
  ensure(state_.counts, E_, "moe::moe.counts");
  if (router_->uses_logits())
    linear_forward<Real>(router_input(ctx, x, N), p.router_w, View1<const Real>(), logits, N, C_,
                         E_);
  router_->forward(ctx, logits, state_, N);
  lap(timer_, Phase::Router);

  make_plan(N, NK);
  const Index M = plan_.total_kept;
  auto xg = ensure(xg_, M * C_, "moe::moe.xg");
  auto yg = ensure(yg_, M * C_, "moe::moe.yg");
  dispatch_forward<Real>(x, plan_, xg, K, C_);
  if (!expert_parallel()) {
    auto pre = ensure(pre_, M * F_, "moe::moe.pre");
    auto act = ensure(act_, M * F_, "moe::moe.act");
    lap(timer_, Phase::Dispatch);
    mlp_forward<Real>(xg, p.w1, p.b1, p.w2, p.b2, pre, act, yg, plan_.host_offsets, C_, F_);
    lap(timer_, Phase::Experts);
  } else {
    // Copies travel to their expert's owner, run there, and come back.
    exchange_.plan(plan_.host_offsets, E_, *comm_);
    const Index R = exchange_.received();
    auto xe = ensure(xe_, R * C_, "moe::moe.xe");
    auto ye = ensure(ye_, R * C_, "moe::moe.ye");
    auto pre = ensure(pre_, R * F_, "moe::moe.pre");
    auto act = ensure(act_, R * F_, "moe::moe.act");
    exchange_.forward(xg, xe, C_);
    lap(timer_, Phase::Dispatch);
    const FfnTensors<Real> mine = local_experts(p);
    mlp_forward<Real>(xe, mine.w1, mine.b1, mine.w2, mine.b2, pre, act, ye,
                      exchange_.local_offsets(), C_, F_);
    lap(timer_, Phase::Experts);
    exchange_.reverse(ye, yg, C_);
    lap(timer_, Phase::Dispatch);
  }
  combine_forward<Real>(yg, plan_.slot_of, state_.gate, out, N, K, C_);
  lap(timer_, Phase::Combine);
}

template <class Real>
void MoeLayer<Real>::backward(const RouteContext& ctx, View1<const Real> dout, View1<const Real> x,
                              const FfnTensors<Real>& p, const FfnTensors<Real>& g, View1<Real> dx,
                              int N) {
  const int K = router_->slots_per_token();
  const Index NE = Index(N) * E_, NK = Index(N) * K, M = plan_.total_kept;
  auto dgate = ensure(dgate_, NK, "moe::moe.dgate");
  auto dyg = ensure(dyg_, M * C_, "moe::moe.dyg");
  auto dxg = ensure(dxg_, M * C_, "moe::moe.dxg");
  fill_zero<Real>(dgate, NK);
  fill_zero<Real>(dyg, M * C_);
  fill_zero<Real>(dxg, M * C_);

  View1<const Real> yg = slice(yg_, 0, M * C_), xg = slice(xg_, 0, M * C_);
  lap(timer_, Phase::Rest);
  combine_backward<Real>(dout, yg, plan_.slot_of, state_.gate, dyg, dgate, N, K, C_);
  lap(timer_, Phase::Combine);
  if (!expert_parallel()) {
    auto dpre = ensure(dpre_, M * F_, "moe::moe.dpre");
    mlp_backward<Real>(dyg, xg, slice(pre_, 0, M * F_), slice(act_, 0, M * F_), p.w1, p.w2, dpre,
                       dxg, g.w1, g.b1, g.w2, g.b2, plan_.host_offsets, C_, F_);
    lap(timer_, Phase::Experts);
  } else {
    // Output gradients go to the owners, input gradients come back.
    const Index R = exchange_.received();
    auto dye = ensure(dye_, R * C_, "moe::moe.dye");
    auto dxe = ensure(dxe_, R * C_, "moe::moe.dxe");
    auto dpre = ensure(dpre_, R * F_, "moe::moe.dpre");
    fill_zero<Real>(dxe, R * C_);
    exchange_.forward(dyg, dye, C_);
    lap(timer_, Phase::Dispatch);
    const FfnTensors<Real> mine = local_experts(p), mine_g = local_experts(g);
    mlp_backward<Real>(dye, slice(xe_, 0, R * C_), slice(pre_, 0, R * F_), slice(act_, 0, R * F_),
                       mine.w1, mine.w2, dpre, dxe, mine_g.w1, mine_g.b1, mine_g.w2, mine_g.b2,
                       exchange_.local_offsets(), C_, F_);
    lap(timer_, Phase::Experts);
    exchange_.reverse(dxe, dxg, C_);
  }
  dispatch_backward<Real>(dxg, plan_, dx, N, K, C_);
  lap(timer_, Phase::Dispatch);

  // The router learns only through the gates (and its auxiliary losses).
  auto dlogits = ensure(dlogits_, NE, "moe::moe.dlogits");
  fill_zero<Real>(dlogits, NE);
  View1<const Real> logits = slice(logits_, 0, NE);
  router_->backward(ctx, logits, state_, dgate, dlogits, N);
  if (!router_->uses_logits()) return lap(timer_, Phase::Router);
  if (!jittered_) {
    linear_backward<Real>(dlogits, x, p.router_w, dx, g.router_w, View1<Real>(), N, C_, E_);
    return lap(timer_, Phase::Router);
  }
  // Through the jitter: d(xr)/dx = noise, elementwise.
  const Index n = Index(N) * C_;
  auto dxr = ensure(dxr_, n, "moe::moe.dxr");
  fill_zero<Real>(dxr, n);
  linear_backward<Real>(dlogits, slice(xr_, 0, n), p.router_w, dxr, g.router_w, View1<Real>(), N,
                        C_, E_);
  View1<const Real> noise = slice(noise_, 0, n);
  Kokkos::parallel_for(
      "moe::router_jitter_backward", range(n),
      KOKKOS_LAMBDA(const Index i) { dx(i) += dxr(i) * noise(i); });
  lap(timer_, Phase::Router);
}

template <class Real>
double MoeLayer<Real>::router_entropy(int N) const {
  View1<const Real> probs = slice(state_.probs, 0, Index(N) * E_);
  const int E = E_;
  double total = 0;
  Kokkos::parallel_reduce(
      "moe::router_entropy", range(N),
      KOKKOS_LAMBDA(const Index n, double& acc) {
        for (int e = 0; e < E; ++e) {
          const double p = double(probs(n * E + e));
          if (p > 0) acc -= p * math::log(p);
        }
      },
      total);
  return total / double(N);
}

template class MoeLayer<float>;
template class MoeLayer<double>;

}  // namespace moe
