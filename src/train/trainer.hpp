// The training loop: batches -> forward -> backward -> Optimizer (gradient sync, clipping,
// AdamW), with the Evaluator on the held-out split every eval_every steps and at the end, the
// MetricsRecorder appending every metric to the run file, the Checkpointer writing checkpoints
// (every checkpoint_every steps, when stopped early, and at the final step) and progress lines
// on a stream.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>

#include "config/config.hpp"
#include "data/corpus.hpp"
#include "io/checkpoint.hpp"
#include "io/run_file.hpp"
#include "model/phase_timer.hpp"
#include "model/transformer.hpp"
#include "train/checkpointer.hpp"
#include "train/device_batch.hpp"
#include "train/evaluator.hpp"
#include "train/metrics_recorder.hpp"
#include "train/optimizer.hpp"

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
  // stopped early, and a run reaching its last step, write a checkpoint.
  TrainSummary train(std::int64_t first = 0, std::int64_t max_steps = -1,
                     const std::function<bool()>& stop_requested = nullptr);
  // One optimisation step on the batch of `step`; returns the mean CE loss.
  double step(std::int64_t step);
  // step(), with every rank agreeing on a failure (the lowest failing rank's reason).
  void guarded_step(std::int64_t step);
  // Validation loss over the fixed validation batches; with a run file, also records
  // perplexity by frequency bucket, routing fluctuation on the probe set, tokens per expert and
  // the eval trace.
  double evaluate(std::int64_t steps_done);

  // Checkpoint of the state before step `next_step` (written beside the run file).
  void save_checkpoint(std::int64_t next_step) { checkpointer_.save(next_step); }
  // Restores parameters, optimizer and fluctuation state; returns the next step.
  std::int64_t restore(const Checkpoint& ck) { return checkpointer_.restore(ck); }

  // Appends the last step's metrics to the run file (train() does this after every step).
  void record_step(std::int64_t step, double tokens_per_s) {
    recorder_.record_step(step, last_, tokens_per_s);
  }

  Transformer<float>& model() { return model_; }
  // Phase timing that fences the device at every phase boundary (moe-bench --profile, or
  // MOE_PROFILE=1 in the environment of any program); off by default: a normal step never
  // fences for timing.
  void set_profiling(bool on) { timer_.set_fencing(on); }
  // The metrics of the last step (loss, auxiliary losses, phase times, ...).
  const StepMetrics& last_metrics() const { return last_; }
  // Seconds spent appending metrics and traces to the run file.
  double record_seconds() const { return recorder_.seconds(); }

 private:
  void log_step(std::int64_t s, double tokens_per_s) const;
  void log_eval(std::int64_t steps_done, double val_loss) const;
  bool stop_agreed(const std::function<bool()>& stop_requested) const;

  Comm solo_;  // the one-rank communicator when none is given
  const Comm& comm_;
  const Config& cfg_;
  const Corpus& corpus_;
  std::ostream* log_;
  Transformer<float> model_;
  DeviceBatch batch_;
  Optimizer optimizer_;
  Evaluator evaluator_;
  MetricsRecorder recorder_;
  Checkpointer checkpointer_;
  PhaseTimer timer_;
  StepMetrics last_;
};

}  // namespace moe
