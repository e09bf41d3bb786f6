#include "config/config_schema.hpp"

#include <cstdio>

#include "util/format_double.hpp"

namespace moe::config_detail {

namespace {

// The allowed values of the enumerated keys: the one place a new router or data source is added.
const std::vector<std::string> kRouterTypes = {"topk", "hash", "maskmoe", "moec", "expert_choice"};
const std::vector<std::string> kDataSources = {"synthetic", "text", "kjv", "tokens"};
const std::vector<std::string> kTokenizers = {"bpe", "unigram"};
const std::vector<std::string> kSplits = {"chunks", "tail"};
const std::vector<std::string> kDropPolicies = {"position", "probability"};
const std::vector<std::string> kHashTables = {"balanced", "random"};
const std::vector<std::string> kMaskBy = {"vocab", "mass"};
const std::vector<std::string> kClusterLoss = {"intra", "inter"};
const std::vector<std::string> kDropoutModes = {"uniform", "cluster"};
const std::vector<std::string> kClusterLossScales = {"share", "public_sum"};
const std::vector<std::string> kBalanceCounts = {"first", "all"};
const std::vector<std::string> kDropOrders = {"slot", "token"};
const std::vector<std::string> kNcclModes = {"off", "auto", "on"};
const std::vector<std::string> kMatmulPrecisions = {"fp32", "tf32", "bf16"};

constexpr Range closed(double lo, double hi) {
  return {lo, hi, false, false};
}
constexpr Range at_least(double lo) {
  return {lo, kInf, false, false};
}
constexpr Range above(double lo) {
  return {lo, kInf, true, false};
}
constexpr Range half_open(double lo, double hi) {
  return {lo, hi, false, true};
}
constexpr Range no_range() {
  return {};
}

// Expands to the section, the name and the accessor of Config::section.name, so the three
// cannot disagree.
#define MOE_FIELD(sec, key) #sec, #key, [](Config & c) -> FieldRef { return &c.sec.key; }

const std::vector<Key> kSchema = {
    {MOE_FIELD(model, vocab_size), closed(2, 1 << 24), nullptr, "vocabulary size (tokens)"},
    {MOE_FIELD(model, d_model), closed(1, 65536), nullptr, "embedding width"},
    {MOE_FIELD(model, n_layers), closed(1, 1024), nullptr, "transformer blocks"},
    {MOE_FIELD(model, n_heads), closed(1, 1024), nullptr, "attention heads (divides d_model)"},
    {MOE_FIELD(model, d_ff), closed(1, 1 << 20), nullptr, "hidden width of the FFN and experts"},
    {MOE_FIELD(model, seq_len), closed(2, 1 << 20), nullptr, "tokens per training sequence"},
    {MOE_FIELD(model, num_experts), closed(1, 65536), nullptr, "experts per MoE layer (1 = dense)"},
    {MOE_FIELD(model, top_k), closed(1, 65536), nullptr, "experts per token (<= num_experts)"},
    {MOE_FIELD(model, moe_every), closed(1, 1024), nullptr, "every n-th block is an MoE block"},
    {MOE_FIELD(router, type), no_range(), &kRouterTypes, "routing method"},
    {MOE_FIELD(router, capacity_factor), at_least(0), nullptr,
     "expert capacity factor (0 = dropless)"},
    {MOE_FIELD(router, drop_policy), no_range(), &kDropPolicies,
     "which copies an overfull expert drops first (topk, maskmoe, moec)"},
    {MOE_FIELD(router, normalize_gates), no_range(), nullptr,
     "renormalise the k gates of a token to sum to 1"},
    {MOE_FIELD(router, jitter_noise), closed(0, 1), nullptr,
     "multiplicative router-input noise in training (Switch)"},
    {MOE_FIELD(router, aux_loss_weight), at_least(0), nullptr, "load-balance loss weight"},
    {MOE_FIELD(router, balance_count), no_range(), &kBalanceCounts,
     "balance loss f_e counts each token's first choice (GShard/Switch) or all k choices"},
    {MOE_FIELD(router, drop_order), no_range(), &kDropOrders,
     "capacity cut by position: every first choice before any second (slot) or token order"},
    {MOE_FIELD(router, z_loss_weight), at_least(0), nullptr, "router z-loss weight"},
    {MOE_FIELD(router, mask_ratio), closed(0, 1), nullptr,
     "MaskMoE infrequent share: of the training tokens (mask_by = mass) or of the types"},
    {MOE_FIELD(router, visible_experts), at_least(0), nullptr,
     "MaskMoE experts visible to a frequent token"},
    {MOE_FIELD(router, mask_by), no_range(), &kMaskBy,
     "MaskMoE infrequent cut: share of vocabulary types or of token mass"},
    {MOE_FIELD(router, mask_per_layer), no_range(), nullptr,
     "MaskMoE draws each MoE layer's masks independently"},
    {MOE_FIELD(router, hash_table), no_range(), &kHashTables, "hash routing table"},
    {MOE_FIELD(router, cluster_size), at_least(0), nullptr, "MoEC experts per cluster"},
    {MOE_FIELD(router, cluster_loss_weight), at_least(0), nullptr, "MoEC cluster loss weight"},
    {MOE_FIELD(router, cluster_loss), no_range(), &kClusterLoss,
     "MoEC cluster loss form (intra = public code)"},
    {MOE_FIELD(router, cluster_loss_scale), no_range(), &kClusterLossScales,
     "MoEC cluster loss on loads relative to uniform (share) or batch sums (public_sum)"},
    {MOE_FIELD(router, dropout_mode), no_range(), &kDropoutModes,
     "MoEC expert dropout: uniform over all experts (public code) or per cluster (paper)"},
    {MOE_FIELD(router, expert_dropout), half_open(0, 1), nullptr, "MoEC expert dropout rate"},
    {MOE_FIELD(router, dropout_interval), at_least(1), nullptr, "MoEC steps between dropout draws"},
    {MOE_FIELD(router, dropout_at_eval), no_range(), nullptr,
     "MoEC evaluation drops the current interval's experts too (as the public code)"},
    {MOE_FIELD(train, steps), at_least(1), nullptr, "optimizer steps"},
    {MOE_FIELD(train, batch_size), at_least(1), nullptr, "sequences per global batch"},
    {MOE_FIELD(train, lr), above(0), nullptr, "peak learning rate"},
    {MOE_FIELD(train, min_lr_ratio), closed(0, 1), nullptr, "cosine floor as a fraction of lr"},
    {MOE_FIELD(train, warmup_steps), at_least(0), nullptr, "linear warmup steps"},
    {MOE_FIELD(train, weight_decay), at_least(0), nullptr, "AdamW weight decay"},
    {MOE_FIELD(train, grad_clip), at_least(0), nullptr, "global gradient-norm clip"},
    {MOE_FIELD(train, seed), at_least(0), nullptr, "seed of data, batches and initialisation"},
    {MOE_FIELD(train, eval_every), at_least(0), nullptr, "steps between evaluations (0 = end)"},
    {MOE_FIELD(train, eval_batches), at_least(0), nullptr,
     "validation batches per evaluation (0 = the whole validation split)"},
    {MOE_FIELD(train, matmul_precision), no_range(), &kMatmulPrecisions,
     "dense products: fp32, tf32 (TF32 operands) or bf16 (bf16 operands and activations; FP32 "
     "accumulation, weights, optimizer, softmax, layernorm and loss)"},
    {MOE_FIELD(data, source), no_range(), &kDataSources, "where the tokens come from"},
    {MOE_FIELD(data, path), no_range(), nullptr, "input file of file-based sources"},
    {MOE_FIELD(data, tokenizer), no_range(), &kTokenizers,
     "SentencePiece model type for text sources (vocabulary = model.vocab_size)"},
    {MOE_FIELD(data, cache_dir), no_range(), nullptr,
     "where prepared token files and tokenizers are cached (\"\" = data/cache)"},
    {MOE_FIELD(data, train_tokens), at_least(0), nullptr, "training split size (0 = all)"},
    {MOE_FIELD(data, val_tokens), at_least(0), nullptr,
     "validation split size (0 = all; synthetic: >= 1)"},
    {MOE_FIELD(data, test_tokens), at_least(0), nullptr,
     "test split size (0 = all; synthetic: >= 1)"},
    {MOE_FIELD(data, split), no_range(), &kSplits,
     "held-out chunks across the corpus (chunks) or the first version's end of corpus (tail)"},
    {MOE_FIELD(data, chunk_lines), at_least(1), nullptr, "lines per split chunk of text sources"},
    {MOE_FIELD(data, chunk_tokens), at_least(1), nullptr, "tokens per split chunk of token files"},
    {MOE_FIELD(data, heldout_every), at_least(3), nullptr,
     "chunks per block holding one validation and one test chunk"},
    {MOE_FIELD(data, split_seed), at_least(0), nullptr, "seed of the held-out chunks' draw"},
    {MOE_FIELD(output, path), no_range(), nullptr, "run file (HDF5)"},
    {MOE_FIELD(output, trace_every), at_least(0), nullptr,
     "steps between routing traces (0 = off)"},
    {MOE_FIELD(output, checkpoint_every), at_least(0), nullptr,
     "steps between checkpoints (0 = off)"},
    {MOE_FIELD(parallel, expert_parallel), at_least(0), nullptr,
     "ranks per expert-parallel group, dividing the rank count (0 = all ranks)"},
    {MOE_FIELD(parallel, nccl), no_range(), &kNcclModes,
     "token exchange over NCCL: off, auto (MPI, with one line, when it cannot work), on"},
};

#undef MOE_FIELD

std::vector<std::string> section_names() {
  std::vector<std::string> names;  // in schema order, each once
  for (const Key& key : kSchema)
    if (names.empty() || names.back() != key.section) names.push_back(key.section);
  return names;
}

std::string keys_of(const std::string& section) {
  std::vector<std::string> names;
  for (const Key& key : kSchema)
    if (section == key.section) names.push_back(key.name);
  return join(names);
}

}  // namespace

const std::vector<Key>& schema() {
  return kSchema;
}

FieldRef field_of(const Key& key, const Config& config) {
  return key.field(const_cast<Config&>(config));
}

std::string full_name(const Key& key) {
  return std::string(key.section) + "." + key.name;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

std::string allowed_sections() {
  return "(allowed: " + join(section_names()) + ")";
}

bool is_section(const std::string& name) {
  for (const std::string& section : section_names())
    if (section == name) return true;
  return false;
}

const Key& find_key(const std::string& section, const std::string& name) {
  if (!is_section(section))
    throw UserError("unknown section '" + section + "' " + allowed_sections());
  for (const Key& key : kSchema)
    if (section == key.section && name == key.name) return key;
  throw UserError("unknown key '" + section + "." + name + "' (allowed in [" + section +
                  "]: " + keys_of(section) + ")");
}

std::string toml_float(double v) {
  std::string text = shortest_double(v);
  if (text.find_first_of(".eEn") == std::string::npos) text += ".0";
  return text;
}

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += char(ch);
    } else if (ch < 0x20 || ch == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04X", unsigned(ch));
      out += buf;
    } else {
      out += char(ch);
    }
  }
  return out + "\"";
}

}  // namespace moe::config_detail
