// Runs a study's points: COMM_WORLD splits into groups of study.ranks_per_run ranks; each
// group's leader claims the first pending point in the index (under its lock), the group trains
// it with run_training, and the leader records the outcome. Groups take points as they free up
// until none is pending. Whole-study runs first rebuild the index from the run files (complete
// points are skipped; the others become pending); a claimed point resumes from <file>.ckpt when
// there is one and the run did not fail (the resume rebuilds the run file from the checkpoint,
// so a file torn by a kill does not matter), and starts over (replacing the file) otherwise.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <iosfwd>

#include "study/study.hpp"

namespace moe {

struct StudyOptions {
  int point = -1;                // run only this point (job arrays); -1 = the whole study
  std::int64_t stop_after = -1;  // each run checkpoints and stops after this many steps
  std::ostream* out = nullptr;   // one line per point event (group leaders write)
};

// All ranks of world call this. Returns the exit code: 0 when every point it ran completed or
// was stopped (signal, stop_after), 1 when one failed. Throws UserError for bad input
// (ranks not a multiple of ranks_per_run, --point out of range, an output dir that cannot be
// made) before any run starts; every rank throws the same.
int run_study(const Study& study, const StudyOptions& opts, MPI_Comm world);

// moe::install_stop_signal_handlers() plus a flag of the study's own: after SIGTERM/SIGUSR1
// the running training checkpoints and stops, and no new point starts.
void install_study_stop_handlers();
bool study_stop_requested();

}  // namespace moe
