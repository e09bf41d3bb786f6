// A study: a base run configuration and sweep axes, expanded into points (one run each).
//
//   [study]   name, output_dir (default "runs/<name>"), ranks_per_run (default 1), description
//   [base]    the run configuration inline as [base.model], [base.router], ... sub-tables,
//             or base = "path/to/config.toml" (relative to the study file)
//   [[axis]]  key = "model.num_experts", values = [1, 2, 4]        (cartesian product)
//   [[zip]]   keys = ["router.type", "router.cluster_size"],
//             values = [["moec", 4], ["topk", 0]]                  (one axis setting several keys)
//   [[exclude]] where = {"router.type" = "topk"}, drop = ["router.cluster_size"]  or  skip = true
//   [scale]   overrides for clusters, applied with --scale / MOE_STUDY_SCALE=1: config sections
//             ([scale.model], [scale.train], ...) on top of the base, and output_dir /
//             ranks_per_run (the output dir defaults to "runs/<name>-scale")
//
// Axes (axis and zip tables together) combine in the order they appear in the file, the first
// varying slowest. An exclusion whose `where` matches a point (every listed key equal, or in a
// listed array of values) removes the `drop` keys from it, or the whole point with skip = true;
// points whose parameters then coincide collapse into the first. A point's id is readable and
// stable: short key (the last component; the full key when two swept keys share it), '-',
// the value sanitised to [A-Za-z0-9.-], joined with '_': "type-moec_num_experts-8_seed-1".
// Point ids are bounded and unique (point_ids.hpp). TOML++ stays in src/study's sources
// (host-only, like src/config).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace moe {

// One swept value: a TOML scalar.
struct ParamValue {
  enum class Kind { Int, Float, Bool, String };
  Kind kind = Kind::Int;
  std::int64_t i = 0;
  double f = 0;
  bool b = false;
  std::string s;

  std::string toml() const;  // as a --set value: "4", "0.001", "true", "\"topk\""
  std::string text() const;  // for people: "4", "0.001", "true", "topk"
  bool operator==(const ParamValue& o) const;
  bool operator!=(const ParamValue& o) const { return !(*this == o); }
};

struct Param {
  std::string key;  // full key, "section.name"
  ParamValue value;
  bool operator==(const Param& o) const { return key == o.key && value == o.value; }
};

struct StudyPoint {
  std::string id;
  std::vector<Param> params;  // in axis order
  std::string file;           // "<id>.h5", relative to the output dir
};

struct Study {
  std::string name;
  std::string description;
  std::string study_file;  // as given
  std::string output_dir;
  int ranks_per_run = 1;
  bool scaled = false;                 // [scale] applied
  std::string base_path;               // base config file ("" = inline base or defaults)
  std::vector<std::string> base_sets;  // inline base (and [scale]) as --set strings
  std::vector<std::string> keys;       // swept keys, in axis order
  std::vector<StudyPoint> points;
};

// Parses and expands the study file, then validates every point's configuration (load_config).
// scale: apply the [scale] table. Throws UserError.
Study load_study(const std::string& path, bool scale = false);

// The full configuration of one point, with output.path = <output_dir>/<point file>.
// Throws UserError.
Config point_config(const Study& study, const StudyPoint& point);

// "router.type=moec model.num_experts=8" (for --list and logs).
std::string describe_params(const std::vector<Param>& params);

}  // namespace moe
