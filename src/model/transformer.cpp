#include "model/transformer.hpp"

#include <type_traits>

#include "attention.hpp"
#include "cross_entropy.hpp"
#include "embedding.hpp"
#include "layernorm.hpp"
#include "matmul.hpp"
#include "mlp.hpp"

namespace moe {
namespace {

template <class T>
Buffer<T> alloc(const char* label, Index n) {
  return Buffer<T>(std::string(label), std::size_t(n));
}

}  // namespace

template <class Real>
Transformer<Real>::Transformer(const Config& cfg, int B, bool force_moe,
                               const std::vector<std::int64_t>* token_counts, const Comm* comm)
    : cfg_(cfg),
      B_(B),
      S_(cfg.model.seq_len),
      C_(cfg.model.d_model),
      V_(cfg.model.vocab_size),
      H_(cfg.model.n_heads),
      F_(cfg.model.d_ff),
      L_(cfg.model.n_layers),
      N_(Index(B) * cfg.model.seq_len),
      global_tokens_(double(N_) * (comm ? comm->size() : 1)),
      layout_(make_param_layout(cfg.model, force_moe)) {
  params_ = alloc<Real>("moe::params", layout_.total);
  grads_ = alloc<Real>("moe::grads", layout_.total);
  moe_of_block_.assign(L_, -1);
  for (int l = 0; l < L_; ++l) {
    if (!layout_.blocks[l].moe) continue;
    moe_of_block_[l] = int(moe_.size());
    moe_.push_back({l, std::make_unique<MoeLayer<Real>>(cfg, RouterSetup{l, token_counts, comm})});
  }
  const Index N = N_, C = C_;
  acts_.resize(L_);
  for (int l = 0; l < L_; ++l) {
    Acts& a = acts_[l];
    a.res = alloc<Real>("moe::act.res", N * C);
    a.ln1 = alloc<Real>("moe::act.ln1", N * C);
    a.ln1_mean = alloc<Real>("moe::act.ln1_mean", N);
    a.ln1_rstd = alloc<Real>("moe::act.ln1_rstd", N);
    a.qkv = alloc<Real>("moe::act.qkv", N * 3 * C);
    a.att = alloc<Real>("moe::act.att", Index(B_) * H_ * S_ * S_);
    a.atty = alloc<Real>("moe::act.atty", N * C);
    a.res_mid = alloc<Real>("moe::act.res_mid", N * C);
    a.ln2 = alloc<Real>("moe::act.ln2", N * C);
    a.ln2_mean = alloc<Real>("moe::act.ln2_mean", N);
    a.ln2_rstd = alloc<Real>("moe::act.ln2_rstd", N);
    if (!layout_.blocks[l].moe) {
      a.pre = alloc<Real>("moe::act.pre", N * F_);
      a.act = alloc<Real>("moe::act.act", N * F_);
    }
  }
  res_final_ = alloc<Real>("moe::act.res_final", N * C);
  lnf_ = alloc<Real>("moe::act.lnf", N * C);
  lnf_mean_ = alloc<Real>("moe::act.lnf_mean", N);
  lnf_rstd_ = alloc<Real>("moe::act.lnf_rstd", N);
  logits_ = alloc<Real>("moe::act.logits", N * V_);
  lse_ = alloc<Real>("moe::act.lse", N);
  losses_ = alloc<Real>("moe::act.losses", N);
  tmp_ = alloc<Real>("moe::act.tmp", N * C);
  tokens_copy_ = alloc<int>("moe::tokens", N);
  targets_copy_ = alloc<int>("moe::targets", N);
  dres_ = alloc<Real>("moe::grad.res", N * C);
  dln_ = alloc<Real>("moe::grad.ln", N * C);
  dqkv_ = alloc<Real>("moe::grad.qkv", N * 3 * C);
  datt_ = alloc<Real>("moe::grad.att", Index(B_) * H_ * S_ * S_);
  datty_ = alloc<Real>("moe::grad.atty", N * C);
  dpre_ = alloc<Real>("moe::grad.pre", N * F_);
  dlogits_ = alloc<Real>("moe::grad.logits", N * V_);
}

template <class Real>
void Transformer<Real>::set_timer(PhaseTimer* t) {
  timer_ = t;
  for (auto& m : moe_) m.layer->set_timer(t);
}

template <class Real>
void Transformer<Real>::init_parameters(std::uint64_t seed) {
  std::vector<double> host;
  moe::init_parameters(layout_, seed, host);
  auto mirror = Kokkos::create_mirror_view(params_);
  for (Index i = 0; i < layout_.total; ++i) mirror(i) = Real(host[i]);
  Kokkos::deep_copy(params_, mirror);
}

template <class Real>
FfnTensors<Real> Transformer<Real>::ffn(Buffer<Real>& buf, const BlockLayout& b) {
  auto view = [&](int t) {
    return t < 0 ? View1<Real>() : slice(buf, layout_[t].offset, layout_[t].size);
  };
  return {view(b.router_w), view(b.w1), view(b.b1), view(b.w2), view(b.b2)};
}

template <class Real>
MlpWeights<Real> Transformer<Real>::mlp(Buffer<Real>& buf, const BlockLayout& b) {
  auto view = [&](int t) { return slice(buf, layout_[t].offset, layout_[t].size); };
  return {view(b.w1), view(b.b1), view(b.w2), view(b.b2)};
}

// Block l's output res_mid + tmp_, fused with the layernorm that reads it next: block l+1's ln1
// (which also writes that block's qkv bias rows) or, after the last block, the final layernorm.
template <class Real>
void Transformer<Real>::finish_block(int l) {
  const int C = C_;
  const Acts& a = acts_[l];
  if (l + 1 < L_) {
    const Acts& an = acts_[l + 1];
    const BlockLayout& bn = layout_.blocks[l + 1];
    residual_layernorm_forward<Real>(exec_, rows(a.res_mid, C), {rows(tmp_, C)}, rows(an.res, C),
                                     p(bn.ln1_g), p(bn.ln1_b), rows(an.ln1, C), an.ln1_mean,
                                     an.ln1_rstd, {rows(an.qkv, 3 * C), p(bn.qkv_b)});
  } else {
    residual_layernorm_forward<Real>(exec_, rows(a.res_mid, C), {rows(tmp_, C)},
                                     rows(res_final_, C), p(layout_.lnf_g), p(layout_.lnf_b),
                                     rows(lnf_, C), lnf_mean_, lnf_rstd_);
  }
}

template <class Real>
ForwardStats Transformer<Real>::forward(View1<const int> tokens, View1<const int> targets,
                                        bool training, std::int64_t step) {
  const int N = int(N_), C = C_;
  // Keep our own copy of the batch: backward and the routers may need it after the caller's
  // buffers have moved on. A kernel, not deep_copy: deep_copy would fence the host.
  {
    const Buffer<int> tc = tokens_copy_, gc = targets_copy_;
    Kokkos::parallel_for(
        "moe::copy_batch", range(exec_, N_), KOKKOS_LAMBDA(const Index i) {
          tc(i) = tokens(i);
          gc(i) = targets(i);
        });
  }
  ctx_ = RouteContext{tokens_copy_, step, training};

  ForwardStats stats;
  lap(timer_, Phase::Rest);  // the batch upload and the gradient zeroing before this
  embedding_forward<Real>(exec_, tokens_copy_, matrix(p(layout_.wte), V_, C),
                          matrix(p(layout_.wpe), S_, C), rows(acts_[0].res, C));
  lap(timer_, Phase::Embedding);
  // Every residual sum is normalised at once (pre-LN), so each residual add runs fused with the
  // layernorm after it, and each ln1 pass also writes the qkv bias rows that its qkv product
  // accumulates onto: no residual, bias or standalone layernorm launches inside the blocks.
  {
    Acts& a = acts_[0];
    const BlockLayout& b = layout_.blocks[0];
    layernorm_forward<Real>(exec_, rows(a.res, C), p(b.ln1_g), p(b.ln1_b), rows(a.ln1, C),
                            a.ln1_mean, a.ln1_rstd, {rows(a.qkv, 3 * C), p(b.qkv_b)});
  }
  // In bf16 mode the projection's output, bias included, is a bf16 activation (linear_forward).
  const bool bf16 = std::is_same_v<Real, float> && matmul_precision() == MatmulPrecision::bf16;
  for (int l = 0; l < L_; ++l) {
    Acts& a = acts_[l];
    const BlockLayout& b = layout_.blocks[l];
    lap(timer_, Phase::Rest);
    // Attention branch; ln1 and the qkv bias rows come from the layernorm before the block.
    linear_forward<Real>(exec_, rows(a.ln1, C), matrix(p(b.qkv_w), C, 3 * C), p(b.qkv_b),
                         rows(a.qkv, 3 * C), BiasMode::Preset);
    attention_forward<Real>(exec_, rows(a.qkv, 3 * C), scores(a.att), rows(a.atty, C));
    // The projection's bias is added by the residual kernel below.
    linear_forward<Real>(exec_, rows(a.atty, C), matrix(p(b.proj_w), C, C), View1<const Real>(),
                         rows(tmp_, C));
    lap(timer_, Phase::AttentionFwd);
    residual_layernorm_forward<Real>(exec_, rows(a.res, C), {rows(tmp_, C), p(b.proj_b), bf16},
                                     rows(a.res_mid, C), p(b.ln2_g), p(b.ln2_b), rows(a.ln2, C),
                                     a.ln2_mean, a.ln2_rstd);
    lap(timer_, Phase::Rest);
    // FFN branch: dense GELU MLP (one group) or the MoE layer.
    if (b.moe) {
      auto& layer = *moe_[moe_of_block_[l]].layer;
      layer.forward(ctx_, a.ln2, ffn(params_, b), tmp_, N);
      const AuxLosses& x = layer.losses();
      stats.aux.balance += x.balance;
      stats.aux.z += x.z;
      stats.aux.cluster += x.cluster;
      stats.aux.weighted += x.weighted;
    } else {
      mlp_forward<Real>(exec_, rows(a.ln2, C), mlp(params_, b), {rows(a.pre, F_), rows(a.act, F_)},
                        rows(tmp_, C), {0, N});
      lap(timer_, Phase::ExpertsFwd);
    }
    finish_block(l);
  }
  lap(timer_, Phase::Rest);
  // LM head tied to the token embedding: logits = lnf wte^T.
  gemm<Real>(false, true, N, V_, C, Real(1), lnf_.data(), C, p(layout_.wte).data(), C, Real(0),
             logits_.data(), V_);
  cross_entropy_forward<Real>(exec_, rows(logits_, V_), targets_copy_, lse_, losses_);
  stats.loss = double(sum<Real>(losses_, N_)) / double(N_);
  lap(timer_, Phase::Loss);
  return stats;
}

template <class Real>
void Transformer<Real>::backward() {
  const int N = int(N_), C = C_;
  // Loss head: d(mean CE)/dlogits, then through the tied embedding.
  cross_entropy_backward<Real>(exec_, rows(logits_, V_), targets_copy_, lse_,
                               Real(1.0 / global_tokens_), rows(dlogits_, V_));
  gemm<Real>(false, false, N, C, V_, Real(1), dlogits_.data(), V_, p(layout_.wte).data(), C,
             Real(0), dln_.data(), C);
  gemm<Real>(true, false, V_, C, N, Real(1), dlogits_.data(), V_, lnf_.data(), C, Real(1),
             g(layout_.wte).data(), C);
  lap(timer_, Phase::Loss);
  // The final layernorm starts the residual-stream gradient dres_: it writes it.
  layernorm_backward<Real>(exec_, rows(dln_, C), rows(res_final_, C), p(layout_.lnf_g), lnf_mean_,
                           lnf_rstd_, rows(dres_, C), g(layout_.lnf_g), g(layout_.lnf_b),
                           DxMode::Overwrite);

  // dres_ is the gradient of the residual stream; each branch adds its input gradient to it.
  for (int l = L_ - 1; l >= 0; --l) {
    Acts& a = acts_[l];
    const BlockLayout& b = layout_.blocks[l];
    // Both branches write dln_ (the MoE layer's dispatch backward, the dense MLP in Overwrite
    // mode); no zero-fill.
    if (b.moe) {
      moe_[moe_of_block_[l]].layer->backward(ctx_, dres_, a.ln2, ffn(params_, b), ffn(grads_, b),
                                             dln_, N);
    } else {
      lap(timer_, Phase::Rest);
      mlp_backward<Real>(exec_, rows(dres_, C), rows(a.ln2, C), {rows(a.pre, F_), rows(a.act, F_)},
                         mlp(params_, b), rows(dpre_, F_), rows(dln_, C), mlp(grads_, b), {0, N},
                         DxMode::Overwrite);
      lap(timer_, Phase::ExpertsBwd);
    }
    layernorm_backward<Real>(exec_, rows(dln_, C), rows(a.res_mid, C), p(b.ln2_g), a.ln2_mean,
                             a.ln2_rstd, rows(dres_, C), g(b.ln2_g), g(b.ln2_b));

    lap(timer_, Phase::Rest);
    linear_backward<Real>(exec_, rows(dres_, C), rows(a.atty, C), matrix(p(b.proj_w), C, C),
                          rows(datty_, C), matrix(g(b.proj_w), C, C), g(b.proj_b),
                          DxMode::Overwrite);
    attention_backward<Real>(exec_, rows(datty_, C), rows(a.qkv, 3 * C), scores(a.att),
                             scores(datt_), rows(dqkv_, 3 * C));
    linear_backward<Real>(exec_, rows(dqkv_, 3 * C), rows(a.ln1, C), matrix(p(b.qkv_w), C, 3 * C),
                          rows(dln_, C), matrix(g(b.qkv_w), C, 3 * C), g(b.qkv_b),
                          DxMode::Overwrite);
    lap(timer_, Phase::AttentionBwd);
    layernorm_backward<Real>(exec_, rows(dln_, C), rows(a.res, C), p(b.ln1_g), a.ln1_mean,
                             a.ln1_rstd, rows(dres_, C), g(b.ln1_g), g(b.ln1_b));
  }
  embedding_backward<Real>(exec_, tokens_copy_, rows(dres_, C), matrix(g(layout_.wte), V_, C),
                           matrix(g(layout_.wpe), S_, C));
  lap(timer_, Phase::Embedding);
}

template <class Real>
typename Transformer<Real>::FlopParts Transformer<Real>::forward_flop_parts() const {
  const double C = C_, F = F_, S = S_;
  FlopParts per_token;
  per_token.rest = 2.0 * C * V_;  // LM head
  for (int l = 0; l < L_; ++l) {
    const BlockLayout& b = layout_.blocks[l];
    per_token.attention += 2.0 * (3 * C * C + C * C);  // qkv and output projections
    per_token.attention += 2.0 * 2.0 * S * C;          // scores and mixing over the full S x S
    const double active =
        b.moe ? moe_[moe_of_block_[l]].layer->router().active_experts_per_token() : 1.0;
    per_token.ffn += 2.0 * active * 2.0 * C * F;
    if (b.moe) per_token.rest += 2.0 * C * cfg_.model.num_experts;  // router logits
  }
  const double n = double(N_);
  return {per_token.attention * n, per_token.ffn * n, per_token.rest * n};
}

template <class Real>
double Transformer<Real>::forward_flops() const {
  const FlopParts f = forward_flop_parts();
  return f.attention + f.ffn + f.rest;
}

template class Transformer<float>;
template class Transformer<double>;

}  // namespace moe
