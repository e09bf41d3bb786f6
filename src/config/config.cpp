// load_config, config_to_toml and equality, all driven by the schema (config_schema.hpp).
#include "config/config.hpp"

#include <sstream>
#include <type_traits>
#include <variant>

#include "config/config_schema.hpp"

namespace moe {

using namespace config_detail;

namespace {

// The value of one key as TOML text.
std::string toml_value(const Key& key, const Config& config) {
  return std::visit(
      [](auto* member) -> std::string {
        using T = std::remove_pointer_t<decltype(member)>;
        if constexpr (std::is_same_v<T, std::string>)
          return quote(*member);
        else if constexpr (std::is_same_v<T, double>)
          return toml_float(*member);
        else if constexpr (std::is_same_v<T, bool>)
          return std::string(*member ? "true" : "false");
        else
          return std::to_string(*member);
      },
      field_of(key, config));
}

}  // namespace

Config load_config(const std::string& path, const std::vector<std::string>& sets) {
  Config config;
  if (!path.empty()) apply_file(path, config);
  for (const std::string& arg : sets) apply_set(arg, config);
  check_cross_keys(config);
  return config;
}

std::string config_to_toml(const Config& config) {
  std::ostringstream out;
  out << "# moe-suite run configuration: every key, with its effective value.\n";
  std::string section;
  for (const Key& key : schema()) {
    if (section != key.section) {
      section = key.section;
      out << "\n[" << section << "]\n";
    }
    out << key.name << " = " << toml_value(key, config) << "  # " << key.help << "\n";
  }
  return out.str();
}

bool operator==(const Config& a, const Config& b) {
  for (const Key& key : schema()) {
    const bool same = std::visit(
        [&](auto* member) { return *member == *std::get<decltype(member)>(field_of(key, b)); },
        field_of(key, a));
    if (!same) return false;
  }
  return true;
}

bool operator!=(const Config& a, const Config& b) {
  return !(a == b);
}

}  // namespace moe
