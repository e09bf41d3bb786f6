// Checkpoints: everything a run needs to continue exactly where it stopped, including the run
// file itself as it was at the checkpoint (its image: the bytes of the flushed file), so a
// resume rebuilds the run file from the checkpoint whatever state a kill left it in. Written
// to "<run file>.ckpt" atomically: the new checkpoint goes to a temporary file beside it, is
// closed and fsync'ed, and only then renamed over the old one, so a crash while writing never
// destroys the previous good checkpoint. A run writes a first checkpoint at step 0 (no
// parameters: they follow from train.seed), so a resume works from its very start.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace moe {

struct Checkpoint {
  std::int64_t next_step = 0;                 // the first step a resumed run executes
  std::string config_text;                    // the config the run was started with
  std::map<std::string, std::int64_t> shape;  // model.* keys that fix the parameter layout
  std::vector<float> params, adam_m, adam_v;
  // Rows of every run-file series when the checkpoint was taken: a resumed run truncates the
  // series back to these, so steps done after the checkpoint are not recorded twice.
  std::map<std::string, std::int64_t> series_rows;
  // Routing-fluctuation state: the probe set's top-1 expert per MoE layer at the last evaluation.
  std::vector<std::vector<std::int32_t>> probe_top1;
  double last_val_loss = 0;
  // The run file's bytes at the checkpoint ("" in checkpoints of older versions).
  std::string run_file_image;
};

std::string checkpoint_path(const std::string& run_file);

// The model.* keys that fix the parameter layout, as recorded in Checkpoint::shape.
std::map<std::string, std::int64_t> model_shape(const ModelConfig& m);

// Writes atomically (temp file + fsync + rename). Throws std::runtime_error naming the file
// and the OS error on failure; the previous checkpoint is then untouched.
void write_checkpoint(const std::string& path, const Checkpoint& ck);
// Throws std::runtime_error naming the file when it is missing or unreadable.
Checkpoint read_checkpoint(const std::string& path);

}  // namespace moe
