// Token-frequency classes from the training split's counts, shared by MaskMoE's masks and by
// the evaluation metrics, so "infrequent" means the same thing in both.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moe {

// Token ids ordered from least to most frequent (count ascending, ties by id ascending).
std::vector<int> tokens_by_rising_count(const std::vector<std::int64_t>& counts);

// The infrequent tokens (MaskMoE's rule): by = "vocab": the floor(ratio * V) least frequent
// token types; by = "mass": the least frequent tokens whose cumulative count stays within
// ratio * (total count). Returns one flag per token.
std::vector<bool> infrequent_tokens(const std::vector<std::int64_t>& counts, double ratio,
                                    const std::string& by);

// Frequency buckets for evaluation: tokens sorted by falling count are cut into `nb` buckets of
// equal training-token mass (bucket 0 the most frequent). Every token is in one bucket; tokens
// never seen in training go to the last.
struct FrequencyBuckets {
  std::vector<int> bucket_of;     // [V]
  std::vector<double> min_count;  // [nb] smallest training count in each bucket
  std::vector<double> types;      // [nb] vocabulary types in each bucket
};
FrequencyBuckets frequency_buckets(const std::vector<std::int64_t>& counts, int nb);

}  // namespace moe
