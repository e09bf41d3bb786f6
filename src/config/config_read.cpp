// Reading TOML input (a config file, --set values) into a Config: types, ranges and allowed
// values checked key by key against the schema. TOML++ stays in src/config and src/study.
#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "config/config_schema.hpp"
#include "io/input_file.hpp"
#include "util/format_double.hpp"

namespace moe::config_detail {

namespace {

// "string \"abc\"", "float 1.5", "table", ...: what the input held, for type errors.
std::string describe(const toml::node& node) {
  if (auto v = node.as_string()) return "string " + quote(v->get());
  if (auto v = node.as_integer()) return "integer " + std::to_string(v->get());
  if (auto v = node.as_floating_point()) return "float " + shortest_double(v->get());
  if (auto v = node.as_boolean()) return std::string("boolean ") + (v->get() ? "true" : "false");
  if (node.is_table()) return "a table";
  if (node.is_array()) return "an array";
  return "a date/time";
}

// The range a key's values must lie in, narrowed to what its member type can hold.
template <class T>
Range effective_range(const Key& key) {
  Range r = key.range;
  if (std::is_same_v<T, int>) {
    r.lo = std::max(r.lo, double(std::numeric_limits<int>::min()));
    r.hi = std::min(r.hi, double(std::numeric_limits<int>::max()));
  }
  return r;
}

std::string describe_range(const Range& r, bool integral) {
  if (integral && std::isfinite(r.hi)) return shortest_double(r.lo) + ".." + shortest_double(r.hi);
  std::string text = (r.lo_open ? "> " : ">= ") + shortest_double(r.lo);
  if (std::isfinite(r.hi)) text += (r.hi_open ? " and < " : " and <= ") + shortest_double(r.hi);
  return text;
}

bool in_range(double v, const Range& r) {
  const bool lo_ok = r.lo_open ? v > r.lo : v >= r.lo;
  const bool hi_ok = r.hi_open ? v < r.hi : v <= r.hi;
  return std::isfinite(v) && lo_ok && hi_ok;  // also rejects NaN, for which both are false
}

void check_range(const Key& key, double v, const std::string& text, const Range& r, bool integral) {
  if (!in_range(v, r))
    throw UserError(full_name(key) + " = " + text +
                    " is out of range (allowed: " + describe_range(r, integral) + ")");
}

std::string read_string(const Key& key, const toml::node& node) {
  auto v = node.as_string();
  if (!v) throw UserError(full_name(key) + ": expected a string, got " + describe(node));
  const std::string& s = v->get();
  if (key.allowed) {
    bool ok = false;
    for (const std::string& allowed : *key.allowed) ok = ok || s == allowed;
    if (!ok)
      throw UserError(full_name(key) + " = " + quote(s) +
                      " is not supported (allowed: " + join(*key.allowed) + ")");
  }
  return s;
}

double read_float(const Key& key, const toml::node& node) {
  double v;
  if (auto f = node.as_floating_point())
    v = f->get();
  else if (auto i = node.as_integer())  // lr = 1 means 1.0
    v = double(i->get());
  else
    throw UserError(full_name(key) + ": expected a number, got " + describe(node));
  check_range(key, v, shortest_double(v), key.range, false);
  return v;
}

bool read_bool(const Key& key, const toml::node& node) {
  auto b = node.as_boolean();
  if (!b) throw UserError(full_name(key) + ": expected true or false, got " + describe(node));
  return b->get();
}

template <class T>
T read_integer(const Key& key, const toml::node& node) {
  auto i = node.as_integer();
  if (!i) throw UserError(full_name(key) + ": expected an integer, got " + describe(node));
  const std::int64_t v = i->get();
  check_range(key, double(v), std::to_string(v), effective_range<T>(key), true);
  return T(v);
}

// Stores node into the member the key names, after the type and range checks.
void assign(const Key& key, const toml::node& node, Config& config) {
  std::visit(
      [&](auto* member) {
        using T = std::remove_pointer_t<decltype(member)>;
        if constexpr (std::is_same_v<T, std::string>)
          *member = read_string(key, node);
        else if constexpr (std::is_same_v<T, double>)
          *member = read_float(key, node);
        else if constexpr (std::is_same_v<T, bool>)
          *member = read_bool(key, node);
        else
          *member = read_integer<T>(key, node);
      },
      key.field(config));
}

// Prefixes errors with where the input came from: "file.toml:3: " or "--set a.b=c: ".
template <class F>
void with_origin(const std::string& origin, F&& body) {
  try {
    body();
  } catch (const UserError& e) {
    throw UserError(origin + ": " + e.what());
  }
}

std::string line_origin(const std::string& path, const toml::node& node) {
  return path + ":" + std::to_string(node.source().begin.line);
}

void apply_section(const std::string& path, const std::string& section, const toml::node& node,
                   Config& config) {
  with_origin(line_origin(path, node), [&] {
    if (!is_section(section))
      throw UserError("unknown section '" + section + "' " + allowed_sections());
    if (!node.is_table())
      throw UserError(section + ": expected a table [" + section + "], got " + describe(node));
  });
  for (const auto& [name, value] : *node.as_table())
    with_origin(line_origin(path, value),
                [&] { assign(find_key(section, std::string(name.str())), value, config); });
}

bool is_string_key(const Key& key) {
  Config probe;
  return std::holds_alternative<std::string*>(key.field(probe));
}

// The value of a --set: TOML if it parses as one value, else the bare text, so that
// router.type=topk and output.path=runs/a.h5 need no quotes. String keys always take the
// text when it is not a TOML string (output.path=2024 is the path "2024").
toml::table set_value(const Key& key, const std::string& text) {
  toml::table value;
  try {
    toml::table parsed = toml::parse("v = " + text);
    if (parsed.size() == 1 && parsed.contains("v")) value = std::move(parsed);
  } catch (const toml::parse_error&) {
  }
  if (value.empty() || (is_string_key(key) && !value["v"].is_string()))
    value.insert_or_assign("v", text);
  return value;
}

}  // namespace

void apply_file(const std::string& path, Config& config) {
  const std::string text = read_input_file(path, "config file");
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    const auto& pos = e.source().begin;
    throw UserError(path + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column) +
                    ": TOML parse error: " + std::string(e.description()));
  }
  for (const auto& [section, node] : root)
    apply_section(path, std::string(section.str()), node, config);
}

void apply_set(const std::string& arg, Config& config) {
  const std::size_t eq = arg.find('=');
  const std::size_t dot = arg.find('.');
  if (eq == std::string::npos || dot == std::string::npos || dot == 0 || dot + 1 >= eq)
    throw UserError("malformed --set '" + arg +
                    "' (expected section.key=value, e.g. --set model.d_model=256)");
  with_origin("--set " + arg, [&] {
    const Key& key = find_key(arg.substr(0, dot), arg.substr(dot + 1, eq - dot - 1));
    assign(key, *set_value(key, arg.substr(eq + 1)).get("v"), config);
  });
}

}  // namespace moe::config_detail
