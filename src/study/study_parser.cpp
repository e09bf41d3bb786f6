#include "study/study_parser.hpp"

#include "util/user_error.hpp"

namespace moe::study_detail {

[[noreturn]] void StudyParser::fail(const toml::node& node, const std::string& what) const {
  throw UserError(at(node) + ": " + what);
}

[[noreturn]] void StudyParser::fail(const std::string& what) const {
  throw UserError(path_ + ": " + what);
}

std::string StudyParser::at(const toml::node& node) const {
  return path_ + ":" + std::to_string(node.source().begin.line);
}

std::string StudyParser::string_of(const toml::node& node, const std::string& name) const {
  if (!node.is_string()) fail(node, name + ": expected a string, got " + type_name(node));
  return node.as_string()->get();
}

std::string StudyParser::type_name(const toml::node& n) {
  if (n.is_table()) return "a table";
  if (n.is_array()) return "an array";
  if (n.is_string()) return "a string";
  if (n.is_integer()) return "an integer";
  if (n.is_floating_point()) return "a float";
  if (n.is_boolean()) return "a boolean";
  return "a date or time";
}

ParamValue StudyParser::scalar(const toml::node& node, const std::string& name) const {
  ParamValue v;
  if (node.is_integer()) {
    v.kind = ParamValue::Kind::Int;
    v.i = node.as_integer()->get();
  } else if (node.is_floating_point()) {
    v.kind = ParamValue::Kind::Float;
    v.f = node.as_floating_point()->get();
  } else if (node.is_boolean()) {
    v.kind = ParamValue::Kind::Bool;
    v.b = node.as_boolean()->get();
  } else if (node.is_string()) {
    v.kind = ParamValue::Kind::String;
    v.s = node.as_string()->get();
  } else {
    fail(node, name + ": expected a string, number or boolean, got " + type_name(node));
  }
  return v;
}

std::string StudyParser::config_key(const toml::node& node, const std::string& name) const {
  const std::string key = string_of(node, name);
  const std::size_t dot = key.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 >= key.size() ||
      key.find('.', dot + 1) != std::string::npos)
    fail(node, name + " '" + key +
                   "': expected a config key section.name, e.g. "
                   "\"model.num_experts\"");
  if (key == "output.path")
    fail(node, name + " 'output.path' cannot be swept (moe-study names each point's file)");
  return key;
}

void StudyParser::config_sections(const toml::table& t, const std::string& where,
                                  bool tables_only) {
  for (const auto& [section, node] : t) {
    const std::string sec(section.str());
    if (tables_only && !node.is_table()) continue;
    if (!node.is_table())
      fail(node, where + "." + sec + ": expected a config section table [" + where + "." + sec +
                     "], got " + type_name(node));
    for (const auto& [name, value] : *node.as_table()) {
      const std::string key = sec + "." + std::string(name.str());
      if (key == "output.path") continue;  // moe-study names each point's file
      const ParamValue v = scalar(value, where + "." + key);
      Origin o{key + "=" + v.toml(), at(value) + ": " + where + "." + key};
      base_sets.push_back(o.set);
      origins.push_back(o);
    }
  }
}

const toml::array& StudyParser::array_of(const toml::node& node, const std::string& name,
                                         bool nonempty) const {
  if (!node.is_array()) fail(node, name + ": expected an array, got " + type_name(node));
  const toml::array& a = *node.as_array();
  if (nonempty && a.empty()) fail(node, name + ": empty array (allowed: at least one value)");
  return a;
}

Axis StudyParser::axis(const toml::table& t) {
  Axis a;
  a.line = t.source().begin.line;
  for (const auto& [name, node] : t)
    if (name.str() != "key" && name.str() != "values")
      fail(node, "[[axis]]: unknown key '" + std::string(name.str()) + "' (allowed: key, values)");
  const toml::node* key = t.get("key");
  const toml::node* values = t.get("values");
  if (!key || !values) fail(t, "[[axis]] needs key = \"section.name\" and values = [...]");
  a.keys.push_back(config_key(*key, "[[axis]] key"));
  for (const toml::node& v : array_of(*values, "[[axis]] " + a.keys[0] + " values", true)) {
    a.values.push_back({scalar(v, "[[axis]] " + a.keys[0] + " value")});
    a.origins.push_back(at(v) + ": [[axis]] " + a.keys[0]);
  }
  return a;
}

Axis StudyParser::zip(const toml::table& t) {
  Axis a;
  a.line = t.source().begin.line;
  for (const auto& [name, node] : t)
    if (name.str() != "keys" && name.str() != "values")
      fail(node, "[[zip]]: unknown key '" + std::string(name.str()) + "' (allowed: keys, values)");
  const toml::node* keys = t.get("keys");
  const toml::node* values = t.get("values");
  if (!keys || !values)
    fail(t, "[[zip]] needs keys = [\"section.name\", ...] and values = [[...]]");
  for (const toml::node& k : array_of(*keys, "[[zip]] keys", true))
    a.keys.push_back(config_key(k, "[[zip]] keys"));
  for (const toml::node& row : array_of(*values, "[[zip]] values", true)) {
    const toml::array& r = array_of(row, "[[zip]] values entry", true);
    if (r.size() != a.keys.size())
      fail(row, "[[zip]] values entry has " + std::to_string(r.size()) + " values for " +
                    std::to_string(a.keys.size()) + " keys (allowed: one value per key)");
    std::vector<ParamValue> vs;
    for (std::size_t k = 0; k < r.size(); ++k) vs.push_back(scalar(*r.get(k), a.keys[k]));
    a.values.push_back(vs);
    a.origins.push_back(at(row) + ": [[zip]]");
  }
  return a;
}

void StudyParser::where_entries(const toml::table& t, const std::string& prefix, Exclusion& e) {
  for (const auto& [name, node] : t) {
    const std::string key = prefix + std::string(name.str());
    if (node.is_table()) {
      where_entries(*node.as_table(), key + ".", e);
      continue;
    }
    std::vector<ParamValue> allowed;
    if (node.is_array()) {
      for (const toml::node& v : array_of(node, "[[exclude]] where " + key, true))
        allowed.push_back(scalar(v, "[[exclude]] where " + key));
    } else {
      allowed.push_back(scalar(node, "[[exclude]] where " + key));
    }
    e.where.emplace_back(key, allowed);
  }
}

Exclusion StudyParser::exclusion(const toml::table& t) {
  Exclusion e;
  e.origin = at(t);
  for (const auto& [name, node] : t) {
    const std::string n(name.str());
    if (n == "where") {
      if (!node.is_table())
        fail(node, "[[exclude]] where: expected an inline table {\"section.name\" = value}");
      where_entries(*node.as_table(), "", e);
    } else if (n == "drop") {
      for (const toml::node& k : array_of(node, "[[exclude]] drop", true))
        e.drop.push_back(string_of(k, "[[exclude]] drop"));
    } else if (n == "skip") {
      if (!node.is_boolean()) fail(node, "[[exclude]] skip: expected true or false");
      e.skip = node.as_boolean()->get();
    } else {
      fail(node, "[[exclude]]: unknown key '" + n + "' (allowed: where, drop, skip)");
    }
  }
  if (e.where.empty()) fail(t, "[[exclude]] needs where = {\"section.name\" = value, ...}");
  if (!e.skip && e.drop.empty())
    fail(t, "[[exclude]] needs drop = [\"section.name\", ...] or skip = true");
  if (e.skip && !e.drop.empty()) fail(t, "[[exclude]]: drop and skip = true exclude each other");
  return e;
}

}  // namespace moe::study_detail
