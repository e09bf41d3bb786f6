// Token + position embedding (GPT-2 style): out[n,:] = wte[tokens[n],:] + wpe[n % S,:] for the
// N = B*S token rows of a batch. The backward scatters dout into the two tables: rows that carry
// the same token add into the same dwte row, which is a plain in-order loop on the Serial
// backend (deterministic) and floating-point atomics elsewhere (on CUDA the order of the adds
// into one row, hence the last bits of dwte, may vary from run to run).
#pragma once

#include <type_traits>

#include "common.hpp"

namespace moe {

namespace embedding_detail {
// Whether kernels run on the Serial backend (one thread: plain adds are race-free and ordered).
#if defined(KOKKOS_ENABLE_SERIAL)
constexpr bool kSerial = std::is_same_v<ExecSpace, Kokkos::Serial>;
#else
constexpr bool kSerial = false;
#endif
}  // namespace embedding_detail

// out [N,C] = wte [V,C] rows picked by tokens [N] + wpe [S,C] rows picked by position (n % S).
template <class Real>
void embedding_forward(const ExecSpace& exec, View1<const int> tokens, View2<const Real> wte,
                       View2<const Real> wpe, View2<Real> out) {
  using Policy = Kokkos::TeamPolicy<ExecSpace>;
  const int C = int(out.extent(1)), S = int(wpe.extent(0));
  // One team per row, threads over channels (no index division; vectorizes on a CPU).
  Kokkos::parallel_for(
      "moe::embedding_forward", Policy(exec, int(out.extent(0)), Kokkos::AUTO),
      KOKKOS_LAMBDA(const Policy::member_type& team) {
        const int n = team.league_rank();
        const Real* te = &wte(tokens(n), 0);
        const Real* pe = &wpe(n % S, 0);
        Real* o = &out(n, 0);
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, C),
                             [&](const int c) { o[c] = te[c] + pe[c]; });
      });
}

// dwte[tokens[n],c] += dout[n,c]; dwpe[n%S,c] += dout[n,c].
template <class Real>
void embedding_backward(const ExecSpace& exec, View1<const int> tokens, View2<const Real> dout,
                        View2<Real> dwte, View2<Real> dwpe) {
  const Index N = Index(dout.extent(0)), C = Index(dout.extent(1)), S = Index(dwpe.extent(0));
  using Policy = Kokkos::TeamPolicy<ExecSpace>;
  // One launch for both tables: teams [0, N) take a token row each, teams [N, N + S) a position.
  // A token row's team has its threads over channels (coalesced). On Serial the rows run in
  // order and the channel loop is a plain add (deterministic, vectorizable); elsewhere rows of
  // the same token may run at once, so the adds are atomic.
  // Position s receives rows s, s+S, s+2S, ...: its team adds them in order, its threads over
  // channels (each thread owns its channels, so no atomics).
  Kokkos::parallel_for(
      "moe::embedding_backward", Policy(exec, N + S, Kokkos::AUTO),
      KOKKOS_LAMBDA(const Policy::member_type& team) {
        const Index r = team.league_rank();
        if (r < N) {
          Real* row = &dwte(tokens(r), 0);
          // dout is read through a row pointer taken here: nvcc rejects an extended lambda whose
          // first use of a captured View is inside an if-constexpr branch.
          const Real* d = &dout(r, 0);
          Kokkos::parallel_for(Kokkos::TeamThreadRange(team, C), [&](const Index c) {
            if constexpr (embedding_detail::kSerial)
              row[c] += d[c];
            else
              Kokkos::atomic_add(&row[c], d[c]);
          });
          return;
        }
        const Index s = r - N;
        Real* row = &dwpe(s, 0);
        for (Index n = s; n < N; n += S) {
          const Real* d = &dout(n, 0);
          Kokkos::parallel_for(Kokkos::TeamThreadRange(team, C),
                               [&](const Index c) { row[c] += d[c]; });
        }
      });
}

}  // namespace moe
