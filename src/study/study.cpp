#include "study/study.hpp"

#include <cmath>
#include <filesystem>

#include "study/point_ids.hpp"
#include "study/study_expand.hpp"
#include "study/study_file.hpp"
#include "study/study_parser.hpp"
#include "util/format_double.hpp"

namespace moe {

namespace fs = std::filesystem;

std::string ParamValue::toml() const {
  switch (kind) {
    case Kind::Int:
      return std::to_string(i);
    case Kind::Bool:
      return b ? "true" : "false";
    case Kind::Float: {
      if (std::isnan(f)) return "nan";
      if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
      std::string t = shortest_double(f);
      if (t.find_first_of(".e") == std::string::npos) t += ".0";  // stays a TOML float
      return t;
    }
    case Kind::String:
      break;
  }
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string ParamValue::text() const {
  switch (kind) {
    case Kind::Int:
      return std::to_string(i);
    case Kind::Bool:
      return b ? "true" : "false";
    case Kind::Float:
      return shortest_double(f);
    case Kind::String:
      break;
  }
  return s;
}

bool ParamValue::operator==(const ParamValue& o) const {
  if (kind != o.kind) return false;
  switch (kind) {
    case Kind::Int:
      return i == o.i;
    case Kind::Bool:
      return b == o.b;
    case Kind::Float:
      return f == o.f;
    case Kind::String:
      return s == o.s;
  }
  return false;
}

std::string describe_params(const std::vector<Param>& params) {
  std::string out;
  for (const Param& p : params) out += (out.empty() ? "" : " ") + p.key + "=" + p.value.text();
  return out;
}

namespace {

using namespace study_detail;

// Validates the whole configuration of a point, naming where the offending value came from:
// a "--set key=value: ..." error of load_config becomes "study.toml:12: [[axis]] key: ...".
void validate_point(const Study& st, const StudyPoint& pt, const RawPoint& raw,
                    const std::vector<Origin>& base_origins) {
  std::vector<Origin> origins = base_origins;
  for (std::size_t q = 0; q < raw.params.size(); ++q)
    origins.push_back({raw.params[q].key + "=" + raw.params[q].value.toml(), raw.origins[q]});
  try {
    point_config(st, pt);
  } catch (const UserError& e) {
    std::string msg = e.what();
    const std::string lead = "--set ";
    std::string where = st.study_file;
    if (msg.rfind(lead, 0) == 0) {
      for (const Origin& o : origins)
        if (msg.compare(lead.size(), o.set.size() + 2, o.set + ": ") == 0) {
          msg = msg.substr(lead.size() + o.set.size() + 2);
          where = o.where;
          break;
        }
    }
    throw UserError(where + ": " + msg + " (point " + pt.id + ": " + describe_params(pt.params) +
                    ")");
  }
}

}  // namespace

Study load_study(const std::string& path, bool scale) {
  Study st;
  StudyParser p(path);
  read_study_file(path, scale, st, p);
  const std::vector<RawPoint> raws = expand_points(p.axes, p.exclusions);
  if (raws.empty()) p.fail("every point is excluded (skip = true matches them all)");
  for (const RawPoint& r : raws) st.points.push_back({"", r.params, ""});
  assign_point_ids(path, st.keys, st.points);
  for (std::size_t i = 0; i < raws.size(); ++i)
    validate_point(st, st.points[i], raws[i], p.origins);
  return st;
}

Config point_config(const Study& study, const StudyPoint& point) {
  std::vector<std::string> sets = study.base_sets;
  for (const Param& q : point.params) sets.push_back(q.key + "=" + q.value.toml());
  Config cfg = load_config(study.base_path, sets);
  cfg.output.path = (fs::path(study.output_dir) / point.file).string();
  return cfg;
}

}  // namespace moe
