#include "train/resume_check.hpp"

#include <algorithm>
#include <map>
#include <sstream>
#include <utility>

#include "util/user_error.hpp"

namespace moe {

namespace {

// "section.key" -> value text, from config_to_toml's "[section]" and "key = value  # help"
// lines (the help comment is dropped; string values are quoted, so "  # " cannot start inside
// one unless a path contains it, which then compares unequal only if the values differ).
std::vector<std::pair<std::string, std::string>> key_values(const std::string& toml) {
  std::vector<std::pair<std::string, std::string>> out;
  std::istringstream in(toml);
  std::string line, section;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line[0] == '[') {
      section = line.substr(1, line.find(']') - 1);
      continue;
    }
    const std::size_t eq = line.find(" = ");
    if (eq == std::string::npos) continue;
    std::string value = line.substr(eq + 3);
    const std::size_t comment = value.rfind("  # ");
    if (comment != std::string::npos) value.resize(comment);
    out.emplace_back(section + "." + line.substr(0, eq), value);
  }
  return out;
}

}  // namespace

const std::vector<std::string>& resume_safe_keys() {
  static const std::vector<std::string> keys = {"train.steps",
                                                "train.eval_every",
                                                "output.path",
                                                "output.trace_every",
                                                "output.checkpoint_every",
                                                "data.cache_dir",
                                                "parallel.expert_parallel",
                                                "parallel.nccl"};
  return keys;
}

std::vector<std::string> resume_config_differences(const std::string& checkpoint_toml,
                                                   const std::string& current_toml) {
  const auto before = key_values(checkpoint_toml);
  const auto now = key_values(current_toml);
  const std::map<std::string, std::string> before_map(before.begin(), before.end());
  const auto& safe = resume_safe_keys();
  std::vector<std::string> out;
  for (const auto& [key, value] : now) {
    if (std::find(safe.begin(), safe.end(), key) != safe.end()) continue;
    const auto it = before_map.find(key);
    if (it == before_map.end())
      out.push_back(key + " (not in the checkpoint -> " + value + ")");
    else if (it->second != value)
      out.push_back(key + " (" + it->second + " -> " + value + ")");
  }
  return out;
}

void check_resume_config(const std::string& checkpoint_toml, const std::string& current_toml) {
  const auto diff = resume_config_differences(checkpoint_toml, current_toml);
  if (diff.empty()) return;
  std::string keys, safe;
  for (const std::string& d : diff) keys += (keys.empty() ? "" : ", ") + d;
  for (const std::string& k : resume_safe_keys()) safe += (safe.empty() ? "" : ", ") + k;
  throw UserError("--resume: the config differs from the checkpoint's in " + keys +
                  " (allowed to change on resume: " + safe + ")");
}

}  // namespace moe
