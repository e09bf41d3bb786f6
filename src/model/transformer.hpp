// The pre-LN decoder-only transformer: token + position embedding, n_layers blocks of
// [x + attn(LN(x))] then [x + FFN(LN(x))] (the FFN of every moe_every-th block an MoE layer),
// a final LN and an LM head tied to the token embedding. Parameters and gradients live in one
// flat buffer each; activations are kept per layer for the backward pass.
#pragma once

#include <memory>
#include <vector>

#include "attention.hpp"
#include "common.hpp"
#include "config/config.hpp"
#include "mlp.hpp"
#include "model/moe_layer.hpp"
#include "model/params.hpp"
#include "parallel/comm.hpp"

namespace moe {

// Per-forward results the trainer records.
struct ForwardStats {
  double loss = 0;  // mean cross-entropy over the batch (nats/token)
  AuxLosses aux;    // summed over MoE layers (weighted = what joined the training loss)
};

template <class Real>
class Transformer {
 public:
  // B sequences of seq_len tokens per forward; force_moe makes a one-expert model use the MoE
  // path (for the MoE-equals-dense check).
  // token_counts: training-split count per vocabulary token, for routers that build tables
  // from it (hash, maskmoe); may be null for the others.
  // comm: the run's ranks (null: one rank); B is then this rank's share of the batch and the
  // loss is the mean over the global batch of all ranks.
  Transformer(const Config& cfg, int B, bool force_moe = false,
              const std::vector<std::int64_t>* token_counts = nullptr, const Comm* comm = nullptr);

  const ParamLayout& layout() const { return layout_; }
  Index num_params() const { return layout_.total; }
  Buffer<Real>& params() { return params_; }
  Buffer<Real>& grads() { return grads_; }

  // Parameters from the seeded initialiser (copied to the device once).
  void init_parameters(std::uint64_t seed);

  // tokens, targets: [B*S] on the device. Returns the mean loss; keeps activations.
  ForwardStats forward(View1<const int> tokens, View1<const int> targets, bool training,
                       std::int64_t step);
  // Gradients of (mean CE + weighted aux losses) for the last forward, accumulated into grads.
  void backward();
  void zero_grad() { fill_zero<Real>(slice(grads_, 0, layout_.total), layout_.total); }

  // The MoE layers in block order (index into blocks via moe_block(i)).
  int num_moe_layers() const { return int(moe_.size()); }
  const MoeLayer<Real>& moe_layer(int i) const { return *moe_[i].layer; }
  int moe_block(int i) const { return moe_[i].block; }

  // Per-token losses [B*S] of the last forward.
  View1<const Real> token_losses() const { return slice(losses_, 0, Index(B_) * S_); }

  // Step-time breakdown: the model laps `t` at the end of each phase (null: no timing).
  void set_timer(PhaseTimer* t);

  // Forward FLOPs of one forward over B*S tokens with the active (routed) parameters:
  // 2 * active matmul parameters * tokens + attention scores and mixing (full S x S).
  double forward_flops() const;
  // The same count split by where the work runs: the blocks' attention (projections, scores and
  // mixing), their FFNs (expert MLPs or the dense FFN), and the rest (LM head, router logits).
  struct FlopParts {
    double attention = 0, ffn = 0, rest = 0;
  };
  FlopParts forward_flop_parts() const;

 private:
  View1<Real> p(int tensor) { return slice(params_, layout_[tensor].offset, layout_[tensor].size); }
  View1<Real> g(int tensor) { return slice(grads_, layout_[tensor].offset, layout_[tensor].size); }
  FfnTensors<Real> ffn(Buffer<Real>& buf, const BlockLayout& b);
  // A dense block's FFN tensors as the mlp kernels take them.
  MlpWeights<Real> mlp(Buffer<Real>& buf, const BlockLayout& b);
  // The residual add that ends block l, fused with the layernorm after it (forward).
  void finish_block(int l);
  // An activation buffer as the batch's [N, cols] matrix.
  View2<Real> rows(const Buffer<Real>& buf, int cols) const { return matrix(buf, N_, cols); }
  // An attention score buffer as [B, H, S, S].
  ScoreView<Real> scores(const Buffer<Real>& buf) const {
    return ScoreView<Real>(buf.data(), B_, H_, S_, S_);
  }

  Config cfg_;
  ExecSpace exec_;  // where every kernel of the model runs
  int B_, S_, C_, V_, H_, F_, L_;
  Index N_;
  double global_tokens_;  // tokens of the global batch (N_ times the ranks)
  ParamLayout layout_;
  Buffer<Real> params_, grads_;

  struct MoeEntry {
    int block;
    std::unique_ptr<MoeLayer<Real>> layer;
  };
  std::vector<MoeEntry> moe_;
  std::vector<int> moe_of_block_;  // block -> index into moe_, or -1

  // Saved activations, one set per block ([L] arrays of [N*width]).
  struct Acts {
    Buffer<Real> res, ln1, ln1_mean, ln1_rstd, qkv, att, atty, res_mid, ln2, ln2_mean, ln2_rstd;
    Buffer<Real> pre, act;  // dense FFN only
  };
  std::vector<Acts> acts_;
  Buffer<Real> res_final_, lnf_, lnf_mean_, lnf_rstd_, logits_, lse_, losses_, tmp_;
  Buffer<int> tokens_copy_, targets_copy_;
  // Backward scratch.
  Buffer<Real> dres_, dln_, dqkv_, datt_, datty_, dpre_, dlogits_;
  RouteContext ctx_;
  PhaseTimer* timer_ = nullptr;
};

}  // namespace moe
