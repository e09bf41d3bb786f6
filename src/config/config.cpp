// Configuration loading: one schema table (kSchema) drives parsing, --set, validation messages,
// equality and config_to_toml, so a new key is one row there plus its member in config.hpp.
#include "config/config.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>
#include <type_traits>
#include <variant>

#include "util/format_double.hpp"

namespace moe {

namespace {

// The allowed values of the enumerated keys: the one place a new router or data source is added.
const std::vector<std::string> kRouterTypes = {"topk", "hash", "maskmoe", "moec", "expert_choice"};
const std::vector<std::string> kDataSources = {"synthetic", "text", "kjv", "tokens"};
const std::vector<std::string> kTokenizers = {"bpe", "unigram"};
const std::vector<std::string> kDropPolicies = {"position", "probability"};
const std::vector<std::string> kHashTables = {"balanced", "random"};
const std::vector<std::string> kMaskBy = {"vocab", "mass"};
const std::vector<std::string> kClusterLoss = {"intra", "inter"};
const std::vector<std::string> kDropoutModes = {"uniform", "cluster"};

// A pointer to one member of a Config; the alternative held is the key's type.
using FieldRef = std::variant<int*, std::int64_t*, std::uint64_t*, double*, std::string*, bool*>;

constexpr double kInf = std::numeric_limits<double>::infinity();

// Allowed numeric values; a bound is inclusive unless marked open.
struct Range {
  double lo = -kInf, hi = kInf;
  bool lo_open = false, hi_open = false;
};
constexpr Range closed(double lo, double hi) {
  return {lo, hi, false, false};
}
constexpr Range at_least(double lo) {
  return {lo, kInf, false, false};
}
constexpr Range above(double lo) {
  return {lo, kInf, true, false};
}
constexpr Range half_open(double lo, double hi) {
  return {lo, hi, false, true};
}
constexpr Range no_range() {
  return {};
}

struct Key {
  const char* section;
  const char* name;
  FieldRef (*field)(Config&);
  Range range;                              // numeric keys
  const std::vector<std::string>* allowed;  // string keys; nullptr = any string
  const char* help;
};

// Expands to the section, the name and the accessor of Config::section.name, so the three
// cannot disagree.
#define MOE_FIELD(sec, key) #sec, #key, [](Config & c) -> FieldRef { return &c.sec.key; }

const Key kSchema[] = {
    {MOE_FIELD(model, vocab_size), closed(2, 1 << 24), nullptr, "vocabulary size (tokens)"},
    {MOE_FIELD(model, d_model), closed(1, 65536), nullptr, "embedding width"},
    {MOE_FIELD(model, n_layers), closed(1, 1024), nullptr, "transformer blocks"},
    {MOE_FIELD(model, n_heads), closed(1, 1024), nullptr, "attention heads (divides d_model)"},
    {MOE_FIELD(model, d_ff), closed(1, 1 << 20), nullptr, "hidden width of the FFN and experts"},
    {MOE_FIELD(model, seq_len), closed(2, 1 << 20), nullptr, "tokens per training sequence"},
    {MOE_FIELD(model, num_experts), closed(1, 65536), nullptr, "experts per MoE layer (1 = dense)"},
    {MOE_FIELD(model, top_k), closed(1, 65536), nullptr, "experts per token (<= num_experts)"},
    {MOE_FIELD(model, moe_every), closed(1, 1024), nullptr, "every n-th block is an MoE block"},
    {MOE_FIELD(router, type), no_range(), &kRouterTypes, "routing method"},
    {MOE_FIELD(router, capacity_factor), at_least(0), nullptr,
     "expert capacity factor (0 = dropless)"},
    {MOE_FIELD(router, drop_policy), no_range(), &kDropPolicies,
     "which copies an overfull expert drops first (topk, maskmoe, moec)"},
    {MOE_FIELD(router, normalize_gates), no_range(), nullptr,
     "renormalise the k gates of a token to sum to 1"},
    {MOE_FIELD(router, jitter_noise), closed(0, 1), nullptr,
     "multiplicative router-input noise in training (Switch)"},
    {MOE_FIELD(router, aux_loss_weight), at_least(0), nullptr, "load-balance loss weight"},
    {MOE_FIELD(router, z_loss_weight), at_least(0), nullptr, "router z-loss weight"},
    {MOE_FIELD(router, mask_ratio), closed(0, 1), nullptr, "MaskMoE mask ratio"},
    {MOE_FIELD(router, visible_experts), at_least(0), nullptr,
     "MaskMoE experts visible to a frequent token"},
    {MOE_FIELD(router, mask_by), no_range(), &kMaskBy,
     "MaskMoE infrequent cut: share of vocabulary types or of token mass"},
    {MOE_FIELD(router, mask_per_layer), no_range(), nullptr,
     "MaskMoE draws each MoE layer's masks independently"},
    {MOE_FIELD(router, hash_table), no_range(), &kHashTables, "hash routing table"},
    {MOE_FIELD(router, cluster_size), at_least(0), nullptr, "MoEC experts per cluster"},
    {MOE_FIELD(router, cluster_loss_weight), at_least(0), nullptr, "MoEC cluster loss weight"},
    {MOE_FIELD(router, cluster_loss), no_range(), &kClusterLoss,
     "MoEC cluster loss form (intra = public code)"},
    {MOE_FIELD(router, dropout_mode), no_range(), &kDropoutModes,
     "MoEC expert dropout: uniform (public code) or per cluster"},
    {MOE_FIELD(router, expert_dropout), half_open(0, 1), nullptr, "MoEC expert dropout rate"},
    {MOE_FIELD(router, dropout_interval), at_least(1), nullptr, "MoEC steps between dropout draws"},
    {MOE_FIELD(train, steps), at_least(1), nullptr, "optimizer steps"},
    {MOE_FIELD(train, batch_size), at_least(1), nullptr, "sequences per global batch"},
    {MOE_FIELD(train, lr), above(0), nullptr, "peak learning rate"},
    {MOE_FIELD(train, min_lr_ratio), closed(0, 1), nullptr, "cosine floor as a fraction of lr"},
    {MOE_FIELD(train, warmup_steps), at_least(0), nullptr, "linear warmup steps"},
    {MOE_FIELD(train, weight_decay), at_least(0), nullptr, "AdamW weight decay"},
    {MOE_FIELD(train, grad_clip), at_least(0), nullptr, "global gradient-norm clip"},
    {MOE_FIELD(train, seed), at_least(0), nullptr, "seed of data, batches and initialisation"},
    {MOE_FIELD(train, eval_every), at_least(0), nullptr, "steps between evaluations (0 = end)"},
    {MOE_FIELD(train, eval_batches), at_least(1), nullptr, "validation batches per evaluation"},
    {MOE_FIELD(data, source), no_range(), &kDataSources, "where the tokens come from"},
    {MOE_FIELD(data, path), no_range(), nullptr, "input file of file-based sources"},
    {MOE_FIELD(data, tokenizer), no_range(), &kTokenizers,
     "SentencePiece model type for text sources (vocabulary = model.vocab_size)"},
    {MOE_FIELD(data, cache_dir), no_range(), nullptr,
     "where prepared token files and tokenizers are cached (\"\" = data/cache)"},
    {MOE_FIELD(data, train_tokens), at_least(0), nullptr, "training split size (0 = all)"},
    {MOE_FIELD(data, val_tokens), at_least(1), nullptr, "validation split size"},
    {MOE_FIELD(output, path), no_range(), nullptr, "run file (HDF5)"},
    {MOE_FIELD(output, trace_every), at_least(0), nullptr,
     "steps between routing traces (0 = off)"},
    {MOE_FIELD(output, checkpoint_every), at_least(0), nullptr,
     "steps between checkpoints (0 = off)"},
    {MOE_FIELD(parallel, expert_parallel), at_least(0), nullptr,
     "ranks per expert-parallel group, dividing the rank count (0 = all ranks)"},
};

#undef MOE_FIELD

// Read-only access through the schema's accessors, which take a mutable Config.
FieldRef field_of(const Key& key, const Config& config) {
  return key.field(const_cast<Config&>(config));
}

std::string full_name(const Key& key) {
  return std::string(key.section) + "." + key.name;
}

// Sections in schema order, each once.
std::vector<std::string> section_names() {
  std::vector<std::string> names;
  for (const Key& key : kSchema)
    if (names.empty() || names.back() != key.section) names.push_back(key.section);
  return names;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

std::string allowed_sections() {
  return "(allowed: " + join(section_names()) + ")";
}

std::string keys_of(const std::string& section) {
  std::vector<std::string> names;
  for (const Key& key : kSchema)
    if (section == key.section) names.push_back(key.name);
  return join(names);
}

bool is_section(const std::string& name) {
  for (const std::string& section : section_names())
    if (section == name) return true;
  return false;
}

const Key& find_key(const std::string& section, const std::string& name) {
  if (!is_section(section))
    throw UserError("unknown section '" + section + "' " + allowed_sections());
  for (const Key& key : kSchema)
    if (section == key.section && name == key.name) return key;
  throw UserError("unknown key '" + section + "." + name + "' (allowed in [" + section +
                  "]: " + keys_of(section) + ")");
}

// A TOML float literal: like format_number but always float syntax (1 -> 1.0).
std::string toml_float(double v) {
  std::string text = shortest_double(v);
  if (text.find_first_of(".eEn") == std::string::npos) text += ".0";
  return text;
}

// A TOML basic string; control characters are escaped, which also keeps messages on one line.
std::string quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += char(ch);
    } else if (ch < 0x20 || ch == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04X", unsigned(ch));
      out += buf;
    } else {
      out += char(ch);
    }
  }
  return out + "\"";
}

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

std::string read_file(const std::string& path) {
  if (std::filesystem::is_directory(path))
    throw UserError("cannot read config file '" + path + "': it is a directory");
  errno = 0;  // so that a failed open reports its own reason, not a stale one
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw UserError("cannot read config file '" + path + "'" +
                    (errno ? std::string(": ") + std::strerror(errno) : std::string()));
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void apply_file(const std::string& path, Config& config) {
  const std::string text = read_file(path);
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

std::string tokens_rule(const Config& c) {
  return "(allowed: >= " + std::to_string(std::int64_t(c.model.seq_len) + 1) +
         " = model.seq_len + 1)";
}

// Router parameters that make no sense for the chosen router.type.
void check_router_keys(const Config& c) {
  const ModelConfig& m = c.model;
  const RouterConfig& r = c.router;
  const std::string E = std::to_string(m.num_experts);
  if (r.type == "hash" && m.top_k != 1)
    throw UserError("model.top_k = " + std::to_string(m.top_k) +
                    " with router.type = \"hash\" (allowed: 1; a hash table gives one expert)");
  if (r.type == "maskmoe" && (r.visible_experts < 1 || r.visible_experts > m.num_experts))
    throw UserError("router.visible_experts = " + std::to_string(r.visible_experts) +
                    " with router.type = \"maskmoe\" (allowed: 1..num_experts = " + E + ")");
  if (r.type == "maskmoe" && m.top_k > r.visible_experts)
    throw UserError("model.top_k = " + std::to_string(m.top_k) +
                    " exceeds router.visible_experts = " + std::to_string(r.visible_experts) +
                    " (allowed: 1..visible_experts)");
  if (r.type == "moec" && (r.cluster_size < 1 || m.num_experts % r.cluster_size != 0))
    throw UserError("router.cluster_size = " + std::to_string(r.cluster_size) +
                    " does not divide model.num_experts = " + E +
                    " (allowed: a divisor of num_experts, >= 1)");
  if (r.type == "moec" && r.cluster_loss == "intra" && r.cluster_size < 2 &&
      r.cluster_loss_weight > 0)
    throw UserError(
        "router.cluster_size = 1 leaves no within-cluster variance for "
        "router.cluster_loss = \"intra\" (allowed: >= 2, or cluster_loss_weight = 0)");
  if (r.type == "expert_choice" && r.capacity_factor <= 0)
    throw UserError("router.capacity_factor = " + shortest_double(r.capacity_factor) +
                    " with router.type = \"expert_choice\" (allowed: > 0; each expert takes "
                    "tokens*capacity_factor/num_experts tokens)");
}

// Checks that involve more than one key, once every key has its final value.
void check_cross_keys(const Config& c) {
  const ModelConfig& m = c.model;
  if (m.top_k > m.num_experts)
    throw UserError("model.top_k = " + std::to_string(m.top_k) + " exceeds model.num_experts = " +
                    std::to_string(m.num_experts) + " (allowed: 1..num_experts)");
  if (m.d_model % m.n_heads != 0)
    throw UserError("model.n_heads = " + std::to_string(m.n_heads) +
                    " does not divide model.d_model = " + std::to_string(m.d_model) +
                    " (d_model must be a multiple of n_heads)");
  check_router_keys(c);
  const std::int64_t window = std::int64_t(m.seq_len) + 1;
  const DataConfig& d = c.data;
  if (d.train_tokens == 0 && d.source == "synthetic")
    throw UserError("data.train_tokens = 0 (all of the source) is impossible with data.source = " +
                    quote(d.source) + ", which has no end " + tokens_rule(c));
  if (d.path.empty() && (d.source == "text" || d.source == "tokens"))
    throw UserError("data.path is empty with data.source = " + quote(d.source) +
                    " (allowed: a file or a glob(3) pattern of files)");
  if (d.train_tokens != 0 && d.train_tokens < window)
    throw UserError("data.train_tokens = " + std::to_string(d.train_tokens) +
                    " is less than one sequence (allowed: 0 = all, or >= " +
                    std::to_string(window) + " = model.seq_len + 1)");
  if (d.val_tokens < window)
    throw UserError("data.val_tokens = " + std::to_string(d.val_tokens) +
                    " is less than one sequence " + tokens_rule(c));
}

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
  for (const Key& key : kSchema) {
    if (section != key.section) {
      section = key.section;
      out << "\n[" << section << "]\n";
    }
    out << key.name << " = " << toml_value(key, config) << "  # " << key.help << "\n";
  }
  return out.str();
}

bool operator==(const Config& a, const Config& b) {
  for (const Key& key : kSchema) {
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
