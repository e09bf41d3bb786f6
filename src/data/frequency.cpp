#include "data/frequency.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace moe {

std::vector<int> tokens_by_rising_count(const std::vector<std::int64_t>& counts) {
  std::vector<int> order(counts.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return counts[a] < counts[b]; });
  return order;
}

std::vector<bool> infrequent_tokens(const std::vector<std::int64_t>& counts, double ratio,
                                    const std::string& by) {
  std::vector<bool> out(counts.size(), false);
  const std::vector<int> order = tokens_by_rising_count(counts);
  if (by == "mass") {
    const double total = double(std::accumulate(counts.begin(), counts.end(), std::int64_t(0)));
    double cum = 0;
    for (int t : order) {
      cum += double(counts[t]);
      if (cum > ratio * total) break;
      out[t] = true;
    }
  } else {
    const auto n = std::size_t(std::floor(ratio * double(counts.size())));
    for (std::size_t i = 0; i < n && i < order.size(); ++i) out[order[i]] = true;
  }
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
