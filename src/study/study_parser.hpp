// Reading the tables of a study file (TOML++): scalars, config keys, [base.<section>] and
// [scale.<section>] sections, [[axis]], [[zip]] and [[exclude]]. Every error names the file and
// line. Internal to src/study; host-only like everything that includes TOML++.
#pragma once

#include <toml++/toml.h>

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "study/study.hpp"

namespace moe::study_detail {

// One sweep dimension: a plain axis has one key, a zip several; each value sets every key.
struct Axis {
  std::vector<std::string> keys;
  std::vector<std::vector<ParamValue>> values;  // values[v][k] for keys[k]
  std::vector<std::string> origins;             // "study.toml:12" per value
  std::size_t line = 0;
};

struct Exclusion {
  std::vector<std::pair<std::string, std::vector<ParamValue>>> where;
  std::vector<std::string> drop;
  bool skip = false;
  std::string origin;
};

// A --set string with the place in the study file it came from, to rename errors.
struct Origin {
  std::string set, where;
};

class StudyParser {
 public:
  explicit StudyParser(const std::string& path) : path_(path) {}

  [[noreturn]] void fail(const toml::node& node, const std::string& what) const;
  [[noreturn]] void fail(const std::string& what) const;
  std::string at(const toml::node& node) const;

  std::string string_of(const toml::node& node, const std::string& name) const;

  static std::string type_name(const toml::node& n);

  ParamValue scalar(const toml::node& node, const std::string& name) const;

  const toml::array& array_of(const toml::node& node, const std::string& name, bool nonempty) const;

  // "section.key" with both parts present; checked against the schema later (load_config).
  std::string config_key(const toml::node& node, const std::string& name) const;

  // Config sections of a table ([base.model] ...) as --set strings with their origins.
  // tables_only: skip scalar entries ([scale] holds output_dir and ranks_per_run beside them).
  void config_sections(const toml::table& t, const std::string& where, bool tables_only = false);

  Axis axis(const toml::table& t);

  Axis zip(const toml::table& t);

  // where = {"router.type" = "topk"} (a quoted dotted key) or {router.type = "topk"} (nested);
  // a value may be an array: any of them matches.
  void where_entries(const toml::table& t, const std::string& prefix, Exclusion& e);

  Exclusion exclusion(const toml::table& t);

  // What the tables read so far hold.
  std::vector<std::string> base_sets;
  std::vector<Origin> origins;
  std::vector<Axis> axes;
  std::vector<Exclusion> exclusions;

 private:
  const std::string& path_;
};

}  // namespace moe::study_detail
