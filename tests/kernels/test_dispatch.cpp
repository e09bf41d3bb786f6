// Dispatch: the device plan against a plain stable counting sort on the host (drop by position
// and drop by priority, ties included), the capacity formula by hand, the gather against plain
// loops and its backward against finite differences.
#include <algorithm>
#include <cmath>

#include "dispatch.hpp"
#include "support.hpp"

using namespace moe;
using namespace moe::test;

namespace {
struct RefPlan {
  std::vector<int> requested, counts, offsets, slot_of, assignment_of_slot;
  long dropped = 0;
};

// Stable counting sort by expert; within an expert, copies keep assignment order and only the
// first `capacity` of them (capacity > 0) are kept.
RefPlan ref_plan(const std::vector<int>& expert_of, int E, int capacity) {
  const int A = int(expert_of.size());
  RefPlan p;
  p.requested.assign(E, 0);
  p.counts.assign(E, 0);
  p.offsets.assign(E + 1, 0);
  p.slot_of.assign(A, -1);
  for (int e : expert_of)
    if (e >= 0) ++p.requested[e];
  for (int e = 0; e < E; ++e) {
    p.counts[e] = capacity > 0 ? std::min(p.requested[e], capacity) : p.requested[e];
    p.dropped += p.requested[e] - p.counts[e];
    p.offsets[e + 1] = p.offsets[e] + p.counts[e];
  }
  for (int e = 0; e < E; ++e) {
    int rank = 0;
    for (int a = 0; a < A; ++a) {
      if (expert_of[a] != e) continue;
      if (capacity <= 0 || rank < capacity) {
        p.slot_of[a] = p.offsets[e] + rank;
        p.assignment_of_slot.push_back(a);
      }
      ++rank;
    }
  }
  return p;
}

// Drop by priority: an overfull expert keeps the `capacity` copies of highest priority (ties to
// the lower assignment index); kept copies keep assignment order within the expert. Plain host
// code: sort each expert's copies by (priority desc, index asc), take the first `capacity`.
RefPlan ref_plan_priority(const std::vector<int>& expert_of, const std::vector<double>& pri, int E,
                          int capacity) {
  const int A = int(expert_of.size());
  RefPlan p;
  p.requested.assign(E, 0);
  p.counts.assign(E, 0);
  p.offsets.assign(E + 1, 0);
  p.slot_of.assign(A, -1);
  std::vector<char> keep(A, 0);
  for (int e = 0; e < E; ++e) {
    std::vector<int> mine;
    for (int a = 0; a < A; ++a)
      if (expert_of[a] == e) mine.push_back(a);
    p.requested[e] = int(mine.size());
    std::stable_sort(mine.begin(), mine.end(), [&](int x, int y) { return pri[x] > pri[y]; });
    const int c = capacity > 0 ? std::min(int(mine.size()), capacity) : int(mine.size());
    for (int i = 0; i < c; ++i) keep[mine[i]] = 1;
    p.counts[e] = c;
    p.dropped += p.requested[e] - c;
    p.offsets[e + 1] = p.offsets[e] + c;
  }
  for (int e = 0; e < E; ++e)
    for (int a = 0; a < A; ++a)
      if (expert_of[a] == e && keep[a]) {
        p.slot_of[a] = int(p.assignment_of_slot.size());
        p.assignment_of_slot.push_back(a);
      }
  return p;
}

// Random top-K-like assignments, skewed toward expert 0 so that it overflows a capacity, with
// about one slot in seven unused (-1).
std::vector<int> random_assignments(int N, int K, int E, std::uint64_t seed) {
  auto u = random_vector(std::size_t(N) * K, seed, 0.0, 1.0);
  std::vector<int> ex(u.size());
  for (std::size_t a = 0; a < u.size(); ++a) {
    if (u[a] < 1.0 / 7) {
      ex[a] = -1;
    } else if (u[a] < 0.5) {
      ex[a] = 0;
    } else {
      ex[a] = 1 + int((u[a] - 0.5) * 2 * (E - 1)) % (E - 1);
    }
  }
  return ex;
}

void expect_plan_matches(const DispatchPlan& plan, const RefPlan& ref, int E, int A, int capacity) {
  EXPECT_EQ(to_host(plan.requested, E), ref.requested);
  EXPECT_EQ(to_host(plan.counts, E), ref.counts);
  EXPECT_EQ(to_host(plan.offsets, E + 1), ref.offsets);
  EXPECT_EQ(plan.host_offsets, ref.offsets);
  EXPECT_EQ(plan.total_kept, ref.offsets[E]);
  EXPECT_EQ(plan.dropped, ref.dropped);
  auto slot_of = to_host(plan.slot_of, A);
  EXPECT_EQ(slot_of, ref.slot_of);
  auto aos = to_host(plan.assignment_of_slot, plan.total_kept);
  EXPECT_EQ(aos, ref.assignment_of_slot);
  // Inverse maps: every kept row points back to an assignment that points at it.
  for (int s = 0; s < plan.total_kept; ++s) EXPECT_EQ(slot_of[aos[s]], s);
  int kept = 0;
  for (int a = 0; a < A; ++a)
    if (slot_of[a] >= 0) {
      ++kept;
      EXPECT_EQ(aos[slot_of[a]], a);
    }
  EXPECT_EQ(kept, plan.total_kept);
  // Counts and offsets agree, and no expert exceeds the capacity.
  for (int e = 0; e < E; ++e) {
    EXPECT_EQ(plan.host_offsets[e + 1] - plan.host_offsets[e], ref.counts[e]);
    if (capacity > 0) {
      EXPECT_LE(ref.counts[e], capacity);
    }
  }
}
}  // namespace

TEST(Dispatch, ExpertCapacityByHand) {
  EXPECT_EQ(expert_capacity(10, 2, 4, 1.0), 5);   // 10*2/4 = 5
  EXPECT_EQ(expert_capacity(10, 2, 4, 1.25), 7);  // 6.25 -> 7
  EXPECT_EQ(expert_capacity(10, 2, 4, 0.0), 0);   // dropless
  EXPECT_EQ(expert_capacity(7, 1, 4, 1.0), 2);    // 1.75 -> 2
  EXPECT_EQ(expert_capacity(4096, 2, 8, 2.0), 2048);
}

TEST(Dispatch, PlanMatchesReferenceDroplessAndWithCapacity) {
  const int N = 41, K = 2, E = 5, A = N * K;
  auto ex = random_assignments(N, K, E, 61);
  auto dex = to_device(ex);
  const int cap1 = expert_capacity(N, K, E, 1.0);
  for (int capacity : {0, cap1, 3}) {
    SCOPED_TRACE(capacity);
    DispatchPlan plan;
    dispatch_plan(dex, A, E, capacity, plan);
    auto ref = ref_plan(ex, E, capacity);
    expect_plan_matches(plan, ref, E, A, capacity);
    if (capacity == 0) {
      EXPECT_EQ(plan.dropped, 0);
    } else {
      EXPECT_GT(plan.dropped, 0);  // expert 0 is overfull by construction
    }
    // Drop by position: of each expert's copies in token order, exactly the first `capacity`.
    auto slot_of = to_host(plan.slot_of, A);
    for (int e = 0; e < E; ++e) {
      int rank = 0;
      for (int a = 0; a < A; ++a) {
        if (ex[a] != e) continue;
        EXPECT_EQ(slot_of[a] >= 0, capacity <= 0 || rank < capacity) << "e=" << e << " a=" << a;
        ++rank;
      }
    }
  }
}

TEST(Dispatch, PlanReusesBuffersWhenSizesShrink) {
  const int E = 4, K = 3;
  DispatchPlan plan;
  auto big = random_assignments(30, K, E, 62);
  dispatch_plan(to_device(big), Index(big.size()), E, 0, plan);
  const int* slot_ptr = plan.slot_of.data();
  auto small = random_assignments(9, K, E, 63);
  dispatch_plan(to_device(small), Index(small.size()), E, 4, plan);
  EXPECT_EQ(plan.slot_of.data(), slot_ptr);
  expect_plan_matches(plan, ref_plan(small, E, 4), E, int(small.size()), 4);
  // Expert choice style: K = E slots per token, most of them unused.
  std::vector<int> ec(std::size_t(5) * E, -1);
  ec[0 * E + 2] = 2;
  ec[3 * E + 2] = 2;
  ec[1 * E + 0] = 0;
  ec[4 * E + 3] = 3;
  dispatch_plan(to_device(ec), Index(ec.size()), E, 0, plan);
  expect_plan_matches(plan, ref_plan(ec, E, 0), E, int(ec.size()), 0);
  EXPECT_EQ(plan.host_offsets, (std::vector<int>{0, 1, 1, 3, 4}));
}

TEST(Dispatch, ForwardMatchesReference) {
  const int N = 23, K = 2, E = 4, C = 6, A = N * K;
  auto ex = random_assignments(N, K, E, 64);
  auto x = random_vector(N * C, 65);
  DispatchPlan plan;
  dispatch_plan(to_device(ex), A, E, expert_capacity(N, K, E, 1.0), plan);
  Buffer<double> xg("xg", std::max(1, plan.total_kept * C));
  dispatch_forward<double>(to_device(x), plan, xg, K, C);
  auto ref = ref_plan(ex, E, expert_capacity(N, K, E, 1.0));
  std::vector<double> want;
  for (int a : ref.assignment_of_slot)
    for (int c = 0; c < C; ++c) want.push_back(x[(a / K) * C + c]);
  EXPECT_EQ(to_host(xg, plan.total_kept * C), want);  // a gather: bit-exact
}

// dispatch_plan_gather is dispatch_plan followed by dispatch_forward, in two launches: the same
// plan and the same rows, for token-order and slot-major cuts, with and without a rank offset.
TEST(Dispatch, PlanGatherMatchesPlanThenForward) {
  const int N = 31, K = 2, E = 5, C = 7, A = N * K;
  auto ex = random_assignments(N, K, E, 73);
  auto x = random_vector(N * C, 74);
  // Rank offsets as a data-parallel caller makes them: slot 0 of e starts after the copies of
  // e on lower ranks; slot 1 after every rank's slot-0 copies (this batch's included).
  const std::vector<int> before = {3, 0, 5, 1, 2}, later = {0, 4, 1, 0, 6};
  std::vector<int> offset(before);
  for (int e = 0; e < E; ++e) {
    int mine = 0;
    for (int n = 0; n < N; ++n) mine += ex[n * K] == e ? 1 : 0;
    offset.push_back(before[e] + mine + later[e]);
  }
  for (int slots : {1, K})
    for (int capacity : {0, 5, 9})
      for (bool shifted : {false, true}) {
        // A Buffer owns its memory; the View1 passed on does not.
        const Buffer<int> off_buf =
            to_device(std::vector<int>(offset.begin(), offset.begin() + slots * E));
        const View1<const int> off = shifted ? View1<const int>(off_buf) : View1<const int>();
        DispatchPlan want, got;
        dispatch_plan(to_device(ex), A, E, capacity, want, off, slots);
        Buffer<double> xg_want("xg", std::max(1, want.total_kept * C));
        dispatch_forward<double>(to_device(x), want, xg_want, K, C);
        Buffer<double> xg("xg", std::size_t(A) * C);
        dispatch_plan_gather<double>(to_device(ex), A, E, capacity, got, off, slots, to_device(x),
                                     xg, K, C);
        SCOPED_TRACE("slots " + std::to_string(slots) + " capacity " + std::to_string(capacity) +
                     (shifted ? " shifted" : ""));
        EXPECT_EQ(got.host_offsets, want.host_offsets);
        EXPECT_EQ(got.dropped, want.dropped);
        EXPECT_EQ(to_host(got.slot_of, A), to_host(want.slot_of, A));
        EXPECT_EQ(to_host(got.assignment_of_slot, A), to_host(want.assignment_of_slot, A));
        EXPECT_EQ(to_host(xg, Index(want.total_kept) * C),
                  to_host(xg_want, Index(want.total_kept) * C));
      }
}

TEST(Dispatch, BackwardMatchesFiniteDifferences) {
  const int N = 13, K = 3, E = 4, C = 5, A = N * K;
  auto ex = random_assignments(N, K, E, 66);
  auto x = random_vector(N * C, 67);
  DispatchPlan plan;
  dispatch_plan(to_device(ex), A, E, 4, plan);  // some tokens lose copies
  ASSERT_GT(plan.dropped, 0);
  const int M = plan.total_kept;
  auto r = random_vector(std::size_t(M) * C, 68);  // loss = sum(xg * r)
  auto forward = [&]() {
    Buffer<double> xg("xg", M * C);
    dispatch_forward<double>(to_device(x), plan, xg, K, C);
    return dot(to_host(xg), r);
  };
  // dx is written, not accumulated: what was in it before must not survive (tokens that lost
  // every copy get exactly 0).
  auto g = to_device(random_vector(N * C, 69));
  dispatch_backward<double>(to_device(r), plan, g, N, K, C);
  EXPECT_LT(rel_error(to_host(g), numeric_gradient(x, forward)), 1e-6);
}

TEST(Dispatch, PriorityPlanMatchesReferenceWithTies) {
  const int N = 47, K = 2, E = 5, A = N * K;
  auto ex = random_assignments(N, K, E, 71);
  // Priorities on a coarse grid (many exact ties), plus a few unused slots' junk values.
  auto u = random_vector(A, 72, 0.0, 1.0);
  std::vector<double> pri(A);
  for (int a = 0; a < A; ++a) pri[a] = std::floor(u[a] * 6) / 6;
  auto dex = to_device(ex);
  auto dpri = to_device(pri);
  const int cap1 = expert_capacity(N, K, E, 1.0);
  for (int capacity : {0, cap1, 3, 1}) {
    SCOPED_TRACE(capacity);
    DispatchPlan plan;
    dispatch_plan<double>(dex, dpri, A, E, capacity, plan);
    auto ref = ref_plan_priority(ex, pri, E, capacity);
    expect_plan_matches(plan, ref, E, A, capacity);
    if (capacity > 0) {
      EXPECT_GT(plan.dropped, 0);
    }
    // Independent statement of the property: a kept copy is never beaten by a dropped copy of
    // the same expert (higher priority, or equal priority and lower index).
    auto slot_of = to_host(plan.slot_of, A);
    for (int a = 0; a < A; ++a)
      for (int b = 0; b < A; ++b) {
        if (ex[a] < 0 || ex[a] != ex[b] || slot_of[a] < 0 || slot_of[b] >= 0) continue;
        const bool b_beats_a = pri[b] > pri[a] || (pri[b] == pri[a] && b < a);
        EXPECT_FALSE(b_beats_a) << "kept " << a << " dropped " << b;
      }
  }
}

TEST(Dispatch, PriorityPlanAllTiesEqualsPositionAndEmptyPriorityFallsBack) {
  const int N = 31, K = 3, E = 4, A = N * K;
  auto ex = random_assignments(N, K, E, 73);
  auto dex = to_device(ex);
  const std::vector<double> same(A, 0.25);
  for (int capacity : {0, 5, 2}) {
    SCOPED_TRACE(capacity);
    DispatchPlan a, b, c;
    dispatch_plan<double>(dex, to_device(same), A, E, capacity, a);
    dispatch_plan(dex, A, E, capacity, b);
    dispatch_plan<double>(dex, View1<const double>(), A, E, capacity, c);
    auto ref = ref_plan(ex, E, capacity);
    expect_plan_matches(a, ref, E, A, capacity);  // all ties: lowest indices = first in order
    expect_plan_matches(b, ref, E, A, capacity);
    expect_plan_matches(c, ref, E, A, capacity);
  }
}

TEST(Dispatch, PriorityPlanByHandAndBufferReuse) {
  // E = 2, capacity 2. Expert 0 gets a = 0,2,3,5 with priorities .1 .9 .5 .9: keeps 2 and 5
  // (the two .9s), in assignment order 2 then 5. Expert 1 gets a = 1,4 (not overfull).
  const std::vector<int> ex = {0, 1, 0, 0, 1, 0, -1};
  const std::vector<float> pri = {0.1f, 0.3f, 0.9f, 0.5f, 0.2f, 0.9f, 7.0f};
  DispatchPlan plan;
  auto big = random_assignments(40, 2, 2, 74);
  dispatch_plan(to_device(big), Index(big.size()), 2, 0, plan);
  const int* slot_ptr = plan.slot_of.data();
  dispatch_plan<float>(to_device(ex), to_device(pri), Index(ex.size()), 2, 2, plan);
  EXPECT_EQ(plan.slot_of.data(), slot_ptr);
  EXPECT_EQ(to_host(plan.slot_of, 7), (std::vector<int>{-1, 2, 0, -1, 3, 1, -1}));
  EXPECT_EQ(to_host(plan.assignment_of_slot, 7), (std::vector<int>{2, 5, 1, 4, -1, -1, -1}));
  EXPECT_EQ(plan.host_offsets, (std::vector<int>{0, 2, 4}));
  EXPECT_EQ(plan.dropped, 2);
  // A NaN priority ranks below every number.
  const std::vector<float> nan_pri = {std::nanf(""), 0.3f, 0.0f, 0.5f, 0.2f, -1.0f, 7.0f};
  dispatch_plan<float>(to_device(ex), to_device(nan_pri), Index(ex.size()), 2, 3, plan);
  EXPECT_EQ(to_host(plan.slot_of, 7), (std::vector<int>{-1, 3, 0, 1, 4, 2, -1}));
}

namespace {
// GShard's order for a capacity cut by position: slot 0 of every token (in token order), then
// slot 1, ... The copies of expert e that a cut at `capacity` keeps, as flags over a = n*K + j.
std::vector<char> slot_major_kept(const std::vector<int>& ex, int K, int E, int capacity) {
  const int N = int(ex.size()) / K;
  std::vector<char> keep(ex.size(), 0);
  for (int e = 0; e < E; ++e) {
    int rank = 0;
    for (int j = 0; j < K; ++j)
      for (int n = 0; n < N; ++n)
        if (ex[n * K + j] == e) keep[n * K + j] = capacity <= 0 || rank++ < capacity;
  }
  return keep;
}
}  // namespace

TEST(Dispatch, SlotMajorPositionKeepsEveryFirstChoiceBeforeAnySecond) {
  const int N = 41, K = 2, E = 5, A = N * K;
  auto ex = random_assignments(N, K, E, 71);
  for (int capacity : {0, expert_capacity(N, K, E, 1.0), 3}) {
    SCOPED_TRACE(capacity);
    DispatchPlan plan;
    dispatch_plan(to_device(ex), A, E, capacity, plan, {}, K);
    const auto want = slot_major_kept(ex, K, E, capacity);
    const auto slot_of = to_host(plan.slot_of, A);
    long kept = 0;
    for (int a = 0; a < A; ++a) {
      EXPECT_EQ(slot_of[a] >= 0, bool(want[a])) << "a=" << a;
      kept += want[a];
    }
    EXPECT_EQ(plan.total_kept, kept);
    if (capacity == 3) {
      // It differs from the token-order cut, which lets early tokens' second choices in first.
      DispatchPlan token_order;
      dispatch_plan(to_device(ex), A, E, capacity, token_order);
      EXPECT_NE(to_host(token_order.slot_of, A), slot_of);
    }
    // Rows: expert by expert, each expert's kept copies in slot-major order.
    const auto rows = to_host(plan.assignment_of_slot, plan.total_kept);
    const auto off = to_host(plan.offsets, E + 1);
    for (int e = 0; e < E; ++e) {
      int prev_key = -1;
      for (int s = off[e]; s < off[e + 1]; ++s) {
        const int a = rows[s];
        ASSERT_EQ(ex[a], e);
        EXPECT_EQ(slot_of[a], s);
        const int key = (a % K) * N + a / K;
        EXPECT_GT(key, prev_key);
        prev_key = key;
      }
    }
  }
}

// What MoeLayer does with data parallelism: each rank cuts its own tokens with rank_offset
// [j*E + e] = (copies of e in slots < j on every rank) + (copies of e in slot j on earlier
// ranks). The union of the ranks' kept copies must equal the cut of the whole batch.
TEST(Dispatch, SlotMajorPositionSplitOverRanksEqualsTheWholeBatch) {
  const int K = 2, E = 4, R = 3;
  const std::vector<int> tokens_of_rank = {11, 7, 14};
  const int N = 11 + 7 + 14;
  auto ex = random_assignments(N, K, E, 72);
  for (int capacity : {expert_capacity(N, K, E, 1.0), 5, 12}) {
    SCOPED_TRACE(capacity);
    const auto want = slot_major_kept(ex, K, E, capacity);
    std::vector<std::vector<long>> counts(R, std::vector<long>(K * E, 0));
    for (int r = 0, first = 0; r < R; first += tokens_of_rank[r], ++r)
      for (int n = first; n < first + tokens_of_rank[r]; ++n)
        for (int j = 0; j < K; ++j)
          if (ex[n * K + j] >= 0) ++counts[r][j * E + ex[n * K + j]];
    std::vector<char> got(ex.size(), 0);
    for (int r = 0, first = 0; r < R; first += tokens_of_rank[r], ++r) {
      std::vector<int> offset(K * E, 0);
      for (int e = 0; e < E; ++e) {
        long lower = 0;
        for (int j = 0; j < K; ++j) {
          long before = 0, total = 0;
          for (int q = 0; q < R; ++q) (q < r ? before : total) += counts[q][j * E + e];
          total += before;
          offset[j * E + e] = int(lower + before);
          lower += total;
        }
      }
      const std::vector<int> mine(ex.begin() + first * K,
                                  ex.begin() + (first + tokens_of_rank[r]) * K);
      DispatchPlan plan;
      const Index A = Index(mine.size());
      dispatch_plan(to_device(mine), A, E, capacity, plan, to_device(offset), K);
      const auto slot_of = to_host(plan.slot_of, A);
      for (Index a = 0; a < A; ++a) got[first * K + a] = slot_of[a] >= 0;
      // counts[] (kept per expert) agrees with the kept flags.
      const auto kept = to_host(plan.counts, E);
      for (int e = 0; e < E; ++e) {
        int n_e = 0;
        for (Index a = 0; a < A; ++a) n_e += mine[a] == e && slot_of[a] >= 0;
        EXPECT_EQ(kept[e], n_e) << "rank " << r << " expert " << e;
      }
    }
    EXPECT_EQ(got, want);
  }
}
