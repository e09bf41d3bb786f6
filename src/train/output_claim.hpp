// Who may write a run's output, decided before anything there is touched: the output path must
// not be empty nor one of the run's inputs, no other run may hold it (output_lock.hpp), and
// what is already there must fit the request: a complete run or an unfinished run's checkpoint
// is replaced only with `overwrite`, continued only with `resume`.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "io/output_lock.hpp"

namespace moe {

// Takes the lock on cfg.output.path and checks what is there; once the run may go ahead, the
// temporary files a killed writer of this output left behind are removed. `inputs`: files the run
// reads besides its data (the config file); the data files of data.path are added here. Throws
// UserError in one line, having changed nothing, when the run may not go ahead.
std::unique_ptr<OutputLock> claim_output(const Config& cfg, const std::vector<std::string>& inputs,
                                         bool resume, bool overwrite);

}  // namespace moe
