// Corpus construction and batching; see corpus.hpp for the contracts.
#include "data/corpus.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "data/synthetic.hpp"
#include "util/rng.hpp"

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

  char line[200];
  std::snprintf(line, sizeof line,
                "synthetic Zipf/Markov corpus: vocab %d, %lld train + %lld val tokens, "
                "entropy rate %.4f nats/token",
                corpus.vocab_size, static_cast<long long>(corpus.train.size()),
                static_cast<long long>(corpus.val.size()), corpus.entropy_rate);
  corpus.description = line;
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
  // load_config admits only the sources implemented here.
  if (config.data.source != "synthetic")
    throw ConfigError("data.source = \"" + config.data.source + "\" is not implemented");
  Corpus corpus = synthetic_corpus(config);
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

int num_val_batches(const Corpus& corpus, const Config& config) {
  const std::int64_t windows = (std::int64_t(corpus.val.size()) - 1) / config.model.seq_len;
  const std::int64_t full = windows / config.train.batch_size;
  return int(std::max<std::int64_t>(1, std::min<std::int64_t>(config.train.eval_batches, full)));
}

Batch val_batch(const Corpus& corpus, const Config& config, int i) {
  const int S = config.model.seq_len, B = config.train.batch_size;
  const std::int64_t windows = (std::int64_t(corpus.val.size()) - 1) / S;
  Batch batch = empty_batch(config);
  for (int row = 0; row < B; ++row) {
    const std::int64_t w = (std::int64_t(i) * B + row) % windows;
    fill_row(batch, corpus.val, w * S, row, S);
  }
  return batch;
}

}  // namespace moe
