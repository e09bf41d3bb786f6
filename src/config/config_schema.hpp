// The configuration schema: one row per key (section, name, member, allowed values, help),
// which drives parsing, --set, validation messages, equality and config_to_toml, so a new key is
// one row in config_schema.cpp plus its member in config.hpp. Internal to src/config.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <variant>
#include <vector>

#include "config/config.hpp"

namespace moe::config_detail {

// A pointer to one member of a Config; the alternative held is the key's type.
using FieldRef = std::variant<int*, std::int64_t*, std::uint64_t*, double*, std::string*, bool*>;

constexpr double kInf = std::numeric_limits<double>::infinity();

// Allowed numeric values; a bound is inclusive unless marked open.
struct Range {
  double lo = -kInf, hi = kInf;
  bool lo_open = false, hi_open = false;
};

struct Key {
  const char* section;
  const char* name;
  FieldRef (*field)(Config&);
  Range range;                              // numeric keys
  const std::vector<std::string>* allowed;  // string keys; nullptr = any string
  const char* help;
};

// Every key, grouped by section, in the order config_to_toml writes them.
const std::vector<Key>& schema();

// Read-only access through the schema's accessors, which take a mutable Config.
FieldRef field_of(const Key& key, const Config& config);
std::string full_name(const Key& key);                    // "section.name"
std::string join(const std::vector<std::string>& items);  // "a, b, c"
std::string allowed_sections();                           // "(allowed: model, router, ...)"
bool is_section(const std::string& name);
// Throws UserError naming the unknown section or key and what is allowed.
const Key& find_key(const std::string& section, const std::string& name);

// TOML text: a float literal (1 -> 1.0) and a basic string (control characters escaped, which
// also keeps messages on one line).
std::string toml_float(double v);
std::string quote(const std::string& s);

// Reading TOML input into a Config (config_read.cpp); each throws UserError prefixed by where
// the input came from ("file.toml:3: ", "--set a.b=c: ").
void apply_file(const std::string& path, Config& config);
void apply_set(const std::string& arg, Config& config);

// Checks that involve more than one key, once every key has its final value
// (config_check.cpp). Throws UserError.
void check_cross_keys(const Config& c);

}  // namespace moe::config_detail
