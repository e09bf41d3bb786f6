#include "data/frequency.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace moe {

std::vector<int> tokens_by_rising_count(const std::vector<std::int64_t>& counts) {
  std::vector<int> order(counts.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return counts[a] < counts[b]; });
  return order;
}

std::vector<bool> infrequent_tokens(const std::vector<std::int64_t>& counts, double ratio,
                                    const std::string& by) {
  const std::size_t vocab = counts.size();
  std::vector<bool> out(vocab, false);
  if (by != "vocab" && by != "mass")
    throw std::invalid_argument("router.mask_by = \"" + by + "\" (allowed: \"vocab\" or \"mass\")");
  if (ratio <= 0.0 || vocab == 0) return out;
  const std::vector<int> order = tokens_by_rising_count(counts);
  std::size_t take = 0;
  if (by == "vocab") {
    // The slack keeps e.g. 0.29 * 100 = 28.999999999999996 from losing a token to round-off.
    take = std::min(vocab, std::size_t(std::floor(ratio * double(vocab) + 1e-9)));
  } else {
    const double budget =
        ratio * double(std::accumulate(counts.begin(), counts.end(), std::int64_t(0)));
    std::int64_t cum = 0;
    while (take < vocab) {
      const std::int64_t next = cum + counts[std::size_t(order[take])];
      if (double(next) > budget) break;
      cum = next;
      ++take;
    }
  }
  for (std::size_t i = 0; i < take; ++i) out[std::size_t(order[i])] = true;
  return out;
}

FrequencyBuckets frequency_buckets(const std::vector<std::int64_t>& counts, int nb) {
  FrequencyBuckets fb;
  fb.bucket_of.assign(counts.size(), nb - 1);
  fb.min_count.assign(nb, 0.0);
  fb.types.assign(nb, 0.0);
  std::vector<int> order = tokens_by_rising_count(counts);
  std::reverse(order.begin(), order.end());  // most frequent first (ties: higher id first)
  const double total = double(std::accumulate(counts.begin(), counts.end(), std::int64_t(0)));
  double before = 0;  // mass of the tokens ahead of this one
  for (int t : order) {
    int b = total > 0 ? int(std::floor(before / total * nb)) : nb - 1;
    if (counts[t] == 0) b = nb - 1;
    b = std::min(b, nb - 1);
    fb.bucket_of[t] = b;
    fb.types[b] += 1;
    fb.min_count[b] = double(counts[t]);  // falling order: the last one seen is the smallest
    before += double(counts[t]);
  }
  return fb;
}

}  // namespace moe
