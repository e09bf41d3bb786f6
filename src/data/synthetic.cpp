// The synthetic Zipf / second-order Markov source; the process is described in synthetic.hpp.
#include "data/synthetic.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "util/rng.hpp"

namespace moe {

namespace {

constexpr double kProfileRatio = 0.45;  // w_j ∝ 0.45^j: one likely successor, a few rarer ones

// Tags that split one seed into independent uses: the fixed structure, and the token streams.
constexpr std::uint64_t kStructureTag = 0x57AC7E;
constexpr std::uint64_t kStreamTag = 0x57AEA4;

void validate(const SyntheticSpec& spec) {
  if (spec.vocab_size < 2) throw std::invalid_argument("SyntheticSpec: vocab_size must be >= 2");
  if (spec.branching < 1) throw std::invalid_argument("SyntheticSpec: branching must be >= 1");
  if (!(spec.zipf_exponent >= 0 && spec.zipf_exponent <= 4))
    throw std::invalid_argument("SyntheticSpec: zipf_exponent must be in [0, 4]");
  if (!(spec.restart >= 0 && spec.restart <= 1))
    throw std::invalid_argument("SyntheticSpec: restart must be in [0, 1]");
}

// Index of the first cumulative weight above u; the last entry catches rounding at the top.
int draw_from_cdf(const std::vector<double>& cdf, double u) {
  const auto it = std::upper_bound(cdf.begin(), cdf.end(), u);
  return int(std::min<std::ptrdiff_t>(it - cdf.begin(), std::ptrdiff_t(cdf.size()) - 1));
}

}  // namespace

SyntheticSource::SyntheticSource(const SyntheticSpec& spec)
    : spec_(spec), branching_(std::min(spec.branching, spec.vocab_size)) {
  validate(spec);
  const int V = spec.vocab_size, B = branching_;
  Rng rng(hash64(spec.seed, kStructureTag));

  // Fisher-Yates: which token id holds each frequency rank.
  by_rank_.resize(V);
  std::iota(by_rank_.begin(), by_rank_.end(), 0);
  for (int i = V - 1; i > 0; --i) std::swap(by_rank_[i], by_rank_[rng.uniform_int(i + 1)]);

  double total = 0;
  for (int r = 1; r <= V; ++r) total += std::pow(double(r), -spec.zipf_exponent);
  zipf_.assign(V, 0.0);
  zipf_cdf_.resize(V);
  double cumulative = 0;
  for (int r = 0; r < V; ++r) {
    const double p = std::pow(double(r + 1), -spec.zipf_exponent) / total;
    zipf_[by_rank_[r]] = p;
    cumulative += p;
    zipf_cdf_[r] = cumulative;
  }

  // Distinct successors by rejection: B <= V, and the exponent bound keeps redraws rare.
  succ_.resize(std::size_t(V) * B);
  for (int v = 0; v < V; ++v) {
    std::int32_t* succ = &succ_[std::size_t(v) * B];
    for (int j = 0; j < B; ++j) {
      do succ[j] = draw_zipf(rng.uniform());
      while (std::find(succ, succ + j, succ[j]) != succ + j);
    }
  }

  profile_.resize(B);
  for (int j = 0; j < B; ++j) profile_[j] = std::pow(kProfileRatio, j);
  const double profile_total = std::accumulate(profile_.begin(), profile_.end(), 0.0);
  for (double& w : profile_) w /= profile_total;
}

int SyntheticSource::draw_zipf(double u) const {
  return by_rank_[draw_from_cdf(zipf_cdf_, u)];
}

int SyntheticSource::rotation(int a) const {
  return int(hash64(spec_.seed, std::uint64_t(a)) % std::uint64_t(branching_));
}

double SyntheticSource::conditional_prob(int a, int b, int x) const {
  const int B = branching_, r = rotation(a);
  double p = spec_.restart * zipf_[x];
  const std::int32_t* succ = &succ_[std::size_t(b) * B];
  for (int pos = 0; pos < B; ++pos)  // successors are distinct: at most one slot matches
    if (succ[pos] == x) p += (1 - spec_.restart) * profile_[(pos - r + B) % B];
  return p;
}

std::vector<std::int32_t> SyntheticSource::generate(std::int64_t n, std::uint64_t stream,
                                                    double* nll_sum) const {
  const int B = branching_;
  std::vector<double> profile_cdf(B);
  std::partial_sum(profile_.begin(), profile_.end(), profile_cdf.begin());

  std::vector<std::int32_t> tokens(std::size_t(std::max<std::int64_t>(n, 0)));
  Rng rng(hash64(hash64(spec_.seed, kStreamTag), stream));
  double nll = 0;
  for (std::size_t t = 0; t < tokens.size(); ++t) {
    if (t < 2) {
      tokens[t] = draw_zipf(rng.uniform());
      continue;
    }
    const int a = tokens[t - 2], b = tokens[t - 1];
    if (rng.uniform() < spec_.restart) {
      tokens[t] = draw_zipf(rng.uniform());
    } else {
      const int slot = draw_from_cdf(profile_cdf, rng.uniform());
      tokens[t] = succ_[std::size_t(b) * B + (slot + rotation(a)) % B];
    }
    if (nll_sum) nll -= std::log(conditional_prob(a, b, tokens[t]));
  }
  if (nll_sum) *nll_sum += nll;
  return tokens;
}

}  // namespace moe
