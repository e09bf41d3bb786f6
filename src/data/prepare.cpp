// Text corpus preparation and its cache; see prepare.hpp.
#include "data/prepare.hpp"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "data/splits.hpp"
#include "data/text_source.hpp"
#include "data/token_file.hpp"
#include "data/tokenizer.hpp"
#include "io/posix_file.hpp"
#include "util/checked_parse.hpp"
#include "util/rng.hpp"
#include "util/user_error.hpp"

namespace moe {

namespace fs = std::filesystem;

namespace {

// Bump when the prepared files change meaning (including any SentencePiece trainer option in
// tokenizer.cpp), so stale caches are not reused.
constexpr const char* kFormatVersion = "moe-data prepared v4";

std::string hex16(std::uint64_t x) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(x));
  return buf;
}

const char* kFiles[] = {"tokenizer.model", "train.bin",  "val.bin", "test.bin",
                        "splits.tsv",      "counts.tsv", "info.txt"};
const char* kManifest = "manifest.txt";

std::vector<std::string> dir_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const char* f : kFiles) out.push_back((fs::path(dir) / f).string());
  out.push_back((fs::path(dir) / kManifest).string());
  return out;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  if (!out) throw std::runtime_error("cannot write " + path);
}

// Reads info.txt back into `p` (the sizes; the rest is for people). Throws UserError on a
// missing or malformed size.
void read_info(const std::string& dir, PreparedData& p) {
  const std::string path = (fs::path(dir) / "info.txt").string();
  std::istringstream in(read_file_bytes(path));
  std::string line;
  int found = 0;
  while (std::getline(in, line)) {
    const std::size_t eq = line.find(" = ");
    if (eq == std::string::npos) continue;
    const std::string key = line.substr(0, eq), value = line.substr(eq + 3);
    const std::string what = path + " " + key;
    if (key == "train_lines")
      p.train_lines = parse_integer(what, value, 0), ++found;
    else if (key == "val_lines")
      p.val_lines = parse_integer(what, value, 0), ++found;
    else if (key == "test_lines")
      p.test_lines = parse_integer(what, value, 0), ++found;
    else if (key == "test_tokens")
      p.test_tokens = parse_integer(what, value, 0), ++found;
    else if (key == "train_tokens")
      p.train_tokens = parse_integer(what, value, 0), ++found;
    else if (key == "val_tokens")
      p.val_tokens = parse_integer(what, value, 0), ++found;
    else if (key == "num_pieces")
      p.num_pieces = int(parse_integer(what, value, 1, 1 << 30)), ++found;
  }
  if (found != 7) throw UserError(path + " lacks some of its sizes");
}

// The manifest, written last into a prepared directory: "<file> <bytes> <fnv1a-64 hex>" per
// file. A directory whose files do not match it (truncated, overwritten, half copied) is
// damaged.
std::string manifest_line(const std::string& dir, const char* file) {
  const std::string bytes = read_file_bytes((fs::path(dir) / file).string());
  return std::string(file) + " " + std::to_string(bytes.size()) + " " + hex16(fnv1a(bytes)) + "\n";
}

void write_manifest(const std::string& dir) {
  std::string text = std::string("# ") + kFormatVersion + ": file bytes fnv1a64\n";
  for (const char* f : kFiles) text += manifest_line(dir, f);
  write_file((fs::path(dir) / kManifest).string(), text);
}

// "" when the directory matches its manifest and its info.txt reads; else what is wrong.
std::string damage_of(const std::string& dir, PreparedData& p) {
  try {
    const std::string manifest = read_file_bytes((fs::path(dir) / kManifest).string());
    std::string expected = std::string("# ") + kFormatVersion + ": file bytes fnv1a64\n";
    for (const char* f : kFiles) {
      std::error_code ec;
      if (!fs::is_regular_file(fs::path(dir) / f, ec)) return std::string(f) + " is missing";
      const std::string line = manifest_line(dir, f);
      if (manifest.find(line) == std::string::npos)
        return std::string(f) + " does not match " + kManifest;
      expected += line;
    }
    if (manifest != expected) return std::string(kManifest) + " is not this format's";
    read_info(dir, p);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// Tokenizes and writes everything into `tmp` (a fresh directory); fills the sizes of `p`.
void build(const Config& config, const std::vector<std::string>& lines, const std::string& inputs,
           const std::string& tmp, PreparedData& p) {
  const int V = config.model.vocab_size;
  const DataConfig& d = config.data;
  const std::int64_t n = std::int64_t(lines.size());
  const SplitPlan plan = make_split(d.split, n, d.chunk_lines, d.heldout_every, d.split_seed);
  // The tokenizer learns from the training lines only, in corpus order.
  std::vector<std::string> train_lines;
  for (std::size_t c = 0; c < plan.kind.size(); ++c)
    if (plan.kind[c] == SplitKind::Train)
      train_lines.insert(train_lines.end(), lines.begin() + plan.chunk_begin[c],
                         lines.begin() + plan.chunk_end[c]);
  const std::string model = Tokenizer::train(train_lines, d.tokenizer, V);
  const Tokenizer tok(model);
  p.num_pieces = tok.num_pieces();
  std::vector<std::int32_t> split_tokens[3];
  std::int64_t split_lines[3] = {0, 0, 0};
  for (int k = 0; k < 3; ++k)
    for (const std::int64_t c : plan.order[k]) {
      for (std::int64_t i = plan.chunk_begin[c]; i < plan.chunk_end[c]; ++i)
        tok.encode_line(lines[i], split_tokens[k]);
      split_lines[k] += plan.chunk_end[c] - plan.chunk_begin[c];
    }
  const std::vector<std::int32_t>& train = split_tokens[int(SplitKind::Train)];
  p.train_lines = split_lines[0], p.val_lines = split_lines[1], p.test_lines = split_lines[2];
  p.train_tokens = std::int64_t(train.size());
  p.val_tokens = std::int64_t(split_tokens[1].size());
  p.test_tokens = std::int64_t(split_tokens[2].size());

  const fs::path dir(tmp);
  write_file((dir / "tokenizer.model").string(), model);
  for (int k = 0; k < 3; ++k)
    write_token_file((dir / (std::string(split_name(SplitKind(k))) + ".bin")).string(),
                     split_tokens[k], V);
  write_file((dir / "splits.tsv").string(), split_table(plan, "lines"));
  std::vector<std::int64_t> counts(V, 0);
  for (std::int32_t t : train) ++counts[t];
  std::string table =
      "# id\tcount\tpiece (training split of " + std::to_string(train.size()) + " tokens)\n";
  for (int id = 0; id < V; ++id)
    table += std::to_string(id) + "\t" + std::to_string(counts[id]) + "\t" +
             (id < p.num_pieces ? tok.piece(id) : std::string()) + "\n";
  write_file((dir / "counts.tsv").string(), table);
  std::ostringstream info;
  info << "# " << kFormatVersion << "\n"
       << "source = " << d.source << "\n"
       << "tokenizer = sentencepiece " << d.tokenizer << "\n"
       << "vocab_size = " << V << "\n"
       << "num_pieces = " << p.num_pieces << "\n"
       << "split = " << split_description(d) << "\n"
       << "lines = " << n << "\n"
       << "chunks = " << plan.kind.size() << "\n"
       << "train_lines = " << p.train_lines << "\n"
       << "val_lines = " << p.val_lines << "\n"
       << "test_lines = " << p.test_lines << "\n"
       << "train_tokens = " << p.train_tokens << "\n"
       << "val_tokens = " << p.val_tokens << "\n"
       << "test_tokens = " << p.test_tokens << "\n";
  std::istringstream in(inputs);
  std::string line;
  while (std::getline(in, line)) info << "input = " << line << "\n";
  write_file((dir / "info.txt").string(), info.str());
  write_manifest(tmp);  // last: it vouches for every file above
}

}  // namespace

std::string split_description(const DataConfig& d, bool of_tokens) {
  const char* unit = of_tokens ? "tokens" : "lines";
  if (d.split == "tail")
    return std::string("tail (validation the last 5% of the ") + unit + ", test the 5% before)";
  return "chunks of " + std::to_string(of_tokens ? d.chunk_tokens : d.chunk_lines) + " " + unit +
         ", 1 validation + 1 test in every " + std::to_string(d.heldout_every) + ", seed " +
         std::to_string(d.split_seed);
}

PreparedData prepare_text_data(const Config& config) {
  const auto t0 = std::chrono::steady_clock::now();
  const DataConfig& d = config.data;
  if (d.source != "text" && d.source != "kjv")
    throw UserError("data.source = \"" + d.source + "\" has no text to prepare");

  // The key: the inputs' identity without reading text files; the KJV's text itself.
  std::vector<std::string> lines;
  std::string inputs;
  if (d.source == "kjv") {
    lines = kjv_lines();
    std::uint64_t h = kFnvSuiteBasis;
    for (const std::string& l : lines) h = fnv1a(l + "\n", h);
    inputs = "bible -f Gen1:1-Rev22:21 (text hash " + hex16(h) + ")\n";
  } else {
    inputs = files_fingerprint(expand_data_path(d.path));
  }
  const std::string key_text = std::string(kFormatVersion) + "\n" + d.source + "\n" + d.tokenizer +
                               "\n" + std::to_string(config.model.vocab_size) + "\n" +
                               split_description(d) + "\n" + inputs;
  const fs::path root(d.cache_dir.empty() ? "data/cache" : d.cache_dir);
  const std::string name = d.source + "-" + d.tokenizer + std::to_string(config.model.vocab_size) +
                           "-" + hex16(fnv1a(key_text));
  PreparedData p;
  p.dir = (root / name).string();
  p.files = dir_files(p.dir);

  std::error_code ec;
  if (fs::exists(p.dir, ec)) {
    const std::string damage = damage_of(p.dir, p);
    if (damage.empty()) {
      p.reused = true;
    } else {
      // Move it aside in one rename (readers holding its files keep them), then rebuild.
      std::fprintf(stderr, "moe: data cache %s is damaged (%s); rebuilding it\n", p.dir.c_str(),
                   damage.c_str());
      const std::string aside = p.dir + ".damaged." + std::to_string(::getpid());
      if (std::rename(p.dir.c_str(), aside.c_str()) == 0) fs::remove_all(aside, ec);
    }
  }
  if (!p.reused) {
    fs::create_directories(root, ec);
    if (ec) throw UserError("data.cache_dir: cannot create " + root.string() + ": " + ec.message());
    if (d.source == "text") lines = read_text_lines(expand_data_path(d.path));
    if (lines.size() < 3)
      throw UserError("data.path = \"" + d.path + "\" has " + std::to_string(lines.size()) +
                      " non-blank lines (needs at least 3: training, validation and test)");
    const fs::path tmp = root / (name + ".tmp." + std::to_string(::getpid()));
    fs::remove_all(tmp, ec);
    fs::create_directories(tmp, ec);
    if (ec) throw UserError("data.cache_dir: cannot create " + tmp.string() + ": " + ec.message());
    try {
      build(config, lines, inputs, tmp.string(), p);
    } catch (...) {
      fs::remove_all(tmp, ec);
      throw;
    }
    // rename(2) of a directory onto an existing non-empty one fails: someone else finished
    // first, and their copy (same inputs, same result) is used.
    if (std::rename(tmp.c_str(), p.dir.c_str()) != 0) {
      fs::remove_all(tmp, ec);
      const std::string damage = damage_of(p.dir, p);
      if (!damage.empty())
        throw UserError("data.cache_dir: cannot create " + p.dir + " (" + damage + ")");
    }
  }
  p.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return p;
}

}  // namespace moe
