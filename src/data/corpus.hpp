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
  std::vector<std::int32_t> train, val, test;
  std::vector<std::int64_t> train_counts;  // [vocab] occurrences of each token in train
  double unigram_entropy = 0;              // nats, of the train split's token frequencies
  double entropy_rate = 0;                 // nats/token of the source; NaN if unknown
  std::string description;                 // one line, for logs and run files
  std::string split;                       // how the splits were drawn, one line
};

// Builds the corpus config.data describes. data.source = "synthetic": a SyntheticSource seeded
// with hash64(train.seed, 0xDA7A) (so the data follows train.seed but differs from the other
// uses of it); train = stream 0 (data.train_tokens), val = stream 1 (data.val_tokens), test =
// stream 2 (data.test_tokens), and entropy_rate = the validation stream's exact mean
// -log P(x_t | x_{t-2}, x_{t-1}): the three are draws of the same process.
// data.source = "text" | "kjv": the prepared data of prepare.hpp (prepared on first use, then
// read memory-mapped from the cache without re-tokenizing): chunks of lines held out across the
// whole text (data/splits.hpp), each split capped by prefix to data.train_tokens /
// val_tokens / test_tokens (0 = all). data.source = "tokens": the token files of data.path
// (token_file.hpp; a glob is concatenated in sorted order) split the same way in chunks of
// data.chunk_tokens tokens, with the same caps. Real data: entropy_rate = NaN (unknown).
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

// Evaluation of a held-out split (validation or test) in non-overlapping windows of S =
// model.seq_len tokens: window w covers tokens w*S .. w*S + S (targets shifted by one), and
// W = floor((split.size() - 1) / S) windows fit. train.eval_batches = 0 evaluates all W windows;
// m > 0 the first min(m * B, W). The evaluated tokens are eval_windows(...) * S, exactly.
std::int64_t eval_windows(const std::vector<std::int32_t>& split, const Config& config);

// Batches of B = train.batch_size windows that cover them: ceil(eval_windows / B).
int num_eval_batches(const std::vector<std::int32_t>& split, const Config& config);

// Batch i: windows i*B .. i*B + B - 1. Rows past the evaluated windows (only in the last batch)
// repeat earlier windows (w modulo W) so shapes stay fixed; evaluation gives them weight 0:
// row r of batch i counts iff i*B + r < eval_windows.
Batch eval_batch(const std::vector<std::int32_t>& split, const Config& config, int i);

}  // namespace moe
