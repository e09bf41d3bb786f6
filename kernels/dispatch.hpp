// Dispatch: groups the routed token copies by expert so each expert's MLP is one dense gemm
// over a contiguous block of rows. The plan is a stable counting sort of the assignments
// (a = token * K + slot) by expert, computed on the device; an optional capacity keeps only the
// first `capacity` copies of each expert in token order ("drop by position"). Every step is
// either integer arithmetic or a Kokkos scan, so the plan is identical run to run.
#pragma once

#include <cmath>
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

// out[0..E] = exclusive scan of in[0..E), out[E] = total.
inline void exclusive_scan_experts(const Buffer<int>& in, const Buffer<int>& out, int E,
                                   const char* label) {
  Kokkos::parallel_scan(
      label, range(Index(E) + 1), KOKKOS_LAMBDA(const Index e, int& update, const bool final) {
        if (final) out(e) = update;
        if (e < E) update += in(e);
      });
}
}  // namespace dispatch_detail

// Builds the plan from expert_of[0..A) (entries in [0,E) or -1). capacity <= 0: keep all.
// Only the E+1 offsets and the dropped count come back to the host.
inline void dispatch_plan(View1<const int> expert_of, Index A, int E, int capacity,
                          DispatchPlan& plan) {
  MOE_CHECK(E > 0, "dispatch_plan needs E > 0");
  dispatch_detail::ensure_size(plan.requested, E, "moe::dispatch_requested");
  dispatch_detail::ensure_size(plan.counts, E, "moe::dispatch_counts");
  dispatch_detail::ensure_size(plan.offsets, Index(E) + 1, "moe::dispatch_offsets");
  dispatch_detail::ensure_size(plan.slot_of, A, "moe::dispatch_slot_of");
  dispatch_detail::ensure_size(plan.assignment_of_slot, A, "moe::dispatch_assignment_of_slot");
  const Buffer<int> requested = plan.requested, counts = plan.counts, offsets = plan.offsets;
  const Buffer<int> slot_of = plan.slot_of, assignment_of_slot = plan.assignment_of_slot;

  // 1. Copies requested per expert (integer atomics: the counts do not depend on the order).
  Kokkos::parallel_for(
      "moe::dispatch_zero", range(E), KOKKOS_LAMBDA(const Index e) { requested(e) = 0; });
  Kokkos::parallel_for(
      "moe::dispatch_requested", range(A), KOKKOS_LAMBDA(const Index a) {
        const int e = expert_of(a);
        if (e >= 0 && e < E) Kokkos::atomic_add(&requested(e), 1);
      });

  // 2. Rank of each copy among its expert's copies, in assignment order: one scan over the
  //    expert-major indicator i = e * A + a. The running prefix at a copy minus the number of
  //    copies of lower experts (the exclusive scan of `requested`, held in `offsets` for now)
  //    is its rank. slot_of temporarily holds the rank (-1 for unused slots).
  dispatch_detail::exclusive_scan_experts(requested, offsets, E, "moe::dispatch_requested_scan");
  Kokkos::parallel_for(
      "moe::dispatch_clear", range(A), KOKKOS_LAMBDA(const Index a) { slot_of(a) = -1; });
  Kokkos::parallel_scan(
      "moe::dispatch_rank", range(Index(E) * A),
      KOKKOS_LAMBDA(const Index i, Index& update, const bool final) {
        const Index e = i / A, a = i - e * A;
        if (expert_of(a) == int(e)) {
          if (final) slot_of(a) = int(update - offsets(e));
          update += 1;
        }
      });

  // 3. Kept copies per expert, their offsets, and the dropped count.
  Kokkos::parallel_for(
      "moe::dispatch_counts", range(E), KOKKOS_LAMBDA(const Index e) {
        const int r = requested(e);
        counts(e) = (capacity > 0 && r > capacity) ? capacity : r;
      });
  Index dropped = 0;
  Kokkos::parallel_reduce(
      "moe::dispatch_dropped", range(E),
      KOKKOS_LAMBDA(const Index e, Index& acc) { acc += requested(e) - counts(e); }, dropped);
  dispatch_detail::exclusive_scan_experts(counts, offsets, E, "moe::dispatch_offsets");

  // 4. Rank -> row; copies past the capacity are dropped. Rows are unique, so the inverse map is
  //    written without conflicts.
  Kokkos::parallel_for(
      "moe::dispatch_slots", range(A), KOKKOS_LAMBDA(const Index a) {
        const int rank = slot_of(a);
        if (rank < 0) return;
        if (capacity > 0 && rank >= capacity) {
          slot_of(a) = -1;
          return;
        }
        const int s = offsets(expert_of(a)) + rank;
        slot_of(a) = s;
        assignment_of_slot(s) = int(a);
      });

  plan.host_offsets.resize(std::size_t(E) + 1);
  Kokkos::deep_copy(Kokkos::View<int*, HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>(
                        plan.host_offsets.data(), std::size_t(E) + 1),
                    View1<const int>(offsets.data(), std::size_t(E) + 1));
  plan.total_kept = plan.host_offsets[std::size_t(E)];
  plan.dropped = dropped;

  // Rows past the kept ones map to no assignment (tidy for anyone reading the whole buffer).
  const Index kept = plan.total_kept;
  Kokkos::parallel_for(
      "moe::dispatch_tail", range(A - kept),
      KOKKOS_LAMBDA(const Index i) { assignment_of_slot(kept + i) = -1; });
}

// xg[s,:] = x[assignment_of_slot[s] / K, :] for the total_kept grouped rows.
template <class Real>
void dispatch_forward(View1<const Real> x, const DispatchPlan& plan, View1<Real> xg, int K, int C) {
  const Buffer<int> assignment_of_slot = plan.assignment_of_slot;
  Kokkos::parallel_for(
      "moe::dispatch_forward", range(Index(plan.total_kept) * C), KOKKOS_LAMBDA(const Index i) {
        const Index s = i / C, c = i - s * C;
        const Index n = assignment_of_slot(s) / K;
        xg(i) = x(n * C + c);
      });
}

// dx[n,:] += sum over the token's slots j = 0..K-1 (in that order) that kept a row of dxg[row,:].
// One thread per (token, channel) owns its output: no atomics, fixed order.
template <class Real>
void dispatch_backward(View1<const Real> dxg, const DispatchPlan& plan, View1<Real> dx, int N,
                       int K, int C) {
  const Buffer<int> slot_of = plan.slot_of;
  Kokkos::parallel_for(
      "moe::dispatch_backward", range(Index(N) * C), KOKKOS_LAMBDA(const Index i) {
        const Index n = i / C, c = i - n * C;
        Real acc = 0;
        for (int j = 0; j < K; ++j) {
          const int s = slot_of(n * K + j);
          if (s >= 0) acc += dxg(Index(s) * C + c);
        }
        dx(i) += acc;
      });
}

}  // namespace moe
