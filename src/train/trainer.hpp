// The training loop: batches -> forward -> backward -> gradient clipping -> AdamW, with
// evaluation on the held-out split every eval_every steps, progress lines on a stream and
// every metric appended to the run file.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <memory>

#include "config/config.hpp"
#include "data/corpus.hpp"
#include "io/run_file.hpp"
#include "model/transformer.hpp"

namespace moe {

struct TrainSummary {
  std::int64_t steps_done = 0;
  double last_loss = 0;
  double last_val_loss = 0;
  bool finished = false;  // reached train.steps (false: stopped by --stop-after)
};

class Trainer {
 public:
  // `run` may be null (benchmarks, tests): nothing is written then.
  Trainer(const Config& cfg, const Corpus& corpus, RunFile* run, std::ostream* log);

  // Trains from step `first` for at most `max_steps` steps (< 0: to the end).
  TrainSummary train(std::int64_t first = 0, std::int64_t max_steps = -1);
  // Mean validation cross-entropy over the fixed validation batches (no routing randomness).
  double evaluate();
  // One optimisation step on the batch of `step`; returns the mean CE loss.
  double step(std::int64_t step);

  Transformer<float>& model() { return model_; }

 private:
  void record_step(std::int64_t step, const ForwardStats& st, double lr, double grad_norm,
                   double tokens_per_s);
  void upload(const Batch& b);

  const Config& cfg_;
  const Corpus& corpus_;
  RunFile* run_;
  std::ostream* log_;
  Transformer<float> model_;
  Buffer<float> m_, v_;  // AdamW moments
  Buffer<int> tokens_, targets_;
  ForwardStats last_;
  double last_lr_ = 0, last_norm_ = 0;
};

}  // namespace moe
