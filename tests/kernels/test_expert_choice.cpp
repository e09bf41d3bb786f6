// Expert-choice selection against a plain host reference (a stable sort of every expert column),
// ties included, and its backward against the reference scatter.
#include <algorithm>
#include <numeric>

#include "expert_choice.hpp"
#include "support.hpp"

using namespace moe;
using namespace moe::test;

namespace {

template <class Real = double>
struct Selection {
  std::vector<int> expert_of, counts;
  std::vector<Real> gate;
};

// Each column sorted by (prob descending, token ascending); the first C are chosen.
template <class Real = double>
Selection<Real> ref_select(const std::vector<Real>& p, int N, int E, int C) {
  Selection<Real> s{std::vector<int>(std::size_t(N) * E, -1), std::vector<int>(E, 0),
                    std::vector<Real>(std::size_t(N) * E, Real(0))};
  for (int e = 0; e < E; ++e) {
    std::vector<int> order(N);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return p[a * E + e] > p[b * E + e]; });
    for (int r = 0; r < std::min(C, N); ++r) {
      const int n = order[r];
      s.expert_of[n * E + e] = e;
      s.gate[n * E + e] = p[n * E + e];
      ++s.counts[e];
    }
  }
  return s;
}

template <class Real = double>
Selection<Real> run_select(const std::vector<Real>& p, int N, int E, int C) {
  auto dp = to_device(p);
  Buffer<int> eo("eo", std::size_t(N) * E), counts("counts", E);
  Buffer<Real> gate("gate", std::size_t(N) * E);
  expert_choice_forward<Real>(dp, eo, gate, counts, N, E, C);
  return {to_host(eo), to_host(counts), to_host(gate)};
}

template <class Real>
void expect_same(const Selection<Real>& a, const Selection<Real>& b) {
  EXPECT_EQ(a.expert_of, b.expert_of);
  EXPECT_EQ(a.counts, b.counts);
  EXPECT_EQ(a.gate, b.gate);
}

}  // namespace

TEST(ExpertChoice, ForwardMatchesReference) {
  const int N = 37, E = 5;
  auto p = random_vector(std::size_t(N) * E, 3, 0.0, 1.0);
  for (int C : {0, 1, 7, 8, 36, 37, 50}) {
    SCOPED_TRACE(C);
    expect_same(run_select(p, N, E, C), ref_select(p, N, E, C));
  }
}

TEST(ExpertChoice, TiesGoToTheLowerTokenIndex) {
  const int N = 24, E = 3, C = 5;
  auto p = random_vector(std::size_t(N) * E, 9, 0.0, 1.0);
  for (auto& v : p) v = std::floor(v * 4) / 4;  // four distinct values: many ties
  const auto got = run_select(p, N, E, C);
  expect_same(got, ref_select(p, N, E, C));
  for (int e = 0; e < E; ++e) EXPECT_EQ(got.counts[e], C);
}

TEST(ExpertChoice, FloatMatchesReference) {
  const int N = 301, E = 6;
  const auto pd = random_vector(std::size_t(N) * E, 21, 0.0, 1.0);
  std::vector<float> p(pd.begin(), pd.end());
  for (int C : {1, 38, 150, 301}) {
    SCOPED_TRACE(C);
    expect_same(run_select(p, N, E, C), ref_select(p, N, E, C));
  }
}

// Columns the radix select finds hardest: all zeros (masked experts), all equal, tiny
// subnormal-range values next to 1, and a large column against the reference.
TEST(ExpertChoice, DegenerateColumnsMatchReference) {
  const int N = 1000, E = 4, C = 130;
  auto p = random_vector(std::size_t(N) * E, 17, 0.0, 1.0);
  for (int n = 0; n < N; ++n) {
    p[n * E + 0] = 0.0;
    p[n * E + 1] = 0.25;
    p[n * E + 2] = n % 3 == 0 ? 1e-310 : (n % 3 == 1 ? 1.0 : 0.0);
  }
  expect_same(run_select(p, N, E, C), ref_select(p, N, E, C));
}

TEST(ExpertChoice, BackwardScattersGateGradientToChosenSlots) {
  const int N = 11, E = 4, C = 3;
  auto p = random_vector(std::size_t(N) * E, 5, 0.0, 1.0);
  auto dg = random_vector(std::size_t(N) * E, 6);
  auto dp0 = random_vector(std::size_t(N) * E, 7);
  const auto ref = ref_select(p, N, E, C);
  auto dp = to_device(p), ddg = to_device(dg), ddp = to_device(dp0);
  Buffer<int> eo("eo", std::size_t(N) * E), counts("counts", E);
  Buffer<double> gate("gate", std::size_t(N) * E);
  expert_choice_forward<double>(dp, eo, gate, counts, N, E, C);
  expert_choice_backward<double>(eo, ddg, ddp, N, E);
  const auto got = to_host(ddp);
  for (std::size_t i = 0; i < got.size(); ++i)
    EXPECT_EQ(got[i], dp0[i] + (ref.expert_of[i] >= 0 ? dg[i] : 0.0)) << i;
}
