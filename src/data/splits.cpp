// Train / validation / test chunk splits; see splits.hpp.
#include "data/splits.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "util/rng.hpp"

namespace moe {

namespace {

// Separates the split's draws from the other users of a seed.
constexpr std::uint64_t kSplitSeedTag = 0x5B117;

// Fisher-Yates with the suite's portable generator (std::shuffle is implementation-defined).
void shuffle(std::vector<std::int64_t>& v, Rng& rng) {
  for (std::size_t i = v.size(); i > 1; --i) {
    const std::size_t j = std::size_t(rng.uniform_int(std::uint64_t(i)));
    std::swap(v[i - 1], v[j]);
  }
}

void fill_orders(SplitPlan& plan, Rng* rng) {
  for (std::size_t c = 0; c < plan.kind.size(); ++c)
    plan.order[int(plan.kind[c])].push_back(std::int64_t(c));
  if (rng)
    for (auto& order : plan.order) shuffle(order, *rng);
}

}  // namespace

const char* split_name(SplitKind kind) {
  switch (kind) {
    case SplitKind::Train:
      return "train";
    case SplitKind::Val:
      return "val";
    case SplitKind::Test:
      return "test";
  }
  return "?";
}

SplitPlan chunk_split(std::int64_t units, std::int64_t chunk, int heldout_every,
                      std::uint64_t seed) {
  if (units < 3 || chunk < 1 || heldout_every < 3)
    throw std::invalid_argument("chunk_split: needs units >= 3, chunk >= 1, heldout_every >= 3");
  // At least 3 chunks, so that validation and test are never empty.
  const std::int64_t size = std::min(chunk, units / 3);
  const std::int64_t n = units / size;  // the remainder joins the last chunk
  SplitPlan plan;
  for (std::int64_t c = 0; c < n; ++c) {
    plan.chunk_begin.push_back(c * size);
    plan.chunk_end.push_back(c + 1 == n ? units : (c + 1) * size);
  }
  plan.kind.assign(std::size_t(n), SplitKind::Train);
  Rng rng(hash64(seed, kSplitSeedTag));
  for (std::int64_t b = 0; b < n; b += heldout_every) {
    const std::int64_t len = std::min<std::int64_t>(heldout_every, n - b);
    // The first block always holds out (a corpus of 3 chunks still has all three splits); a
    // short last block trains.
    if (len < 3 && b > 0) break;
    const std::int64_t v = std::int64_t(rng.uniform_int(std::uint64_t(len)));
    std::int64_t t = std::int64_t(rng.uniform_int(std::uint64_t(len - 1)));
    if (t >= v) ++t;
    plan.kind[std::size_t(b + v)] = SplitKind::Val;
    plan.kind[std::size_t(b + t)] = SplitKind::Test;
  }
  fill_orders(plan, &rng);
  return plan;
}

SplitPlan tail_split(std::int64_t units) {
  if (units < 3) throw std::invalid_argument("tail_split: needs at least 3 units");
  const std::int64_t held =
      std::max<std::int64_t>(1, std::int64_t(std::ceil(double(units) * 0.05)));
  const std::int64_t val_begin = units - std::min(held, units / 3);
  const std::int64_t test_begin = val_begin - std::min(held, units / 3);
  SplitPlan plan;
  plan.chunk_begin = {0, test_begin, val_begin};
  plan.chunk_end = {test_begin, val_begin, units};
  plan.kind = {SplitKind::Train, SplitKind::Test, SplitKind::Val};
  fill_orders(plan, nullptr);
  return plan;
}

SplitPlan make_split(const std::string& mode, std::int64_t units, std::int64_t chunk,
                     int heldout_every, std::uint64_t seed) {
  if (mode == "tail") return tail_split(units);
  return chunk_split(units, chunk, heldout_every, seed);
}

std::string split_table(const SplitPlan& plan, const std::string& unit) {
  std::string text = "# chunk\tbegin\tend\tsplit (" + unit +
                     " [begin, end) of the corpus; stored in each split's order below)\n";
  for (std::size_t c = 0; c < plan.kind.size(); ++c)
    text += std::to_string(c) + "\t" + std::to_string(plan.chunk_begin[c]) + "\t" +
            std::to_string(plan.chunk_end[c]) + "\t" + split_name(plan.kind[c]) + "\n";
  for (int k = 0; k < 3; ++k) {
    text += std::string("# order ") + split_name(SplitKind(k)) + ":";
    for (std::int64_t c : plan.order[k]) text += " " + std::to_string(c);
    text += "\n";
  }
  return text;
}

}  // namespace moe
