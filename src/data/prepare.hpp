// Prepared data for the text corpora (data.source = "text" or "kjv"): the text's non-blank lines
// are split into training, validation and test chunks of data.chunk_lines lines (data/splits.hpp:
// one validation and one test chunk in every data.heldout_every, drawn with data.split_seed, so
// all three splits sample the whole text; or data.split = "tail"), a SentencePiece tokenizer is
// trained on the training lines only, and every split is tokenized once, its chunks in the
// split's shuffled order (so a capped prefix still spans the text). The results live in
//   <data.cache_dir or data/cache>/<source>-<tokenizer><vocab>-<key>/
//     tokenizer.model  SentencePiece model (spm_encode --model=... reads it)
//     train.bin        training split, token file (token_file.hpp: llm.c format)
//     val.bin          validation split, same format
//     test.bin         test split, same format
//     splits.tsv       the chunks' line ranges, splits and storage order (split_table)
//     counts.tsv       "id<TAB>count<TAB>piece" per vocabulary id: the training split's counts
//     info.txt         "key = value" lines: inputs, sizes, tokenizer, preparation time
//     manifest.txt     written last: "<file> <bytes> <fnv1a-64>" of each file above
// where <key> hashes (source, each input file's path + size + mtime (kjv: the text itself),
// tokenizer, vocab_size, the split keys, format version). The directory is built under a temporary
// name and renamed into place, so readers see all of it or nothing, and concurrent preparers do not
// clash (the first rename wins; the others discard their copy). A directory found in the cache
// is used only when every file matches the manifest and info.txt reads; a damaged one
// (truncated, overwritten, half copied) is reported on stderr, moved aside and rebuilt.
// data.train_tokens, data.val_tokens and data.test_tokens do not enter the key: they cap the
// splits (by prefix) when the corpus is loaded.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace moe {

struct PreparedData {
  std::string dir;      // the cache directory
  bool reused = false;  // true: found complete in the cache, nothing computed
  double seconds = 0;   // wall time of this call
  std::int64_t train_lines = 0, val_lines = 0, test_lines = 0;
  std::int64_t train_tokens = 0, val_tokens = 0, test_tokens = 0;  // before the data.* caps
  int num_pieces = 0;              // tokenizer pieces (<= model.vocab_size)
  std::vector<std::string> files;  // the files of dir
};

// Makes sure the prepared data of config.data (source "text" or "kjv") exists and describes it.
// Throws UserError for bad input (no such file, vocabulary too small, ...).
PreparedData prepare_text_data(const Config& config);

// How data.split cuts a source, in one line (info.txt, the cache key, run files): of text
// lines, or of tokens for token files (`of_tokens`).
std::string split_description(const DataConfig& d, bool of_tokens = false);

}  // namespace moe
