// The validated run configuration: TOML sections [model] [router] [train] [data] [output].
// Every key is described once, in the schema table in config_schema.cpp, which drives parsing,
// --set overrides, validation messages and config_to_toml; adding a key is one line there plus
// the member here. TOML++ stays inside src/config (host-only: nvcc has trouble with it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/user_error.hpp"

namespace moe {

struct ModelConfig {
  int vocab_size = 1024;
  int d_model = 128;
  int n_layers = 2;
  int n_heads = 4;
  int d_ff = 256;
  int seq_len = 64;
  int num_experts = 8;  // 1 = the dense model
  int top_k = 2;
  int moe_every = 1;  // every moe_every-th block has an MoE layer, the others a dense FFN
};

struct RouterConfig {
  std::string type = "topk";
  double capacity_factor = 0.0;          // 0 = dropless
  std::string drop_policy = "position";  // overfull expert drops: later tokens, or lowest gate
  bool normalize_gates = false;          // renormalise a token's k gates to sum to 1
  double jitter_noise = 0.0;             // Switch: router input * U(1-eps, 1+eps) in training
  double aux_loss_weight = 0.01;
  std::string balance_count = "first";  // f_e counts first choices (GShard/Switch), or all k
  std::string drop_order = "slot";      // position drops: first choices before second (GShard)
  double z_loss_weight = 1e-3;
  double mask_ratio = 0.25;  // MaskMoE: with mask_by = "mass", the tail of a quarter of the tokens
  int visible_experts = 0;
  std::string mask_by = "mass";         // infrequent = lowest-count mask_ratio of mass, or types
  bool mask_per_layer = true;           // independent masks per MoE layer
  std::string hash_table = "balanced";  // balanced (by training frequency) or random
  int cluster_size = 0;
  double cluster_loss_weight = 3.0;          // calibrated on the share scale (docs/routing.md)
  std::string cluster_loss = "intra";        // intra (public MoEC code) or inter
  std::string cluster_loss_scale = "share";  // loads relative to uniform, or public_sum
  std::string dropout_mode = "uniform";      // uniform (public code) or cluster (the paper)
  double expert_dropout = 0.0;
  int dropout_interval = 250;
  bool dropout_at_eval = false;  // evaluation also drops (the public code) or sees every expert
};

struct TrainConfig {
  int steps = 300;
  int batch_size = 16;  // sequences per global batch
  double lr = 3e-3;
  double min_lr_ratio = 0.1;  // cosine floor as a fraction of lr
  int warmup_steps = 30;
  double weight_decay = 0.1;
  double grad_clip = 1.0;
  std::uint64_t seed = 1234;
  int eval_every = 50;   // 0 = only at the end
  int eval_batches = 0;  // validation batches per evaluation; 0 = the whole validation split
  std::string matmul_precision =
      "fp32";  // gemm operands: fp32, tf32 or bf16 (kernels/precision.hpp)
};

struct DataConfig {
  std::string source = "synthetic";
  std::string path;
  std::string tokenizer = "bpe";  // SentencePiece bpe or unigram, for text sources
  std::string cache_dir;          // prepared data cache; "" = data/cache under the working dir
  std::int64_t train_tokens = 2000000;  // 0 = all of the source
  std::int64_t val_tokens = 65536;      // 0 = the whole validation split (not synthetic)
  std::int64_t test_tokens = 65536;     // 0 = the whole test split (not synthetic)
  // Splits of text and token sources (data/splits.hpp): "chunks" holds out one validation and
  // one test chunk in every heldout_every chunks; "tail" is the first version's end-of-corpus
  // validation (the last 5%), with test the 5% before it.
  std::string split = "chunks";
  int chunk_lines = 50;          // chunk size of text sources
  int chunk_tokens = 4096;       // chunk size of token files
  int heldout_every = 20;        // one validation and one test chunk per this many chunks
  std::uint64_t split_seed = 1;  // the draw of held-out chunks and of each split's chunk order
};

struct OutputConfig {
  std::string path = "run.h5";
  int trace_every = 0;
  int checkpoint_every = 0;
};

struct ParallelConfig {
  int expert_parallel = 0;    // ranks per expert-parallel group (0 = all ranks of the run)
  std::string nccl = "auto";  // token exchange over NCCL: off, auto (MPI when it cannot), on
};

struct Config {
  ModelConfig model;
  RouterConfig router;
  TrainConfig train;
  DataConfig data;
  OutputConfig output;
  ParallelConfig parallel;
};

// Defaults, then the TOML file at `path` ("" = defaults only), then each `sets` entry
// ("section.key=value", later ones win), then the cross-key checks. Throws UserError.
Config load_config(const std::string& path, const std::vector<std::string>& sets);

// The effective configuration as TOML text with every section and key (and a comment per key);
// load_config of this text reproduces an equal Config.
std::string config_to_toml(const Config& config);

// Equal when every schema key is equal.
bool operator==(const Config& a, const Config& b);
bool operator!=(const Config& a, const Config& b);

}  // namespace moe
