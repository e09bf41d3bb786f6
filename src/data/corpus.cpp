// Corpus construction and batching; see corpus.hpp for the contracts.
#include "data/corpus.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>

#include "data/prepare.hpp"
#include "data/splits.hpp"
#include "data/synthetic.hpp"
#include "data/text_source.hpp"
#include "data/token_file.hpp"
#include "util/checked_parse.hpp"
#include "util/rng.hpp"
#include "util/user_error.hpp"

namespace moe {

namespace {

// Separates the data seed from the other uses of train.seed (initialisation, batches).
constexpr std::uint64_t kDataSeedTag = 0xDA7A;

std::vector<std::int64_t> count_tokens(const std::vector<std::int32_t>& tokens, int vocab) {
  std::vector<std::int64_t> counts(vocab, 0);
  for (std::int32_t t : tokens) ++counts[t];
  return counts;
}

double entropy_of_counts(const std::vector<std::int64_t>& counts) {
  std::int64_t total = 0;
  for (std::int64_t c : counts) total += c;
  double h = 0;
  for (std::int64_t c : counts)
    if (c > 0) h -= double(c) / double(total) * std::log(double(c) / double(total));
  return h;
}

Corpus synthetic_corpus(const Config& config) {
  const SyntheticSource source({config.model.vocab_size, hash64(config.train.seed, kDataSeedTag)});
  Corpus corpus;
  corpus.vocab_size = config.model.vocab_size;
  corpus.train = source.generate(config.data.train_tokens, 0);
  double nll = 0;
  corpus.val = source.generate(config.data.val_tokens, 1, &nll);
  corpus.entropy_rate = nll / double(corpus.val.size() - 2);
  corpus.test = source.generate(config.data.test_tokens, 2);
  corpus.split = "synthetic streams (train 0, validation 1, test 2)";

  char line[200];
  std::snprintf(line, sizeof line,
                "synthetic Zipf/Markov corpus: vocab %d, %lld train + %lld val + %lld test "
                "tokens, entropy rate %.4f nats/token",
                corpus.vocab_size, static_cast<long long>(corpus.train.size()),
                static_cast<long long>(corpus.val.size()),
                static_cast<long long>(corpus.test.size()), corpus.entropy_rate);
  corpus.description = line;
  return corpus;
}

// 1234 -> "1234", 65536 -> "65.5k", 1020000 -> "1.02M".
std::string human_count(std::int64_t n) {
  char buf[32];
  if (n < 10000)
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(n));
  else if (n < 1000000)
    std::snprintf(buf, sizeof buf, "%.1fk", double(n) / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.2fM", double(n) / 1e6);
  return buf;
}

std::int64_t cap(std::int64_t available, std::int64_t limit) {
  return limit > 0 ? std::min(available, limit) : available;
}

// A split must hold at least one training window.
void check_split(const std::vector<std::int32_t>& split, const char* which, const Config& config,
                 const std::string& where) {
  const std::int64_t window = std::int64_t(config.model.seq_len) + 1;
  if (std::int64_t(split.size()) < window)
    throw UserError(where + ": the " + which + " split has " + std::to_string(split.size()) +
                    " tokens, fewer than model.seq_len + 1 = " + std::to_string(window));
}

std::string where_of(const Config& config) {
  return config.data.source == "kjv" ? std::string("data.source = \"kjv\"")
                                     : "data.path = \"" + config.data.path + "\"";
}

// The training split's counts from counts.tsv ("id<TAB>count<TAB>piece"; '#' comments).
std::vector<std::int64_t> read_counts(const std::string& path, int vocab) {
  std::ifstream in(path);
  if (!in) throw UserError("cannot read " + path);
  std::vector<std::int64_t> counts(vocab, 0);
  std::vector<bool> seen(std::size_t(vocab), false);
  std::string line;
  int rows = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    // Every id once, with a whole-number count: a truncated or damaged table is refused
    // rather than read as zeros.
    const std::size_t tab1 = line.find('\t'), tab2 = line.find('\t', tab1 + 1);
    if (tab1 == std::string::npos || tab2 == std::string::npos)
      throw UserError(path + ": malformed line '" + line + "' (expected id<TAB>count<TAB>piece)");
    const auto id = parse_integer(path + " id", line.substr(0, tab1), 0, vocab - 1);
    if (seen[std::size_t(id)]) throw UserError(path + ": id " + std::to_string(id) + " twice");
    seen[std::size_t(id)] = true;
    counts[std::size_t(id)] =
        parse_integer(path + " count", line.substr(tab1 + 1, tab2 - tab1 - 1), 0);
    ++rows;
  }
  if (rows != vocab)
    throw UserError(path + " has " + std::to_string(rows) + " rows, not one per id of the " +
                    std::to_string(vocab) + "-token vocabulary");
  return counts;
}

Corpus text_corpus(const Config& config) {
  const PreparedData p = prepare_text_data(config);
  const int V = config.model.vocab_size;
  const std::filesystem::path dir(p.dir);
  const TokenFile train((dir / "train.bin").string(), V), val((dir / "val.bin").string(), V),
      test((dir / "test.bin").string(), V);
  Corpus corpus;
  corpus.vocab_size = V;
  // Each split's chunks are stored shuffled: a prefix samples the whole text.
  train.append_to(corpus.train, 0, cap(train.size(), config.data.train_tokens));
  val.append_to(corpus.val, 0, cap(val.size(), config.data.val_tokens));
  test.append_to(corpus.test, 0, cap(test.size(), config.data.test_tokens));
  const std::string where = where_of(config);
  check_split(corpus.train, "training", config, where);
  check_split(corpus.val, "validation", config, where);
  check_split(corpus.test, "test", config, where);
  corpus.split = split_description(config.data);
  // The table covers the whole training split; a capped split is counted afresh.
  if (std::int64_t(corpus.train.size()) == train.size())
    corpus.train_counts = read_counts((dir / "counts.tsv").string(), V);
  corpus.entropy_rate = std::numeric_limits<double>::quiet_NaN();
  corpus.description =
      config.data.source + (config.data.source == "text" ? " " + config.data.path : std::string()) +
      ": " + human_count(std::int64_t(corpus.train.size())) + " train tokens, " +
      human_count(std::int64_t(corpus.val.size())) + " val + " +
      human_count(std::int64_t(corpus.test.size())) + " test tokens, sentencepiece " +
      config.data.tokenizer + " " + std::to_string(V) + " (" + std::to_string(p.num_pieces) +
      " pieces), " + p.dir;
  return corpus;
}

Corpus token_corpus(const Config& config) {
  const int V = config.model.vocab_size;
  std::vector<std::unique_ptr<TokenFile>> files;
  std::int64_t total = 0;
  for (const std::string& f : expand_data_path(config.data.path)) {
    files.push_back(std::make_unique<TokenFile>(f, V));
    total += files.back()->size();
  }
  if (total < 3)
    throw UserError("data.path = \"" + config.data.path + "\" holds " + std::to_string(total) +
                    " tokens (needs at least 3: training, validation and test)");
  const DataConfig& d = config.data;
  const SplitPlan plan = make_split(d.split, total, d.chunk_tokens, d.heldout_every, d.split_seed);
  // Global token range [lo, hi) of the concatenated files, appended to `out`.
  auto take = [&](std::vector<std::int32_t>& out, std::int64_t lo, std::int64_t hi) {
    std::int64_t offset = 0;  // global position of the current file's first token
    for (const auto& file : files) {
      const std::int64_t begin = offset, end = offset + file->size();
      const std::int64_t a = std::max(lo, begin), b = std::min(hi, end);
      if (a < b) file->append_to(out, a - begin, b - begin);
      offset = end;
    }
  };
  Corpus corpus;
  corpus.vocab_size = V;
  std::vector<std::int32_t>* splits[3] = {&corpus.train, &corpus.val, &corpus.test};
  const std::int64_t caps[3] = {d.train_tokens, d.val_tokens, d.test_tokens};
  for (int k = 0; k < 3; ++k) {
    for (const std::int64_t c : plan.order[k])
      take(*splits[k], plan.chunk_begin[c], plan.chunk_end[c]);
    if (caps[k] > 0 && std::int64_t(splits[k]->size()) > caps[k])
      splits[k]->resize(std::size_t(caps[k]));
  }
  corpus.split = split_description(d, /*of_tokens=*/true);
  const std::string where = where_of(config);
  check_split(corpus.train, "training", config, where);
  check_split(corpus.val, "validation", config, where);
  check_split(corpus.test, "test", config, where);
  corpus.entropy_rate = std::numeric_limits<double>::quiet_NaN();
  corpus.description = "tokens " + config.data.path + " (" + std::to_string(files.size()) +
                       " files): " + human_count(std::int64_t(corpus.train.size())) +
                       " train tokens, " + human_count(std::int64_t(corpus.val.size())) +
                       " val + " + human_count(std::int64_t(corpus.test.size())) +
                       " test tokens, vocab " + std::to_string(V);
  return corpus;
}

// Copies S + 1 tokens starting at `start` into row `row` of the batch.
void fill_row(Batch& batch, const std::vector<std::int32_t>& split, std::int64_t start, int row,
              int S) {
  for (int i = 0; i < S; ++i) {
    batch.tokens[std::size_t(row) * S + i] = split[std::size_t(start) + i];
    batch.targets[std::size_t(row) * S + i] = split[std::size_t(start) + i + 1];
  }
}

Batch empty_batch(const Config& config) {
  const std::size_t n = std::size_t(config.train.batch_size) * config.model.seq_len;
  return {std::vector<std::int32_t>(n), std::vector<std::int32_t>(n)};
}

}  // namespace

Corpus load_corpus(const Config& config) {
  Corpus corpus;
  const std::string& source = config.data.source;
  if (source == "synthetic")
    corpus = synthetic_corpus(config);
  else if (source == "text" || source == "kjv")
    corpus = text_corpus(config);
  else if (source == "tokens")
    corpus = token_corpus(config);
  else
    throw UserError("data.source = \"" + source + "\" is not implemented");
  if (corpus.train_counts.empty())
    corpus.train_counts = count_tokens(corpus.train, corpus.vocab_size);
  corpus.unigram_entropy = entropy_of_counts(corpus.train_counts);
  return corpus;
}

Batch train_batch(const Corpus& corpus, const Config& config, std::int64_t step) {
  const int S = config.model.seq_len;
  const std::uint64_t starts = corpus.train.size() - S;  // start p needs tokens p .. p + S
  Rng rng(hash64(config.train.seed, std::uint64_t(step)));
  Batch batch = empty_batch(config);
  for (int row = 0; row < config.train.batch_size; ++row)
    fill_row(batch, corpus.train, std::int64_t(rng.uniform_int(starts)), row, S);
  return batch;
}

std::int64_t eval_windows(const std::vector<std::int32_t>& split, const Config& config) {
  const std::int64_t windows = (std::int64_t(split.size()) - 1) / config.model.seq_len;
  const std::int64_t m = config.train.eval_batches;
  return m > 0 ? std::min(windows, m * config.train.batch_size) : windows;
}

int num_eval_batches(const std::vector<std::int32_t>& split, const Config& config) {
  const std::int64_t B = config.train.batch_size;
  return int((eval_windows(split, config) + B - 1) / B);
}

Batch eval_batch(const std::vector<std::int32_t>& split, const Config& config, int i) {
  const int S = config.model.seq_len, B = config.train.batch_size;
  const std::int64_t windows = (std::int64_t(split.size()) - 1) / S;
  Batch batch = empty_batch(config);
  for (int row = 0; row < B; ++row) {
    const std::int64_t w = (std::int64_t(i) * B + row) % windows;
    fill_row(batch, split, w * S, row, S);
  }
  return batch;
}

}  // namespace moe
