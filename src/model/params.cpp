#include "model/params.hpp"

#include <cmath>

#include "util/rng.hpp"

namespace moe {

bool block_is_moe(const ModelConfig& m, int layer, bool force_moe) {
  if (m.num_experts <= 1 && !force_moe) return false;
  return (layer + 1) % m.moe_every == 0;
}

namespace {

int add_tensor(ParamLayout& L, const std::string& name, std::vector<int> shape,
               TensorInfo::Init init, double stddev, bool expert = false) {
  TensorInfo t;
  t.name = name;
  t.shape = std::move(shape);
  t.size = 1;
  for (int d : t.shape) t.size *= d;
  t.offset = L.total;
  t.init = init;
  t.stddev = stddev;
  // Decay matrices (embeddings included), never biases or norm gains: the GPT-2 convention.
  t.decay = t.shape.size() >= 2 && init == TensorInfo::Init::Normal;
  t.expert = expert;
  L.total += t.size;
  L.tensors.push_back(std::move(t));
  return int(L.tensors.size()) - 1;
}

}  // namespace

ParamLayout make_param_layout(const ModelConfig& m, bool force_moe) {
  using I = TensorInfo::Init;
  ParamLayout L;
  const int C = m.d_model, F = m.d_ff, V = m.vocab_size, S = m.seq_len;
  // Residual-branch output projections are scaled down with depth (GPT-2), so the residual
  // stream's variance does not grow with the number of layers.
  const double proj_std = 0.02 / std::sqrt(2.0 * m.n_layers);
  L.wte = add_tensor(L, "wte", {V, C}, I::Normal, 0.02);
  L.wpe = add_tensor(L, "wpe", {S, C}, I::Normal, 0.01);
  for (int l = 0; l < m.n_layers; ++l) {
    const std::string p = "layer" + std::to_string(l) + ".";
    BlockLayout b;
    b.ln1_g = add_tensor(L, p + "ln1.g", {C}, I::Ones, 0);
    b.ln1_b = add_tensor(L, p + "ln1.b", {C}, I::Zeros, 0);
    b.qkv_w = add_tensor(L, p + "attn.qkv_w", {C, 3 * C}, I::Normal, 0.02);
    b.qkv_b = add_tensor(L, p + "attn.qkv_b", {3 * C}, I::Zeros, 0);
    b.proj_w = add_tensor(L, p + "attn.proj_w", {C, C}, I::Normal, proj_std);
    b.proj_b = add_tensor(L, p + "attn.proj_b", {C}, I::Zeros, 0);
    b.ln2_g = add_tensor(L, p + "ln2.g", {C}, I::Ones, 0);
    b.ln2_b = add_tensor(L, p + "ln2.b", {C}, I::Zeros, 0);
    b.moe = block_is_moe(m, l, force_moe);
    b.groups = b.moe ? m.num_experts : 1;
    const int G = b.groups;
    if (b.moe) b.router_w = add_tensor(L, p + "router.w", {C, m.num_experts}, I::Normal, 0.02);
    // The same names for the dense FFN and the experts: a one-expert MoE layer starts from
    // exactly the dense layer's weights.
    b.w1 = add_tensor(L, p + "ffn.w1", {G, C, F}, I::Normal, 0.02, b.moe);
    b.b1 = add_tensor(L, p + "ffn.b1", {G, F}, I::Zeros, 0, b.moe);
    b.w2 = add_tensor(L, p + "ffn.w2", {G, F, C}, I::Normal, proj_std, b.moe);
    b.b2 = add_tensor(L, p + "ffn.b2", {G, C}, I::Zeros, 0, b.moe);
    L.blocks.push_back(b);
  }
  L.lnf_g = add_tensor(L, "lnf.g", {C}, I::Ones, 0);
  L.lnf_b = add_tensor(L, "lnf.b", {C}, I::Zeros, 0);
  return L;
}

void init_parameters(const ParamLayout& layout, std::uint64_t seed, std::vector<double>& out) {
  out.assign(std::size_t(layout.total), 0.0);
  for (const auto& t : layout.tensors) {
    double* p = out.data() + t.offset;
    switch (t.init) {
      case TensorInfo::Init::Zeros:
        break;
      case TensorInfo::Init::Ones:
        for (Index i = 0; i < t.size; ++i) p[i] = 1.0;
        break;
      case TensorInfo::Init::Normal: {
        const std::uint64_t key = hash64(seed, fnv1a(t.name));
        for (Index i = 0; i < t.size; ++i) {
          // Box-Muller from two counter-based uniforms in (0, 1].
          const double u1 = double((hash64(key, 2 * i) >> 11) + 1) * 0x1.0p-53;
          const double u2 = double(hash64(key, 2 * i + 1) >> 11) * 0x1.0p-53;
          p[i] = t.stddev * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
        }
        break;
      }
    }
  }
}

}  // namespace moe
