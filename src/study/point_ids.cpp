#include "study/point_ids.hpp"

#include <cstdint>
#include <cstdio>
#include <map>

#include "study/study_file.hpp"
#include "util/rng.hpp"
#include "util/user_error.hpp"

namespace moe::study_detail {

namespace {

std::string last_component(const std::string& key) {
  return key.substr(key.find('.') + 1);
}

std::string value_text(const ParamValue& v) {
  std::string text = v.text();
  if (v.kind == ParamValue::Kind::Float) {
    const std::size_t plus = text.find("e+");
    if (plus != std::string::npos) text.erase(plus + 1, 1);
  }
  return sanitize(text);
}

std::string bounded(const std::string& id) {
  if (id.size() <= kMaxIdBytes) return id;
  char hash[24];
  std::snprintf(hash, sizeof hash, "_%016llx",
                static_cast<unsigned long long>(fnv1a(id, kFnvOffsetBasis)));
  return id.substr(0, kMaxIdBytes - 17) + hash;
}

}  // namespace

std::string point_id(const std::vector<std::string>& swept_keys, const std::vector<Param>& params) {
  std::map<std::string, int> short_count;
  for (const std::string& k : swept_keys) ++short_count[last_component(k)];
  std::string id;
  for (const Param& q : params) {
    const std::string key = short_count[last_component(q.key)] > 1 ? q.key : last_component(q.key);
    id += (id.empty() ? "" : "_") + sanitize(key, true) + "-" + value_text(q.value);
  }
  return id.empty() ? "base" : bounded(id);
}

void assign_point_ids(const std::string& study_file, const std::vector<std::string>& swept_keys,
                      std::vector<StudyPoint>& points) {
  std::map<std::string, std::string> owner;  // id -> the parameters of its point
  for (StudyPoint& pt : points) {
    pt.id = point_id(swept_keys, pt.params);
    pt.file = pt.id + ".h5";
    const std::string desc = describe_params(pt.params);
    const auto [it, fresh] = owner.emplace(pt.id, desc);
    if (!fresh)
      throw UserError(study_file + ": points '" + it->second + "' and '" + desc +
                      "' get the same id '" + pt.id +
                      "' (values differ only in characters outside [A-Za-z0-9.-])");
  }
}

}  // namespace moe::study_detail
