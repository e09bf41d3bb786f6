// The synthetic source (determinism, heavy tail, exact conditionals) and the corpus batching.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <vector>

#include "config/config.hpp"
#include "data/corpus.hpp"
#include "data/synthetic.hpp"
#include "util/rng.hpp"

using namespace moe;

namespace {

SyntheticSpec spec(int vocab = 1024, std::uint64_t seed = 3) {
  return {vocab, seed};
}

double unigram_entropy(const std::vector<std::int32_t>& tokens, int vocab) {
  std::vector<double> counts(vocab, 0.0);
  for (auto t : tokens) counts[t] += 1;
  double h = 0;
  for (double c : counts)
    if (c > 0) h -= c / tokens.size() * std::log(c / tokens.size());
  return h;
}

Config small_config() {
  return load_config("",
                     {"model.vocab_size=128", "model.seq_len=16", "train.batch_size=4",
                      "data.train_tokens=20000", "data.val_tokens=1000", "train.eval_batches=100"});
}

}  // namespace

TEST(Synthetic, SameSeedSameTokens) {
  const auto a = SyntheticSource(spec()).generate(5000, 0);
  const auto b = SyntheticSource(spec()).generate(5000, 0);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, SyntheticSource(spec(1024, 4)).generate(5000, 0));
}

TEST(Synthetic, StreamsDiffer) {
  const SyntheticSource source(spec());
  const auto train = source.generate(5000, 0), val = source.generate(5000, 1);
  int equal = 0;
  for (std::size_t i = 0; i < train.size(); ++i) equal += train[i] == val[i];
  EXPECT_LT(equal, 500);
}

TEST(Synthetic, TokensAreInRange) {
  for (int vocab : {2, 3, 5, 1024}) {
    const auto tokens = SyntheticSource(spec(vocab)).generate(2000, 0);
    for (auto t : tokens) ASSERT_TRUE(t >= 0 && t < vocab) << t;
  }
}

TEST(Synthetic, FrequenciesAreHeavyTailed) {
  const int vocab = 1024;
  const auto tokens = SyntheticSource(spec(vocab)).generate(1000000, 0);
  std::vector<std::int64_t> counts(vocab, 0);
  for (auto t : tokens) ++counts[t];
  std::sort(counts.rbegin(), counts.rend());
  const double total = double(tokens.size()), mean = total / vocab;
  const double top = std::accumulate(counts.begin(), counts.begin() + vocab / 10, 0.0);
  EXPECT_GT(top / total, 0.5);
  const auto rare =
      std::count_if(counts.begin(), counts.end(), [&](std::int64_t c) { return c < mean / 10; });
  EXPECT_GE(rare, vocab / 5);
}

TEST(Synthetic, ConditionalProbabilitiesSumToOne) {
  for (int vocab : {2, 7, 1024}) {
    const SyntheticSource source(spec(vocab));
    Rng rng(9);
    for (int trial = 0; trial < 20; ++trial) {
      const int a = int(rng.uniform_int(vocab)), b = int(rng.uniform_int(vocab));
      double sum = 0;
      for (int x = 0; x < vocab; ++x) sum += source.conditional_prob(a, b, x);
      EXPECT_NEAR(sum, 1.0, 1e-12) << "vocab " << vocab;
    }
  }
}

// The empirical frequency of x after a context matches conditional_prob.
TEST(Synthetic, SamplesFollowConditionalProbabilities) {
  const int vocab = 8;
  const SyntheticSource source(spec(vocab));
  const auto tokens = source.generate(400000, 0);
  const int a = tokens[0], b = tokens[1];
  std::vector<double> counts(vocab, 0.0);
  double n = 0;
  for (std::size_t t = 2; t < tokens.size(); ++t)
    if (tokens[t - 2] == a && tokens[t - 1] == b) counts[tokens[t]] += 1, n += 1;
  ASSERT_GT(n, 2000);
  for (int x = 0; x < vocab; ++x)
    EXPECT_NEAR(counts[x] / n, source.conditional_prob(a, b, x), 0.03) << x;
}

TEST(Synthetic, EntropyRateIsWellBelowUnigramEntropy) {
  const int vocab = 1024;
  const std::int64_t n = 200000;
  double nll = 0;
  const auto tokens = SyntheticSource(spec(vocab)).generate(n, 1, &nll);
  const double rate = nll / double(n - 2), unigram = unigram_entropy(tokens, vocab);
  EXPECT_GT(rate, 0.5);
  EXPECT_LT(rate, 0.5 * unigram) << "rate " << rate << " unigram " << unigram;
}

TEST(Corpus, SplitsAndStatistics) {
  const Config cfg = small_config();
  const Corpus corpus = load_corpus(cfg);
  EXPECT_EQ(corpus.vocab_size, 128);
  EXPECT_EQ(corpus.train.size(), 20000u);
  EXPECT_EQ(corpus.val.size(), 1000u);
  ASSERT_EQ(corpus.train_counts.size(), 128u);
  EXPECT_EQ(
      std::accumulate(corpus.train_counts.begin(), corpus.train_counts.end(), std::int64_t(0)),
      std::int64_t(corpus.train.size()));
  EXPECT_GT(corpus.unigram_entropy, corpus.entropy_rate);
  EXPECT_GT(corpus.entropy_rate, 0.0);
  EXPECT_EQ(corpus.description.find('\n'), std::string::npos);
  EXPECT_EQ(load_corpus(cfg).train, corpus.train);
}

TEST(Corpus, TrainBatchDependsOnlyOnSeedAndStep) {
  const Config cfg = small_config();
  const Corpus corpus = load_corpus(cfg);
  const Batch a = train_batch(corpus, cfg, 5), b = train_batch(corpus, cfg, 5);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.targets, b.targets);
  EXPECT_NE(a.tokens, train_batch(corpus, cfg, 6).tokens);
  const std::size_t n = std::size_t(cfg.train.batch_size) * cfg.model.seq_len;
  EXPECT_EQ(a.tokens.size(), n);
  EXPECT_EQ(a.targets.size(), n);
}

TEST(Corpus, TargetsAreTokensShiftedByOne) {
  const Config cfg = small_config();
  const Corpus corpus = load_corpus(cfg);
  const int S = cfg.model.seq_len;
  const Batch batch = train_batch(corpus, cfg, 0);
  for (int row = 0; row < cfg.train.batch_size; ++row) {
    for (int i = 0; i + 1 < S; ++i)
      EXPECT_EQ(batch.targets[row * S + i], batch.tokens[row * S + i + 1]);
    // Each row is a contiguous window of the training split.
    const auto start =
        std::search(corpus.train.begin(), corpus.train.end(), batch.tokens.begin() + row * S,
                    batch.tokens.begin() + (row + 1) * S);
    ASSERT_NE(start, corpus.train.end());
    EXPECT_EQ(*(start + S), batch.targets[row * S + S - 1]);
  }
}

TEST(Corpus, EvalBatchesCoverEveryWindowOnce) {
  const Config cfg = small_config();  // eval_batches = 100: more than the windows
  const Corpus corpus = load_corpus(cfg);
  const int S = cfg.model.seq_len, B = cfg.train.batch_size;
  const std::int64_t windows = 999 / 16;  // 62
  EXPECT_EQ(eval_windows(corpus.val, cfg), windows);
  const int nb = num_eval_batches(corpus.val, cfg);
  EXPECT_EQ(nb, 16);  // ceil(62 / 4): the last batch holds 2 evaluated windows
  for (int i = 0; i < nb; ++i) {
    const Batch batch = eval_batch(corpus.val, cfg, i);
    for (int row = 0; row < B; ++row) {
      const std::size_t start = std::size_t((i * B + row) % windows) * S;
      for (int j = 0; j < S; ++j) {
        ASSERT_EQ(batch.tokens[row * S + j], corpus.val[start + j]);
        ASSERT_EQ(batch.targets[row * S + j], corpus.val[start + j + 1]);
      }
    }
  }
  // The test split is a third stream of the same process, as long as data.test_tokens.
  EXPECT_EQ(corpus.test.size(), std::size_t(cfg.data.test_tokens));
  EXPECT_NE(corpus.test, corpus.val);
}

TEST(Corpus, EvalBatchesCapTheWindows) {
  Config cfg = small_config();
  cfg.train.eval_batches = 3;
  const Corpus corpus = load_corpus(cfg);
  EXPECT_EQ(eval_windows(corpus.val, cfg), 12);
  EXPECT_EQ(num_eval_batches(corpus.val, cfg), 3);
  cfg.train.eval_batches = 0;  // the whole split
  EXPECT_EQ(eval_windows(corpus.val, cfg), 62);
  cfg.train.batch_size = 1000;  // more rows than windows: one batch of repeated windows
  EXPECT_EQ(num_eval_batches(corpus.val, cfg), 1);
  const Batch batch = eval_batch(corpus.val, cfg, 0);
  const int S = cfg.model.seq_len;
  EXPECT_EQ(batch.tokens[62 * S], corpus.val[0]);  // window 62 wraps to window 0
}
