// The embedded synthetic corpus, the suite's default data: seeded, with Zipf-like token
// frequencies (a long tail of rare tokens, the regime MaskMoE is about) and learnable structure
// whose entropy rate is known exactly, so a run's validation loss has a floor to compare with.
//
// The process, for vocabulary size V and B = min(branching, V):
//  - Zipf marginal: a seeded random permutation assigns each token id a rank 1..V (so id is not
//    frequency rank), and zipf(v) = rank(v)^-s / sum_r r^-s with s = zipf_exponent.
//  - Each token v gets B distinct successors succ_v[0..B-1], drawn from zipf, and all tokens
//    share the weight profile w_j = 0.45^j / sum_i 0.45^i (w_0 >= w_1 >= ...).
//  - Second order: after the tokens (a, b), the successors of b are weighted by the profile
//    rotated by r(a) = hash64(seed, a) % B: the next token is succ_b[(j + r(a)) % B] with
//    probability (1 - restart) * w_j, and with probability `restart` it is a fresh zipf draw
//    (which makes the chain ergodic and lets it reach the tail). The first two tokens of a
//    stream are zipf draws.
// Hence P(x_t | x_{t-2} = a, x_{t-1} = b) = (1 - restart) * w_slot(x_t) + restart * zipf(x_t),
// with w_slot = 0 when x_t is not a successor of b; conditional_prob computes it exactly.
#pragma once

#include <cstdint>
#include <vector>

namespace moe {

struct SyntheticSpec {
  int vocab_size;
  std::uint64_t seed;
  int branching = 4;
  double zipf_exponent = 1.1;
  double restart = 0.05;
};

class SyntheticSource {
 public:
  // Throws std::invalid_argument for vocab_size < 2, branching < 1, zipf_exponent outside
  // [0, 4] (steeper laws make distinct successors too slow to draw) or restart outside [0, 1].
  explicit SyntheticSource(const SyntheticSpec& spec);

  // n tokens of stream `stream` (0 = train, 1 = validation; streams are independent). When
  // nll_sum is given, adds the exact -log P(x_t | x_{t-2}, x_{t-1}) over t >= 2 to it.
  std::vector<std::int32_t> generate(std::int64_t n, std::uint64_t stream,
                                     double* nll_sum = nullptr) const;

  // P(next = x | the two previous tokens are a then b).
  double conditional_prob(int a, int b, int x) const;

 private:
  int draw_zipf(double u) const;
  int rotation(int a) const;

  SyntheticSpec spec_;
  int branching_;                      // B = min(spec.branching, vocab_size)
  std::vector<double> zipf_;           // [vocab] by token id
  std::vector<double> zipf_cdf_;       // [vocab] cumulative over ranks 1..V
  std::vector<std::int32_t> by_rank_;  // [vocab] token id of each rank
  std::vector<std::int32_t> succ_;     // [vocab * B] successors of each token
  std::vector<double> profile_;        // [B] slot weights w_j
};

}  // namespace moe
