// The study's bookkeeping in its index (index.hpp), done by group leaders under the index lock:
// claiming the next pending point, recording a point's outcome, counting statuses.
#pragma once

#include <iosfwd>
#include <map>
#include <string>

#include "study/study.hpp"

namespace moe {

// <output_dir>/<point file>.
std::string run_path(const Study& st, const StudyPoint& p);

struct Claim {
  int point = -1;  // -1: nothing left to run
  int resume = 0;  // 1: resume from the point's checkpoint
};

// Under the index lock: the first pending point (or `only`, when >= 0), marked running by
// `who`. Points whose run file turns out complete are recorded as such and passed over (with a
// line on out when `only` is one of them). Throws std::runtime_error for index I/O errors.
Claim claim_next(const Study& st, int only, const std::string& who, std::ostream* out);

// Under the index lock: point i's status, elapsed seconds and error ("" = none).
void record(const Study& st, int i, const std::string& status, double elapsed,
            const std::string& error);

// Points per status in the index (empty when it is unreadable).
std::map<std::string, int> status_counts(const Study& st);

}  // namespace moe
