// The training loop: batches -> forward -> backward -> gradient clipping -> AdamW, with
// evaluation on the held-out split every eval_every steps, routing statistics and traces,
// checkpoints, progress lines on a stream and every metric appended to the run file.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <vector>

#include "config/config.hpp"
#include "data/corpus.hpp"
#include "data/frequency.hpp"
#include "io/checkpoint.hpp"
#include "io/run_file.hpp"
#include "model/phase_timer.hpp"
#include "model/transformer.hpp"

namespace moe {

struct TrainSummary {
  std::int64_t steps_done = 0;  // steps run by this call
  std::int64_t next_step = 0;   // first step not yet run
  double last_loss = 0;
  double last_val_loss = 0;
  bool finished = false;  // reached train.steps
};

class Trainer {
 public:
  // `run` may be null (benchmarks, tests, ranks other than 0): nothing is written then.
  // `comm`: the run's ranks (null: one rank). With several ranks every rank constructs a
  // Trainer and calls the same methods in the same order (they hold collectives).
  Trainer(const Config& cfg, const Corpus& corpus, RunFile* run, std::ostream* log,
          const Comm* comm = nullptr);

  // Trains from step `first`: to the end, or until `max_steps` steps of this call have run
  // (< 0: no limit), or until `stop_requested()` returns true at a step boundary. A run
  // stopped early writes a checkpoint first.
  TrainSummary train(std::int64_t first = 0, std::int64_t max_steps = -1,
                     const std::function<bool()>& stop_requested = nullptr);
  // One optimisation step on the batch of `step`; returns the mean CE loss.
  double step(std::int64_t step);
  // step(), with every rank agreeing on a failure (the lowest failing rank's reason).
  void guarded_step(std::int64_t step);
  // Validation loss over the fixed validation batches; with a run file, also records
  // perplexity by frequency bucket, routing fluctuation on the probe set and the eval trace.
  double evaluate(std::int64_t steps_done);

  // Checkpoint of the state before step `next_step` (written beside the run file).
  void save_checkpoint(std::int64_t next_step);
  // Restores parameters, optimizer and fluctuation state; returns the next step.
  std::int64_t restore(const Checkpoint& ck);

  // Appends the last step's metrics to the run file (train() does this after every step).
  void record_step(std::int64_t step, double tokens_per_s);

  Transformer<float>& model() { return model_; }
  // Seconds spent appending metrics and traces to the run file, and in whole steps.
  double record_seconds() const { return record_seconds_; }

 private:
  void record_trace(const std::string& group, std::int64_t step);
  void upload(const Batch& b);
  std::vector<std::vector<std::int32_t>> probe_top1();
  // Data and expert parallelism: gradient sums, the global norm, the owned expert ranges.
  void sync_gradients();
  double clip_gradients();
  void gather_experts(Buffer<float>& buf);
  std::pair<Index, Index> owned(const TensorInfo& t) const;  // [offset, size) of own experts
  double global_mean(double local) const;  // mean over ranks of equal-sized shares
  std::vector<int> gather_ints(const std::vector<int>& mine) const;

  Comm solo_;  // the one-rank communicator when none is given
  const Comm* comm_;
  int B_local_;  // sequences of the global batch on this rank
  const Config& cfg_;
  const Corpus& corpus_;
  RunFile* run_;
  std::ostream* log_;
  Transformer<float> model_;
  Buffer<float> m_, v_;  // AdamW moments
  Buffer<int> tokens_, targets_;
  Buffer<int> top1_idx_;
  Buffer<float> top1_val_;
  PhaseTimer timer_;
  std::array<double, kNumPhases> phase_seconds_{};
  ForwardStats last_;
  double last_lr_ = 0, last_norm_ = 0, last_val_loss_ = 0;
  double record_seconds_ = 0;

  FrequencyBuckets buckets_;
  std::vector<bool> infrequent_;
  Batch probe_;                                       // validation batch 0
  std::vector<std::vector<std::int32_t>> prev_top1_;  // per MoE layer, last evaluation
};

}  // namespace moe
