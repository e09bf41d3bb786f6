#include "study/study.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include "io/input_file.hpp"
#include "study/json.hpp"

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
      std::string t = json::shortest_double(f);
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
      return json::shortest_double(f);
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

class Parser {
 public:
  explicit Parser(const std::string& path) : path_(path) {}

  [[noreturn]] void fail(const toml::node& node, const std::string& what) const {
    throw UserError(at(node) + ": " + what);
  }
  [[noreturn]] void fail(const std::string& what) const { throw UserError(path_ + ": " + what); }
  std::string at(const toml::node& node) const {
    return path_ + ":" + std::to_string(node.source().begin.line);
  }

  std::string string_of(const toml::node& node, const std::string& name) const {
    if (!node.is_string()) fail(node, name + ": expected a string, got " + type_name(node));
    return node.as_string()->get();
  }

  static std::string type_name(const toml::node& n) {
    if (n.is_table()) return "a table";
    if (n.is_array()) return "an array";
    if (n.is_string()) return "a string";
    if (n.is_integer()) return "an integer";
    if (n.is_floating_point()) return "a float";
    if (n.is_boolean()) return "a boolean";
    return "a date or time";
  }

  ParamValue scalar(const toml::node& node, const std::string& name) const {
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

  const toml::array& array_of(const toml::node& node, const std::string& name,
                              bool nonempty) const {
    if (!node.is_array()) fail(node, name + ": expected an array, got " + type_name(node));
    const toml::array& a = *node.as_array();
    if (nonempty && a.empty()) fail(node, name + ": empty array (allowed: at least one value)");
    return a;
  }

  // "section.key" with both parts present; checked against the schema later (load_config).
  std::string config_key(const toml::node& node, const std::string& name) const {
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

  // Config sections of a table ([base.model] ...) as --set strings with their origins.
  // tables_only: skip scalar entries ([scale] holds output_dir and ranks_per_run beside them).
  void config_sections(const toml::table& t, const std::string& where, bool tables_only = false) {
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

  Axis axis(const toml::table& t) {
    Axis a;
    a.line = t.source().begin.line;
    for (const auto& [name, node] : t)
      if (name.str() != "key" && name.str() != "values")
        fail(node,
             "[[axis]]: unknown key '" + std::string(name.str()) + "' (allowed: key, values)");
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

  Axis zip(const toml::table& t) {
    Axis a;
    a.line = t.source().begin.line;
    for (const auto& [name, node] : t)
      if (name.str() != "keys" && name.str() != "values")
        fail(node,
             "[[zip]]: unknown key '" + std::string(name.str()) + "' (allowed: keys, values)");
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

  // where = {"router.type" = "topk"} (a quoted dotted key) or {router.type = "topk"} (nested);
  // a value may be an array: any of them matches.
  void where_entries(const toml::table& t, const std::string& prefix, Exclusion& e) {
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

  Exclusion exclusion(const toml::table& t) {
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

  const std::string& path_;
  std::vector<std::string> base_sets;
  std::vector<Origin> origins;
  std::vector<Axis> axes;
  std::vector<Exclusion> exclusions;
};

std::string read_text(const std::string& path) {
  return read_input_file(path, "study file");
}

// Id characters: [A-Za-z0-9.-] (and '_' in keys, which join with '_' anyway); others -> '-'.
std::string sanitize(const std::string& s, bool underscore = false) {
  std::string out;
  for (const char c : s) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || (underscore && c == '_');
    out += ok ? c : '-';
  }
  return out;
}

std::string last_component(const std::string& key) {
  return key.substr(key.find('.') + 1);
}

bool matches(const Exclusion& e, const std::vector<Param>& params) {
  for (const auto& [key, allowed] : e.where) {
    const Param* p = nullptr;
    for (const Param& q : params)
      if (q.key == key) p = &q;
    if (!p) return false;
    bool any = false;
    for (const ParamValue& v : allowed) {
      // 4 and 4.0 mean the same number in a where clause.
      const bool num =
          (v.kind == ParamValue::Kind::Int || v.kind == ParamValue::Kind::Float) &&
          (p->value.kind == ParamValue::Kind::Int || p->value.kind == ParamValue::Kind::Float);
      auto as_d = [](const ParamValue& x) {
        return x.kind == ParamValue::Kind::Int ? double(x.i) : x.f;
      };
      if (v == p->value || (num && as_d(v) == as_d(p->value))) any = true;
    }
    if (!any) return false;
  }
  return true;
}

}  // namespace

Study load_study(const std::string& path, bool scale) {
  const std::string text = read_text(path);
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    const auto& pos = e.source().begin;
    throw UserError(path + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column) +
                    ": TOML parse error: " + std::string(e.description()));
  }

  Parser p(path);
  Study st;
  st.study_file = path;
  st.name = fs::path(path).stem().string();
  std::string output_dir;
  const toml::node* scale_node = nullptr;
  // base = "config.toml", relative to the study file (top level or under [study]).
  auto set_base_path = [&](const toml::node& node) {
    fs::path b = node.as_string()->get();
    if (b.is_relative()) b = fs::path(path).parent_path() / b;
    st.base_path = b.string();
    std::error_code ec;
    if (!fs::is_regular_file(st.base_path, ec))
      p.fail(node, "base = '" + node.as_string()->get() + "': no such config file '" +
                       st.base_path + "' (paths are relative to the study file)");
  };

  for (const auto& [name, node] : root) {
    const std::string n(name.str());
    if (n == "study") {
      if (!node.is_table()) p.fail(node, "study: expected a table [study]");
      for (const auto& [k, v] : *node.as_table()) {
        const std::string key(k.str());
        if (key == "name") {
          st.name = p.string_of(v, "study.name");
          if (st.name.empty() || sanitize(st.name, true) != st.name)
            p.fail(v, "study.name '" + st.name + "' (allowed: letters, digits, '.', '-', '_')");
        } else if (key == "base" && v.is_string()) {
          set_base_path(v);
        } else if (key == "description") {
          st.description = p.string_of(v, "study.description");
        } else if (key == "output_dir") {
          output_dir = p.string_of(v, "study.output_dir");
          if (output_dir.empty()) p.fail(v, "study.output_dir is empty (allowed: a directory)");
        } else if (key == "ranks_per_run") {
          if (!v.is_integer() || v.as_integer()->get() < 1)
            p.fail(v, "study.ranks_per_run (allowed: an integer >= 1)");
          st.ranks_per_run = int(v.as_integer()->get());
        } else {
          p.fail(v, "study: unknown key '" + key +
                        "' (allowed: name, description, output_dir, ranks_per_run, base)");
        }
      }
    } else if (n == "base") {
      if (node.is_string()) {
        set_base_path(node);
      } else if (node.is_table()) {
        p.config_sections(*node.as_table(), "base");
      } else {
        p.fail(node, "base: expected a config file path or [base.<section>] tables");
      }
    } else if (n == "axis" || n == "zip" || n == "exclude") {
      if (!node.is_array_of_tables()) p.fail(node, n + ": expected [[" + n + "]] tables");
      for (const toml::node& t : *node.as_array()) {
        if (n == "axis")
          p.axes.push_back(p.axis(*t.as_table()));
        else if (n == "zip")
          p.axes.push_back(p.zip(*t.as_table()));
        else
          p.exclusions.push_back(p.exclusion(*t.as_table()));
      }
    } else if (n == "scale") {
      if (!node.is_table()) p.fail(node, "scale: expected a table [scale]");
      scale_node = &node;
    } else {
      p.fail(node, "unknown table '" + n +
                       "' (allowed: [study], [base], [[axis]], [[zip]], [[exclude]], [scale])");
    }
  }

  // [scale]: always checked, applied on request.
  std::string scale_dir;
  int scale_ranks = 0;
  if (scale_node) {
    toml::table sections;
    for (const auto& [k, v] : *scale_node->as_table()) {
      const std::string key(k.str());
      if (key == "output_dir") {
        scale_dir = p.string_of(v, "scale.output_dir");
      } else if (key == "ranks_per_run") {
        if (!v.is_integer() || v.as_integer()->get() < 1)
          p.fail(v, "scale.ranks_per_run (allowed: an integer >= 1)");
        scale_ranks = int(v.as_integer()->get());
      } else if (!v.is_table()) {
        p.fail(v, "scale: unknown key '" + key +
                      "' (allowed: output_dir, ranks_per_run, [scale.<config section>])");
      }
    }
    if (scale) {
      st.scaled = true;
      p.config_sections(*scale_node->as_table(), "scale", true);
      if (scale_ranks) st.ranks_per_run = scale_ranks;
    }
  }
  st.output_dir = !output_dir.empty() ? output_dir : "runs/" + st.name;
  if (st.scaled) st.output_dir = !scale_dir.empty() ? scale_dir : st.output_dir + "-scale";
  st.base_sets = p.base_sets;

  // Axes in file order (axis and zip tables interleaved), the first varying slowest.
  std::stable_sort(p.axes.begin(), p.axes.end(),
                   [](const Axis& a, const Axis& b) { return a.line < b.line; });
  std::set<std::string> swept;
  for (const Axis& a : p.axes)
    for (const std::string& k : a.keys) {
      if (!swept.insert(k).second)
        p.fail("key '" + k + "' is swept by two axes (allowed: each key in one axis or zip)");
      st.keys.push_back(k);
    }
  for (const Exclusion& e : p.exclusions) {
    for (const auto& w : e.where)
      if (!swept.count(w.first))
        throw UserError(e.origin + ": [[exclude]] where key '" + w.first +
                        "' is not a swept key (allowed: keys of [[axis]] and [[zip]])");
    for (const std::string& d : e.drop)
      if (!swept.count(d))
        throw UserError(e.origin + ": [[exclude]] drop key '" + d +
                        "' is not a swept key (allowed: keys of [[axis]] and [[zip]])");
  }

  // Cartesian product, then exclusions, then dedup by the final parameter set.
  struct Raw {
    std::vector<Param> params;
    std::vector<std::string> origins;  // per param
  };
  std::vector<Raw> raws;
  std::vector<std::size_t> odo(p.axes.size(), 0);
  while (true) {
    Raw r;
    for (std::size_t a = 0; a < p.axes.size(); ++a)
      for (std::size_t k = 0; k < p.axes[a].keys.size(); ++k) {
        r.params.push_back({p.axes[a].keys[k], p.axes[a].values[odo[a]][k]});
        r.origins.push_back(p.axes[a].origins[odo[a]]);
      }
    bool keep = true;
    for (const Exclusion& e : p.exclusions) {
      if (!matches(e, r.params)) continue;
      if (e.skip) {
        keep = false;
        break;
      }
      for (std::size_t q = r.params.size(); q-- > 0;)
        for (const std::string& d : e.drop)
          if (r.params[q].key == d) {
            r.params.erase(r.params.begin() + std::ptrdiff_t(q));
            r.origins.erase(r.origins.begin() + std::ptrdiff_t(q));
            break;
          }
    }
    if (keep) {
      bool dup = false;
      for (const Raw& o : raws)
        if (o.params == r.params) dup = true;
      if (!dup) raws.push_back(r);
    }
    // Advance the odometer, last axis fastest; done when the first axis wraps.
    if (p.axes.empty()) break;
    std::size_t a = p.axes.size();
    bool carry = true;
    while (carry && a > 0) {
      --a;
      if (++odo[a] < p.axes[a].values.size())
        carry = false;
      else
        odo[a] = 0;
    }
    if (carry) break;
  }
  if (raws.empty()) p.fail("every point is excluded (skip = true matches them all)");

  // Ids: short keys unless two swept keys share their last component.
  std::map<std::string, int> short_count;
  for (const std::string& k : st.keys) ++short_count[last_component(k)];
  std::map<std::string, std::string> id_owner;
  for (const Raw& r : raws) {
    StudyPoint pt;
    pt.params = r.params;
    for (const Param& q : r.params) {
      const std::string sk = short_count[last_component(q.key)] > 1 ? q.key : last_component(q.key);
      pt.id += (pt.id.empty() ? "" : "_") + sanitize(sk, true) + "-" + sanitize(q.value.text());
    }
    if (pt.id.empty()) pt.id = "base";
    const std::string desc = describe_params(pt.params);
    auto [it, fresh] = id_owner.emplace(pt.id, desc);
    if (!fresh)
      p.fail("points '" + it->second + "' and '" + desc + "' get the same id '" + pt.id +
             "' (values differ only in characters outside [A-Za-z0-9.-])");
    pt.file = pt.id + ".h5";
    st.points.push_back(pt);

    // Validate the whole configuration of this point now, naming where each value came from.
    std::vector<Origin> origins = p.origins;
    for (std::size_t q = 0; q < r.params.size(); ++q)
      origins.push_back({r.params[q].key + "=" + r.params[q].value.toml(), r.origins[q]});
    try {
      point_config(st, st.points.back());
    } catch (const UserError& e) {
      std::string msg = e.what();
      const std::string lead = "--set ";
      std::string where = path;
      if (msg.rfind(lead, 0) == 0) {
        for (const Origin& o : origins)
          if (msg.compare(lead.size(), o.set.size() + 2, o.set + ": ") == 0) {
            msg = msg.substr(lead.size() + o.set.size() + 2);
            where = o.where;
            break;
          }
      }
      throw UserError(where + ": " + msg + " (point " + pt.id + ": " + desc + ")");
    }
  }
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
