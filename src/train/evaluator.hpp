// Evaluation on the held-out split: the validation loss over the fixed validation batches, its
// perplexity by training-frequency bucket and for frequent / infrequent tokens, the routing
// fluctuation on the probe set (validation batch 0) and the tokens each expert received.
// Collective: with several ranks every rank evaluates its share and the sums are reduced.
#pragma once

#include <cstdint>
#include <vector>

#include "config/config.hpp"
#include "data/corpus.hpp"
#include "data/frequency.hpp"
#include "model/transformer.hpp"
#include "parallel/comm.hpp"
#include "train/device_batch.hpp"

namespace moe {

constexpr int kFrequencyBuckets = 5;

struct EvalResult {
  std::int64_t step = 0;           // training steps done when evaluated
  double val_loss = 0;             // mean cross-entropy over the evaluated tokens (nats/token)
  std::int64_t tokens = 0;         // evaluated validation tokens: eval_windows * seq_len
  std::vector<double> bucket_ppl;  // [kFrequencyBuckets], NaN for an empty bucket
  double ppl_frequent = 0, ppl_infrequent = 0;
  double infrequent_val_share = 0;  // share of the evaluated tokens in the infrequent class
  // Per MoE layer: the share of probe tokens whose top-1 expert changed since the previous
  // evaluation, over all / frequent / infrequent tokens (NaN at the first evaluation).
  std::vector<std::vector<double>> fluctuation;
  // Per MoE layer [E]: the router's assignments per expert (before any capacity cut), summed
  // over the validation batches of every rank.
  std::vector<std::vector<std::int64_t>> tokens_per_expert;
};

// The held-out test split, scored once at the end of training (model selection uses validation).
struct TestResult {
  std::int64_t step = 0;
  double loss = 0;  // mean cross-entropy over the evaluated test tokens (nats/token)
  std::int64_t tokens = 0;
};

class Evaluator {
 public:
  // `batch` is the trainer's device batch (evaluation uploads into it); `model` the model
  // evaluated in place.
  Evaluator(const Config& cfg, const Corpus& corpus, Transformer<float>& model, DeviceBatch& batch,
            const Comm& comm);

  // Evaluates the model after `steps_done` training steps; leaves the probe batch uploaded and
  // its forward's routing in the model (what the evaluation trace records).
  EvalResult evaluate(std::int64_t steps_done);
  // Scores the test split (same windows and train.eval_batches rule as validation).
  TestResult test(std::int64_t steps_done);

  const FrequencyBuckets& buckets() const { return buckets_; }
  // The ratio that splits frequent from infrequent tokens: MaskMoE's mask_ratio when set, else
  // one half.
  double frequency_split() const;
  // What the infrequent class covers: its share of the training tokens and its types.
  double infrequent_train_mass() const;
  std::int64_t infrequent_types() const;

  // What a checkpoint keeps: the probe's top-1 experts at the last evaluation and its loss.
  const std::vector<std::vector<std::int32_t>>& probe_top1() const { return prev_top1_; }
  double last_val_loss() const { return last_val_loss_; }
  void restore(const std::vector<std::vector<std::int32_t>>& probe_top1, double last_val_loss);

 private:
  // Mean loss over the evaluated windows of `split` and their token count; with `r`, also the
  // validation details (frequency buckets, classes, tokens per expert).
  double score_split(const std::vector<std::int32_t>& split, std::int64_t step,
                     std::int64_t& tokens, EvalResult* r);
  void probe_fluctuation(EvalResult& r);
  std::vector<std::vector<std::int32_t>> probe_top1_now();

  const Config& cfg_;
  const Corpus& corpus_;
  Transformer<float>& model_;
  DeviceBatch& batch_;
  const Comm& comm_;
  FrequencyBuckets buckets_;
  std::vector<bool> infrequent_;
  Batch probe_;  // validation batch 0
  Buffer<int> top1_idx_;
  Buffer<float> top1_val_;
  std::vector<std::vector<std::int32_t>> prev_top1_;  // per MoE layer, last evaluation
  double last_val_loss_ = 0;
};

}  // namespace moe
