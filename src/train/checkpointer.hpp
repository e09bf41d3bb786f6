// Checkpoints of a training run: the parameters, the optimizer's moments, the run file's image
// and series lengths and the evaluator's fluctuation state, written beside the run file
// (io/checkpoint.hpp: temp file + fsync + rename), and restored from one.
#pragma once

#include <cstdint>

#include "config/config.hpp"
#include "io/checkpoint.hpp"
#include "io/run_file.hpp"
#include "model/transformer.hpp"
#include "train/evaluator.hpp"
#include "train/optimizer.hpp"

namespace moe {

class Checkpointer {
 public:
  // `run` may be null (ranks other than 0, benchmarks): save() then only takes part in the
  // collectives.
  Checkpointer(const Config& cfg, RunFile* run, Transformer<float>& model, Optimizer& optimizer,
               Evaluator& evaluator);

  // Collective: the checkpoint of the state before step `next_step`. The expert groups first
  // complete every rank's copy of the experts; then the rank with the run file writes and
  // records the step in the run file's /checkpoint_step.
  void save(std::int64_t next_step);
  // Restores parameters, moments and fluctuation state; returns the next step. Throws
  // std::runtime_error when the checkpoint's parameter count differs from the model's.
  std::int64_t restore(const Checkpoint& ck);

 private:
  const Config& cfg_;
  RunFile* run_;
  Transformer<float>& model_;
  Optimizer& optimizer_;
  Evaluator& evaluator_;
};

}  // namespace moe
