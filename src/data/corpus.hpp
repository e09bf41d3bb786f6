// What training consumes, whatever the source: token splits with their statistics, and the
// batches of each step. Batches depend only on (config, step or index), never on the rank count
// or on the history of the run, so resuming and any number of ranks see the same global batch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace moe {

struct Corpus {
  int vocab_size = 0;
  std::vector<std::int32_t> train, val;
  std::vector<std::int64_t> train_counts;  // [vocab] occurrences of each token in train
  double unigram_entropy = 0;              // nats, of the train split's token frequencies
  double entropy_rate = 0;                 // nats/token of the source; NaN if unknown
  std::string description;                 // one line, for logs and run files
};

// Builds the corpus config.data describes. data.source = "synthetic": a SyntheticSource seeded
// with hash64(train.seed, 0xDA7A) (so the data follows train.seed but differs from the other
// uses of it); train = stream 0 (data.train_tokens), val = stream 1 (data.val_tokens), and
// entropy_rate = the validation stream's exact mean -log P(x_t | x_{t-2}, x_{t-1}).
// data.source = "text" | "kjv": the prepared data of prepare.hpp (prepared on first use, then
// read memory-mapped from the cache without re-tokenizing); train = the first
// data.train_tokens (0 = all) tokens of the training lines, val = the first data.val_tokens of
// the validation lines (the last 5% of the lines). data.source = "tokens": the token files of
// data.path (token_file.hpp; a glob is concatenated in sorted order), val = the last ceil(5%)
// of the tokens, train = the rest; the same caps. Real data: entropy_rate = NaN (unknown).
// Bad input (missing file, bad token file, split shorter than model.seq_len + 1) throws
// UserError with one line.
Corpus load_corpus(const Config& config);

// B = train.batch_size sequences of S = model.seq_len, row-major [B][S]; targets[i] is the token
// after tokens[i].
struct Batch {
  std::vector<std::int32_t> tokens, targets;
};

// Global batch of a training step: B windows of S + 1 tokens whose starts are drawn uniformly
// over all valid starts by Rng(hash64(train.seed, step)).
Batch train_batch(const Corpus& corpus, const Config& config, std::int64_t step);

// Validation batches per evaluation: min(train.eval_batches, windows / B), at least 1, where
// windows = floor((val.size() - 1) / S) non-overlapping windows fit the validation split.
int num_val_batches(const Corpus& corpus, const Config& config);

// Validation batch i: windows i*B .. i*B + B - 1, window w starting at token w*S. A split with
// fewer than B windows repeats them (w is taken modulo the window count) so shapes stay fixed.
Batch val_batch(const Corpus& corpus, const Config& config, int i);

}  // namespace moe
