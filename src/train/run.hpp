// One training run end to end: data, run file, training, checkpoints, resume, stop requests.
// moe-train is a thin command line around run_training; moe-study calls it once per point.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace moe {

struct RunOptions {
  bool resume = false;           // continue cfg.output.path from its last checkpoint
  bool overwrite = false;        // replace a complete run or a leftover checkpoint at the output
  std::int64_t stop_after = -1;  // checkpoint and stop after this many steps of this call
  std::ostream* log = nullptr;   // progress lines (written by rank 0 of comm only)
  // Files the run reads besides its data (the config file): the output may not be one of them.
  std::vector<std::string> inputs;
};

enum class RunOutcome {
  Complete,  // trained to train.steps; status = complete
  Stopped,   // stop_after reached or SIGTERM/SIGUSR1: checkpointed, status = running
  Failed,    // error during training: status = failed with the reason
};

// All ranks of comm call this together. Rank 0 first takes the output's lock (output_lock.hpp)
// and checks what is there; then every rank checks the memory the config needs, loads the
// data and (with resume) reads the checkpoint. Throws UserError for bad input before creating
// or changing any file: an empty output path or one that is an input, an output in use by
// another run, a complete run or a leftover checkpoint at the output without
// opts.overwrite (or resume), --resume without a checkpoint or with a config that differs
// from the checkpoint's (resume_check.hpp), a config that cannot fit in memory, bad data.
// A resume rebuilds the run file from the checkpoint's image of it, so whatever a kill left
// behind, the continued run's file equals the uninterrupted run's.
RunOutcome run_training(const Config& cfg, const RunOptions& opts, MPI_Comm comm);

// Installs SIGTERM and SIGUSR1 handlers that make running trainings checkpoint at the next
// step boundary and return RunOutcome::Stopped (SLURM sends these before a time limit).
void install_stop_signal_handlers();

}  // namespace moe
