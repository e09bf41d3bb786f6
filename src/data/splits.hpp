// In-domain train / validation / test splits of an ordered corpus (text lines or tokens).
//
// The corpus is cut into consecutive chunks (data.chunk_lines lines of a text, data.chunk_tokens
// tokens of token files). The chunks are grouped into blocks of k = data.heldout_every; in every
// block one chunk, drawn with the split seed, goes to validation and another to test, the rest to
// training (a last block shorter than 3 chunks trains). Every split therefore samples the whole
// corpus at a spacing of k chunks, with k-1 : 1 : 1 proportions (5% / 5% at k = 20), and a chunk
// never straddles two splits.
//
// Within each split the chunks are stored in an order shuffled with the split seed, so that a
// prefix of the split (data.train_tokens, data.val_tokens and data.test_tokens cap splits by
// prefix) is still spread over the whole corpus, and a smaller cap is a subset of a larger one.
//
// data.split = "tail" keeps the first version's layout for comparison: validation is the last
// ceil(5%) of the chunks' units, test the ceil(5%) before it, training the rest, in corpus order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moe {

enum class SplitKind : std::uint8_t { Train = 0, Val = 1, Test = 2 };
const char* split_name(SplitKind kind);

struct SplitPlan {
  // [unit index begin, end) of each chunk, consecutive and covering [0, units).
  std::vector<std::int64_t> chunk_begin, chunk_end;
  std::vector<SplitKind> kind;  // per chunk
  // Per split (indexed by SplitKind): its chunks in storage order.
  std::vector<std::int64_t> order[3];
};

// The chunk split of `units` lines or tokens: chunks of `chunk` units, one validation and one
// test chunk in each block of `heldout_every` chunks, drawn with `seed`. Requires units >= 3,
// chunk >= 1, heldout_every >= 3; a corpus too small for 3 chunks of that size is cut into
// exactly 3 chunks so that every split is non-empty.
SplitPlan chunk_split(std::int64_t units, std::int64_t chunk, int heldout_every,
                      std::uint64_t seed);

// The tail split (data.split = "tail"), in the same form; chunk = the whole of each split.
SplitPlan tail_split(std::int64_t units);

// "chunks" or "tail" -> the plan; the config's keys in one call.
SplitPlan make_split(const std::string& mode, std::int64_t units, std::int64_t chunk,
                     int heldout_every, std::uint64_t seed);

// One line per chunk, "chunk<TAB>begin<TAB>end<TAB>split", with a '#' header naming the unit;
// what prepared data stores as splits.tsv and what tests read back.
std::string split_table(const SplitPlan& plan, const std::string& unit);

}  // namespace moe
