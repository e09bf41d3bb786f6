// Expansion of a study's axes into points: the cartesian product (first axis slowest), then the
// exclusions (drop keys, or skip the point), then duplicates collapse into the first.
// Internal to src/study.
#pragma once

#include <string>
#include <vector>

#include "study/study_parser.hpp"

namespace moe::study_detail {

struct RawPoint {
  std::vector<Param> params;
  std::vector<std::string> origins;  // where each param's value is in the study file
};

std::vector<RawPoint> expand_points(const std::vector<Axis>& axes,
                                    const std::vector<Exclusion>& exclusions);

}  // namespace moe::study_detail
