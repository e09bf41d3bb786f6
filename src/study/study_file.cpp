#include "study/study_file.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "io/input_file.hpp"
#include "util/user_error.hpp"

namespace moe::study_detail {

namespace fs = std::filesystem;

namespace {

std::string read_text(const std::string& path) {
  return read_input_file(path, "study file");
}

toml::table parse_toml(const std::string& path) {
  const std::string text = read_text(path);
  try {
    return toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    const auto& pos = e.source().begin;
    throw UserError(path + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column) +
                    ": TOML parse error: " + std::string(e.description()));
  }
}

// base = "config.toml", relative to the study file (top level or under [study]).
void set_base_path(const std::string& path, const toml::node& node, Study& st,
                   const StudyParser& p) {
  fs::path b = node.as_string()->get();
  if (b.is_relative()) b = fs::path(path).parent_path() / b;
  st.base_path = b.string();
  std::error_code ec;
  if (!fs::is_regular_file(st.base_path, ec))
    p.fail(node, "base = '" + node.as_string()->get() + "': no such config file '" + st.base_path +
                     "' (paths are relative to the study file)");
}

int ranks_per_run(const toml::node& v, const char* where, const StudyParser& p) {
  if (!v.is_integer() || v.as_integer()->get() < 1 || v.as_integer()->get() > 1 << 30)
    p.fail(v, std::string(where) + ".ranks_per_run (allowed: an integer >= 1)");
  return int(v.as_integer()->get());
}

// [study]: name, description, output_dir, ranks_per_run, base.
void read_study_table(const std::string& path, const toml::node& node, Study& st,
                      std::string& output_dir, const StudyParser& p) {
  if (!node.is_table()) p.fail(node, "study: expected a table [study]");
  for (const auto& [k, v] : *node.as_table()) {
    const std::string key(k.str());
    if (key == "name") {
      st.name = p.string_of(v, "study.name");
      if (st.name.empty() || sanitize(st.name, true) != st.name)
        p.fail(v, "study.name '" + st.name + "' (allowed: letters, digits, '.', '-', '_')");
    } else if (key == "base" && v.is_string()) {
      set_base_path(path, v, st, p);
    } else if (key == "description") {
      st.description = p.string_of(v, "study.description");
    } else if (key == "output_dir") {
      output_dir = p.string_of(v, "study.output_dir");
      if (output_dir.empty()) p.fail(v, "study.output_dir is empty (allowed: a directory)");
    } else if (key == "ranks_per_run") {
      st.ranks_per_run = ranks_per_run(v, "study", p);
    } else {
      p.fail(v, "study: unknown key '" + key +
                    "' (allowed: name, description, output_dir, ranks_per_run, base)");
    }
  }
}

// [[axis]], [[zip]] or [[exclude]] tables.
void read_array_tables(const std::string& n, const toml::node& node, StudyParser& p) {
  if (!node.is_array_of_tables()) p.fail(node, n + ": expected [[" + n + "]] tables");
  for (const toml::node& t : *node.as_array()) {
    if (n == "axis")
      p.axes.push_back(p.axis(*t.as_table()));
    else if (n == "zip")
      p.axes.push_back(p.zip(*t.as_table()));
    else
      p.exclusions.push_back(p.exclusion(*t.as_table()));
  }
}

// [scale]: always checked, applied on request; output_dir defaults to "<output_dir>-scale".
void read_scale(const toml::node& node, bool scale, Study& st, StudyParser& p) {
  std::string scale_dir;
  int scale_ranks = 0;
  for (const auto& [k, v] : *node.as_table()) {
    const std::string key(k.str());
    if (key == "output_dir")
      scale_dir = p.string_of(v, "scale.output_dir");
    else if (key == "ranks_per_run")
      scale_ranks = ranks_per_run(v, "scale", p);
    else if (!v.is_table())
      p.fail(v, "scale: unknown key '" + key +
                    "' (allowed: output_dir, ranks_per_run, [scale.<config section>])");
  }
  if (!scale) return;
  st.scaled = true;
  p.config_sections(*node.as_table(), "scale", true);
  if (scale_ranks) st.ranks_per_run = scale_ranks;
  st.output_dir = !scale_dir.empty() ? scale_dir : st.output_dir + "-scale";
}

// Swept keys in axis order, each in one axis; exclusions may only name swept keys.
void check_swept_keys(Study& st, const StudyParser& p) {
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
}

}  // namespace

std::string sanitize(const std::string& s, bool underscore) {
  std::string out;
  for (const char c : s) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || (underscore && c == '_');
    out += ok ? c : '-';
  }
  return out;
}

void read_study_file(const std::string& path, bool scale, Study& st, StudyParser& p) {
  const toml::table root = parse_toml(path);
  st.study_file = path;
  st.name = fs::path(path).stem().string();
  std::string output_dir;
  const toml::node* scale_node = nullptr;
  for (const auto& [name, node] : root) {
    const std::string n(name.str());
    if (n == "study") {
      read_study_table(path, node, st, output_dir, p);
    } else if (n == "base" && node.is_string()) {
      set_base_path(path, node, st, p);
    } else if (n == "base" && node.is_table()) {
      p.config_sections(*node.as_table(), "base");
    } else if (n == "base") {
      p.fail(node, "base: expected a config file path or [base.<section>] tables");
    } else if (n == "axis" || n == "zip" || n == "exclude") {
      read_array_tables(n, node, p);
    } else if (n == "scale") {
      if (!node.is_table()) p.fail(node, "scale: expected a table [scale]");
      scale_node = &node;
    } else {
      p.fail(node, "unknown table '" + n +
                       "' (allowed: [study], [base], [[axis]], [[zip]], [[exclude]], [scale])");
    }
  }
  st.output_dir = !output_dir.empty() ? output_dir : "runs/" + st.name;
  if (scale_node) read_scale(*scale_node, scale, st, p);
  st.base_sets = p.base_sets;
  // Axes in file order (axis and zip tables interleaved), the first varying slowest.
  std::stable_sort(p.axes.begin(), p.axes.end(),
                   [](const Axis& a, const Axis& b) { return a.line < b.line; });
  check_swept_keys(st, p);
}

}  // namespace moe::study_detail
