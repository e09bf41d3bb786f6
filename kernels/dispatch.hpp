// Dispatch: groups the routed token copies by expert so each expert's MLP is one dense gemm
// over a contiguous block of rows. The plan is a stable counting sort of the assignments
// (a = token * K + slot) by expert, computed on the device. An optional capacity limits the
// copies each expert keeps, by one of two drop policies:
//  - by position (dispatch_plan without a priority): an overfull expert keeps its first
//    `capacity` copies in token order, or with slots = K > 1 (GShard) in slot-major order:
//    every token's first choice before any token's second choice, each slot in token order;
//  - by priority (dispatch_plan with priority[A], the gates): an overfull expert keeps the
//    `capacity` copies of highest priority, ties to the lower assignment index.
// The kept copies of an expert occupy its rows in the order they were ranked in (assignment
// order, or slot-major), so only which copies are kept differs. Every step is integer arithmetic, a
// comparison, or a Kokkos scan, so the plan is identical run to run.
#pragma once

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "common.hpp"

namespace moe {

// Copies each expert may keep: ceil(tokens * k / E * capacity_factor); capacity_factor == 0
// means dropless and returns 0 ("no limit"). Double precision so the ceil is exact for the
// usual factors (1.0, 1.25, 2.0).
inline int expert_capacity(Index tokens, int k, int E, double capacity_factor) {
  MOE_CHECK(capacity_factor >= 0.0, "capacity_factor must be >= 0");
  MOE_CHECK(E > 0, "expert_capacity needs E > 0");
  if (capacity_factor == 0.0) return 0;
  return int(std::ceil(double(tokens) * double(k) / double(E) * capacity_factor));
}

struct DispatchPlan {
  Buffer<int> requested;           // [E] copies routed to each expert before the capacity cut
  Buffer<int> counts;              // [E] copies kept per expert
  Buffer<int> offsets;             // [E+1] exclusive scan of counts: expert e's rows
                                   //   are [offsets[e], offsets[e+1])
  Buffer<int> slot_of;             // [A] row of assignment a in the grouped buffer, or -1
                                   //   (no expert, or dropped)
  Buffer<int> assignment_of_slot;  // [A] for each row s < total_kept, the assignment index a
                                   //   (token = a / K); -1 for rows >= total_kept
  Buffer<int> scratch;             // [A] drop by priority only: the unconstrained grouping
  Buffer<int> slot_requested;      // [K*E] slot-major position drops: copies per (slot, expert)
  std::vector<int> host_offsets;   // copy of offsets on the host (E+1), for the per-expert gemms
  int total_kept = 0;
  Index dropped = 0;  // copies cut by the capacity
};

namespace dispatch_detail {
// Grows a plan buffer when it is too small; never shrinks, so steady-state steps allocate nothing.
inline void ensure_size(Buffer<int>& b, Index n, const char* label) {
  if (Index(b.extent(0)) < n)
    b = Buffer<int>(Kokkos::view_alloc(Kokkos::WithoutInitializing, std::string(label)), n);
}

// Checks the shape and sizes the buffers every plan uses.
inline void size_plan(DispatchPlan& plan, Index A, int E, int slots) {
  MOE_CHECK(E > 0, "dispatch_plan needs E > 0");
  MOE_CHECK(slots >= 1 && A % slots == 0, "dispatch_plan: A must be a multiple of the slots");
  ensure_size(plan.requested, E, "moe::dispatch_requested");
  ensure_size(plan.counts, E, "moe::dispatch_counts");
  ensure_size(plan.offsets, Index(E) + 2, "moe::dispatch_offsets");
  ensure_size(plan.slot_of, A, "moe::dispatch_slot_of");
  ensure_size(plan.assignment_of_slot, A, "moe::dispatch_assignment_of_slot");
  ensure_size(plan.slot_requested, Index(slots) * E, "moe::dispatch_slot_requested");
}

// Brings offsets[0..E] and the dropped count (offsets[E+1]) to the host (one copy) and records
// the totals.
inline void read_offsets(DispatchPlan& plan, int E) {
  plan.host_offsets.resize(std::size_t(E) + 2);
  Kokkos::deep_copy(Kokkos::View<int*, HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>(
                        plan.host_offsets.data(), std::size_t(E) + 2),
                    View1<const int>(plan.offsets.data(), std::size_t(E) + 2));
  plan.dropped = plan.host_offsets[std::size_t(E) + 1];
  plan.host_offsets.pop_back();
  plan.total_kept = plan.host_offsets[std::size_t(E)];
}

// out[0..E] = exclusive scan of in[0..E), out[E] = total.
inline void exclusive_scan_experts(const Buffer<int>& in, const Buffer<int>& out, int E,
                                   const char* label) {
  Kokkos::parallel_scan(
      label, range(Index(E) + 1), KOKKOS_LAMBDA(const Index e, int& update, const bool final) {
        if (final) out(e) = update;
        if (e < E) update += in(e);
      });
}

// Steps shared by both policies. Sizes the buffers, then
//  1. requested[e] = copies routed to e (integer atomics: the counts do not depend on order);
//  2. slot_of[a] = rank of copy a among its expert's copies (-1 for an unused slot), and
//     offsets = exclusive scan of requested, i.e. the unconstrained grouping puts copy a at row
//     offsets[expert_of[a]] + slot_of[a]. The rank comes from one scan over the expert-major
//     indicator i = e * A + a': the running prefix at a copy minus the number of copies of lower
//     experts is its rank. a' walks the copies in ranking order: a' = a (assignment order), or
//     with slots = K > 1 slot-major, a = (a' mod N) K + a' / N with N = A / K;
//  3. counts[e] = copies kept: min(requested[e], capacity - rank_offset[e]) clamped at 0
//     (capacity <= 0: requested[e]); offsets[E+1] = the number of dropped copies (read back
//     with the offsets, one copy). rank_offset[e]
//     (empty: 0) is the number of copies of e that come before this batch in the global order
//     (the data-parallel ranks before this one), so the capacity cut is by position in the
//     global batch. With slots = K > 1 it has K*E entries: [j*E + e] is the global rank of this
//     batch's first slot-j copy of e (global order: slot 0 of every rank, then slot 1, ...),
//     and counts[e] sums the kept prefix of each slot.
inline void requested_and_rank(View1<const int> expert_of, Index A, int E, int capacity,
                               DispatchPlan& plan, View1<const int> rank_offset = {},
                               int slots = 1) {
  size_plan(plan, A, E, slots);
  const Buffer<int> requested = plan.requested, counts = plan.counts, offsets = plan.offsets;
  const Buffer<int> slot_of = plan.slot_of, slot_req = plan.slot_requested;
  const Index N = A / slots;

  Kokkos::parallel_for(
      "moe::dispatch_zero", range(Index(slots) * E), KOKKOS_LAMBDA(const Index i) {
        slot_req(i) = 0;
        if (i < E) requested(i) = 0;
      });
  Kokkos::parallel_for(
      "moe::dispatch_requested", range(A), KOKKOS_LAMBDA(const Index a) {
        const int e = expert_of(a);
        if (e >= 0 && e < E) {
          Kokkos::atomic_add(&requested(e), 1);
          Kokkos::atomic_add(&slot_req(Index(a % slots) * E + e), 1);
        }
      });

  exclusive_scan_experts(requested, offsets, E, "moe::dispatch_requested_scan");
  Kokkos::parallel_for(
      "moe::dispatch_clear", range(A), KOKKOS_LAMBDA(const Index a) { slot_of(a) = -1; });
  Kokkos::parallel_scan(
      "moe::dispatch_rank", range(Index(E) * A),
      KOKKOS_LAMBDA(const Index i, Index& update, const bool final) {
        const Index e = i / A, ap = i - e * A;
        const Index a = slots > 1 ? (ap % N) * slots + ap / N : ap;
        if (expert_of(a) == int(e)) {
          if (final) slot_of(a) = int(update - offsets(e));
          update += 1;
        }
      });

  const bool shifted = rank_offset.extent(0) > 0;
  Kokkos::parallel_for(
      "moe::dispatch_counts", range(E), KOKKOS_LAMBDA(const Index e) {
        if (capacity <= 0) {
          counts(e) = requested(e);
          return;
        }
        int kept = 0, before = 0;  // before: this batch's copies of e in lower slots
        for (int j = 0; j < slots; ++j) {
          const int r = slot_req(Index(j) * E + e);
          const int first = shifted ? rank_offset(Index(j) * E + e) : before;
          const int room = capacity - first;
          kept += room <= 0 ? 0 : (r > room ? room : r);
          before += r;
        }
        counts(e) = kept;
      });
  // A device-side sum (E is small): a reduction into a host value would block the host.
  Kokkos::parallel_for(
      "moe::dispatch_dropped", range(1), KOKKOS_LAMBDA(const Index) {
        int dropped = 0;
        for (int e = 0; e < E; ++e) dropped += requested(e) - counts(e);
        offsets(E + 1) = dropped;
      });
}

// Brings the offsets to the host, records the totals, and marks rows past the kept ones as
// mapping to no assignment (tidy for anyone reading the whole buffer).
inline void finish(DispatchPlan& plan, Index A, int E) {
  read_offsets(plan, E);
  const Buffer<int> assignment_of_slot = plan.assignment_of_slot;
  const Index kept = plan.total_kept;
  Kokkos::parallel_for(
      "moe::dispatch_tail", range(A - kept),
      KOKKOS_LAMBDA(const Index i) { assignment_of_slot(kept + i) = -1; });
}
}  // namespace dispatch_detail

// Copies of each (slot, expert) in expert_of[0..A), A = N * slots: counts[j*E + e]. The
// data-parallel caller turns them into the rank_offset of a slot-major position cut.
inline void slot_expert_counts(View1<const int> expert_of, Index A, int E, int slots,
                               View1<int> counts) {
  Kokkos::parallel_for(
      "moe::slot_counts_zero", range(Index(slots) * E),
      KOKKOS_LAMBDA(const Index i) { counts(i) = 0; });
  Kokkos::parallel_for(
      "moe::slot_counts", range(A), KOKKOS_LAMBDA(const Index a) {
        const int e = expert_of(a);
        if (e >= 0 && e < E) Kokkos::atomic_add(&counts(Index(a % slots) * E + e), 1);
      });
}

namespace dispatch_detail {
// The position-drop plan in two launches, optionally gathering the kept rows in the second
// (x non-empty: xg[s,:] = x[assignment_of_slot[s] / K, :]).
//  1. One team per expert e ranks e's copies in ranking order (assignment order, or with
//     slots = S > 1 slot-major: slot j's copies a = n S + j in token order, slot by slot): per
//     slot a team reduction counts them and a team scan gives each its rank within the slot,
//     which decides the capacity cut (kept iff capacity <= 0 or first_j + rank < capacity,
//     first_j = rank_offset[j E + e] or the copies of e in lower slots). slot_of[a] = rank
//     among e's copies (the kept ones are a prefix of that ranking, see dispatch_plan), or -1
//     when dropped. requested[e], counts[e] and the per-slot counts come out of the same team.
//     Team 0 also marks the copies that name no expert (-1).
//  2. One team per assignment turns a kept rank into its row, offsets[e] + rank, with
//     offsets[e] = sum of counts of lower experts (a team reduction: E is small), writes the
//     inverse map (rows >= total kept map to -1), copies the token's row when gathering, and
//     team 0 writes offsets[0..E] and the dropped count for the host.
// Same plan as the scan-based formulation (kernel_test_dispatch checks it against a plain
// reference); every step is integer arithmetic and fixed-order scans, so it is reproducible.
template <class Real>
void plan_by_position(View1<const int> expert_of, Index A, int E, int capacity, DispatchPlan& plan,
                      View1<const int> rank_offset, int slots, View1<const Real> x, View1<Real> xg,
                      int K, int C) {
  size_plan(plan, A, E, slots);
  const Buffer<int> requested = plan.requested, counts = plan.counts, offsets = plan.offsets;
  const Buffer<int> slot_of = plan.slot_of, assignment_of_slot = plan.assignment_of_slot;
  const Buffer<int> slot_req = plan.slot_requested;
  const Index N = A / slots;
  const bool shifted = rank_offset.extent(0) > 0;
  using Policy = Kokkos::TeamPolicy<ExecSpace>;
  using Member = Policy::member_type;

  Kokkos::parallel_for(
      "moe::dispatch_rank_experts", Policy(E, Kokkos::AUTO), KOKKOS_LAMBDA(const Member& team) {
        const int e = team.league_rank();
        int before = 0, kept = 0;  // e's copies in lower slots, and how many of them were kept
        for (int j = 0; j < slots; ++j) {
          int r = 0;
          Kokkos::parallel_reduce(
              Kokkos::TeamThreadRange(team, N),
              [&](const Index n, int& c) { c += expert_of(n * slots + j) == e ? 1 : 0; }, r);
          const int first = shifted ? rank_offset(Index(j) * E + e) : before;
          Kokkos::parallel_scan(
              Kokkos::TeamThreadRange(team, N), [&](const Index n, int& rank, const bool final) {
                const Index a = n * slots + j;
                const int ea = expert_of(a);
                if (ea == e) {
                  if (final)
                    slot_of(a) = capacity <= 0 || first + rank < capacity ? before + rank : -1;
                  rank += 1;
                } else if (final && e == 0 && (ea < 0 || ea >= E)) {
                  slot_of(a) = -1;
                }
              });
          const int room = capacity - first;
          kept += capacity <= 0 ? r : (room <= 0 ? 0 : (r > room ? room : r));
          before += r;
          Kokkos::single(Kokkos::PerTeam(team), [&]() { slot_req(Index(j) * E + e) = r; });
        }
        Kokkos::single(Kokkos::PerTeam(team), [&]() {
          requested(e) = before;
          counts(e) = kept;
        });
      });

  const bool gather = x.extent(0) > 0;
  Kokkos::parallel_for(
      "moe::dispatch_slots_gather", Policy(A, Kokkos::AUTO), KOKKOS_LAMBDA(const Member& team) {
        const Index a = team.league_rank();
        const int rank = slot_of(a);
        const int e = rank >= 0 ? expert_of(a) : E;  // E: only the total is needed
        int below = 0, total = 0;
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(team, E),
            [&](const int i, int& b) { b += i < e ? counts(i) : 0; }, below);
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(team, E), [&](const int i, int& t) { t += counts(i); }, total);
        if (a == 0) {
          Kokkos::single(Kokkos::PerTeam(team), [&]() {
            int off = 0, dropped = 0;
            for (int i = 0; i < E; ++i) {
              offsets(i) = off;
              off += counts(i);
              dropped += requested(i) - counts(i);
            }
            offsets(E) = off;
            offsets(E + 1) = dropped;
          });
        }
        // Team-wide barrier before slot_of(a) is overwritten: every thread has read it above.
        team.team_barrier();
        if (a >= total)
          Kokkos::single(Kokkos::PerTeam(team), [&]() { assignment_of_slot(a) = -1; });
        if (rank < 0) return;
        const Index s = below + rank;
        Kokkos::single(Kokkos::PerTeam(team), [&]() {
          slot_of(a) = int(s);
          assignment_of_slot(s) = int(a);
        });
        if (gather) {
          const Real* src = &x((a / K) * C);
          Real* dst = &xg(s * C);
          Kokkos::parallel_for(Kokkos::TeamThreadRange(team, C),
                               [&](const int c) { dst[c] = src[c]; });
        }
      });

  read_offsets(plan, E);
}
}  // namespace dispatch_detail

// Builds the plan from expert_of[0..A) (entries in [0,E) or -1). capacity <= 0: keep all.
// Drop by position: an overfull expert keeps its first `capacity` copies in assignment order,
// or with slots = K > 1 in slot-major order (GShard: first choices before second choices).
// Only the E+1 offsets and the dropped count come back to the host. Two launches
// (dispatch_detail::plan_by_position).
// rank_offset (optional, [E], or [K*E] with slots = K): where this batch's copies start in the
// global order: [j*E + e] is the global rank of this batch's first slot-j copy of e (global
// order: slot 0 of every rank, then slot 1, ...).
inline void dispatch_plan(View1<const int> expert_of, Index A, int E, int capacity,
                          DispatchPlan& plan, View1<const int> rank_offset = {}, int slots = 1) {
  dispatch_detail::plan_by_position<float>(expert_of, A, E, capacity, plan, rank_offset, slots, {},
                                           {}, 1, 0);
}

// dispatch_plan and dispatch_forward in the same two launches: the kept rows of x [N,C] are
// copied into xg (at least A*C long: the kept count is not known before) as their rows are
// assigned. K is the assignments per token (a = token * K + slot).
template <class Real>
void dispatch_plan_gather(View1<const int> expert_of, Index A, int E, int capacity,
                          DispatchPlan& plan, View1<const int> rank_offset, int slots,
                          View1<const Real> x, View1<Real> xg, int K, int C) {
  MOE_CHECK(Index(xg.extent(0)) >= A * C, "dispatch_plan_gather: xg shorter than A*C");
  dispatch_detail::plan_by_position<Real>(expert_of, A, E, capacity, plan, rank_offset, slots, x,
                                          xg, K, C);
}

// Drop by priority: as above, but an overfull expert (requested > capacity > 0) keeps the
// `capacity` copies with the highest priority[a] (the gates), ties to the lower assignment
// index a; a NaN priority ranks below every number. The kept copies still occupy the expert's
// rows in assignment order. An empty priority view (extent 0) means drop by position.
// Method, after the shared counting and ranking:
//  a. scratch[row] = a for the unconstrained grouping (row = offsets[e] + rank);
//  b. a copy of an overfull expert is kept iff fewer than `capacity` copies of its expert beat
//     it; it counts them by comparing with every copy in its expert's contiguous segment of
//     the grouping. O(sum_e n_e^2) comparisons (n_e = requested copies of expert e) but only
//     for overfull experts, whose n_e is a small multiple of the capacity; one thread per copy,
//     no atomics. The keep flag (0/1) goes to slot_of[a];
//  c. an exclusive scan of the keep flags along the grouping gives each kept copy its row: the
//     copies kept before it are exactly those of lower experts plus its expert's kept copies
//     earlier in assignment order, so the rows come out grouped by expert, in assignment order;
//  d. slot_of is rebuilt as the inverse of assignment_of_slot.
template <class Real>
void dispatch_plan(View1<const int> expert_of, View1<const Real> priority, Index A, int E,
                   int capacity, DispatchPlan& plan) {
  if (priority.extent(0) == 0) {
    dispatch_plan(expert_of, A, E, capacity, plan);
    return;
  }
  MOE_CHECK(Index(priority.extent(0)) >= A, "dispatch_plan: priority shorter than expert_of");
  dispatch_detail::requested_and_rank(expert_of, A, E, capacity, plan);
  dispatch_detail::ensure_size(plan.scratch, A, "moe::dispatch_scratch");
  const Buffer<int> requested = plan.requested, counts = plan.counts, offsets = plan.offsets;
  const Buffer<int> slot_of = plan.slot_of, assignment_of_slot = plan.assignment_of_slot;
  const Buffer<int> grouped = plan.scratch;
  const Real lowest = std::numeric_limits<Real>::lowest();  // host: no constexpr on device

  // a. The unconstrained grouping; rows past the routed copies hold -1.
  Kokkos::parallel_for(
      "moe::dispatch_prio_clear", range(A), KOKKOS_LAMBDA(const Index r) { grouped(r) = -1; });
  Kokkos::parallel_for(
      "moe::dispatch_prio_group", range(A), KOKKOS_LAMBDA(const Index a) {
        const int rank = slot_of(a);
        if (rank >= 0) grouped(offsets(expert_of(a)) + rank) = int(a);
      });

  // b. Keep flags. Reads grouped and priority, writes only slot_of[a] of its own copy.
  Kokkos::parallel_for(
      "moe::dispatch_prio_keep", range(A), KOKKOS_LAMBDA(const Index r) {
        const int a = grouped(r);
        if (a < 0) return;
        const int e = expert_of(a), n_e = requested(e);
        if (capacity <= 0 || n_e <= capacity) {
          slot_of(a) = 1;
          return;
        }
        const Real pa_raw = priority(a);
        const Real pa = pa_raw == pa_raw ? pa_raw : lowest;
        const int begin = offsets(e);
        int beaten_by = 0;
        for (int q = begin; q < begin + n_e; ++q) {
          const int b = grouped(q);
          const Real pb_raw = priority(b);
          const Real pb = pb_raw == pb_raw ? pb_raw : lowest;
          if (pb > pa || (pb == pa && b < a)) ++beaten_by;
        }
        slot_of(a) = beaten_by < capacity ? 1 : 0;
      });

  // c. Rows of the kept copies, in grouping order (reads slot_of, writes assignment_of_slot).
  Kokkos::parallel_scan(
      "moe::dispatch_prio_rows", range(A),
      KOKKOS_LAMBDA(const Index r, int& update, const bool final) {
        const int a = grouped(r);
        if (a < 0 || slot_of(a) == 0) return;
        if (final) assignment_of_slot(update) = a;
        update += 1;
      });

  // d. Offsets of the kept counts, and slot_of as the inverse map (-1 = unused or dropped).
  dispatch_detail::exclusive_scan_experts(counts, offsets, E, "moe::dispatch_offsets");
  Kokkos::parallel_for(
      "moe::dispatch_prio_unset", range(A), KOKKOS_LAMBDA(const Index a) { slot_of(a) = -1; });
  Kokkos::parallel_for(
      "moe::dispatch_prio_slots", range(A), KOKKOS_LAMBDA(const Index s) {
        if (s < Index(offsets(E))) slot_of(assignment_of_slot(s)) = int(s);
      });
  dispatch_detail::finish(plan, A, E);
}

// xg[s,:] = x[assignment_of_slot[s] / K, :] for the total_kept grouped rows. One team per row:
// a contiguous copy (vectorized on a CPU, coalesced on a GPU), no index division per element.
template <class Real>
void dispatch_forward(View1<const Real> x, const DispatchPlan& plan, View1<Real> xg, int K, int C) {
  using Policy = Kokkos::TeamPolicy<ExecSpace>;
  const Buffer<int> assignment_of_slot = plan.assignment_of_slot;
  if (plan.total_kept == 0) return;
  Kokkos::parallel_for(
      "moe::dispatch_forward", Policy(plan.total_kept, Kokkos::AUTO),
      KOKKOS_LAMBDA(const Policy::member_type& team) {
        const Index s = team.league_rank();
        const Real* src = &x(Index(assignment_of_slot(s) / K) * C);
        Real* dst = &xg(s * C);
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, C),
                             [&](const int c) { dst[c] = src[c]; });
      });
}

// dx[n,:] = sum over the token's slots j = 0..K-1 (in that order) that kept a row of dxg[row,:];
// 0 for a token with no kept copy. Written, not accumulated, so the caller needs no zero-fill
// (the router's input gradient is added after). One team per token owns its output row: no
// atomics, fixed order.
template <class Real>
void dispatch_backward(View1<const Real> dxg, const DispatchPlan& plan, View1<Real> dx, int N,
                       int K, int C) {
  using Policy = Kokkos::TeamPolicy<ExecSpace>;
  const Buffer<int> slot_of = plan.slot_of;
  if (N == 0) return;
  Kokkos::parallel_for(
      "moe::dispatch_backward", Policy(N, Kokkos::AUTO),
      KOKKOS_LAMBDA(const Policy::member_type& team) {
        const Index n = team.league_rank();
        Real* out = &dx(n * C);
        bool written = false;  // the same for every thread of the team
        for (int j = 0; j < K; ++j) {
          const int s = slot_of(n * K + j);
          if (s < 0) continue;
          const Real* src = &dxg(Index(s) * C);
          if (written)
            Kokkos::parallel_for(Kokkos::TeamThreadRange(team, C),
                                 [&](const int c) { out[c] += src[c]; });
          else
            Kokkos::parallel_for(Kokkos::TeamThreadRange(team, C),
                                 [&](const int c) { out[c] = src[c]; });
          written = true;
        }
        if (!written)
          Kokkos::parallel_for(Kokkos::TeamThreadRange(team, C),
                               [&](const int c) { out[c] = Real(0); });
      });
}

}  // namespace moe
