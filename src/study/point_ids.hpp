// Study point ids: readable, stable, bounded and unique. An id is the swept parameters as
// "<short key>-<value>" joined with '_' ("type-moec_num_experts-8_seed-1"); the short key is the
// last component of the key unless two swept keys share it. Values are sanitised to
// [A-Za-z0-9.-]; a float is its shortest round-trip text with the exponent's '+' left out
// (1e-30 -> "1e-30", 1e30 -> "1e30"), so distinct numbers give distinct ids. An id longer than
// kMaxIdBytes keeps its first bytes and ends in '_' and a 64-bit FNV-1a hash of the whole id
// (16 hex digits), which is stable across runs and machines. Two points with one id are refused
// when the study loads.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "study/study.hpp"

namespace moe::study_detail {

// Run files are "<id>.h5", "<id>.h5.ckpt", "<id>.log": well under the usual 255-byte limit.
constexpr std::size_t kMaxIdBytes = 200;

// The id of one point, given the study's swept keys (for the short names).
std::string point_id(const std::vector<std::string>& swept_keys, const std::vector<Param>& params);

// Sets id and file of every point; throws UserError naming `study_file` and both points when
// two points get the same id.
void assign_point_ids(const std::string& study_file, const std::vector<std::string>& swept_keys,
                      std::vector<StudyPoint>& points);

}  // namespace moe::study_detail
