// A study file's tables read into the Study's settings and a StudyParser's axes, exclusions and
// base sections, before expansion into points. Internal to src/study (TOML++, host-only).
#pragma once

#include <string>

#include "study/study.hpp"
#include "study/study_parser.hpp"

namespace moe::study_detail {

// Reads and checks [study], [base], [[axis]], [[zip]], [[exclude]] and [scale] (applied when
// scale is set) of `path` into st (name, description, output_dir, ranks_per_run, scaled,
// base_path, base_sets, keys) and p (axes in file order, exclusions). Throws UserError.
void read_study_file(const std::string& path, bool scale, Study& st, StudyParser& p);

// Id characters: [A-Za-z0-9.-] (and '_' where allowed); others become '-'.
std::string sanitize(const std::string& s, bool underscore = false);

}  // namespace moe::study_detail
