// The parameter layout: every tensor of the model is a named window of one flat buffer, so
// the optimizer, the gradient norm and (later) the gradient all-reduce each see one range.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common.hpp"
#include "config/config.hpp"

namespace moe {

struct TensorInfo {
  std::string name;  // e.g. "layer1.ffn.w1"
  Index offset = 0;  // into the flat buffer
  Index size = 0;
  std::vector<int> shape;  // row-major
  enum class Init { Normal, Zeros, Ones } init = Init::Normal;
  double stddev = 0.02;  // for Normal
  bool decay = false;    // AdamW weight decay applies (matrices only)
  bool expert = false;   // owned per expert (expert parallelism shards these later)
};

// Offsets of the tensors of one transformer block.
struct BlockLayout {
  int ln1_g, ln1_b, qkv_w, qkv_b, proj_w, proj_b, ln2_g, ln2_b;
  int router_w = -1;  // -1 for a dense FFN
  int w1, b1, w2, b2;
  int groups = 1;  // 1 (dense) or num_experts
  bool moe = false;
};

struct ParamLayout {
  std::vector<TensorInfo> tensors;
  int wte = -1, wpe = -1, lnf_g = -1, lnf_b = -1;
  std::vector<BlockLayout> blocks;
  Index total = 0;
  const TensorInfo& operator[](int i) const { return tensors[i]; }
};

// True where block l's FFN is an MoE layer (every moe_every-th block, counting from 1, when
// num_experts > 1; force_moe makes even num_experts = 1 an MoE layer, for equivalence tests).
bool block_is_moe(const ModelConfig& m, int layer, bool force_moe = false);

ParamLayout make_param_layout(const ModelConfig& m, bool force_moe = false);

// Fills the host array `out` (layout.total) with the initial values: each element of a Normal
// tensor is a function of (seed, tensor name, element index) only, so a tensor's init does not
// depend on which other tensors exist, on their order, or on the number of ranks.
void init_parameters(const ParamLayout& layout, std::uint64_t seed, std::vector<double>& out);

}  // namespace moe
