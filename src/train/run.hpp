// One training run end to end: data, run file, training, checkpoints, resume, stop requests.
// moe-train is a thin command line around run_training; moe-study calls it once per point.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <iosfwd>
#include <string>

#include "config/config.hpp"

namespace moe {

struct RunOptions {
  bool resume = false;           // continue cfg.output.path from its last checkpoint
  std::int64_t stop_after = -1;  // checkpoint and stop after this many steps of this call
  std::ostream* log = nullptr;   // progress lines (written by rank 0 of comm only)
};

enum class RunOutcome {
  Complete,  // trained to train.steps; status = complete
  Stopped,   // stop_after reached or SIGTERM/SIGUSR1: checkpointed, status = running
  Failed,    // error during training: status = failed with the reason
};

// All ranks of comm call this together. Throws UserError for bad input (config, data, an
// output path that cannot be created, --resume of a file without a checkpoint or with another
// model shape) before creating or changing any file.
RunOutcome run_training(const Config& cfg, const RunOptions& opts, MPI_Comm comm);

// Installs SIGTERM and SIGUSR1 handlers that make running trainings checkpoint at the next
// step boundary and return RunOutcome::Stopped (SLURM sends these before a time limit).
void install_stop_signal_handlers();

}  // namespace moe
