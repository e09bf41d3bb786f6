// Expert-choice selection (Zhou et al. 2022): each expert e takes the C tokens with the largest
// router probability probs[:, e] (ties to the lower token index). A decision has K = E slots per
// token, slot e standing for expert e: expert_of[n*E+e] = e and gate[n*E+e] = probs[n,e] when
// expert e chose token n, else -1 and 0. A token may so receive 0..E experts.
//
// Selection is a radix select per expert, not a sort: probabilities are >= 0, and for
// non-negative IEEE-754 numbers the bit pattern read as an unsigned integer (the key) orders
// like the number. One team per expert builds the key T of the C-th largest entry bit by bit,
// from the top: a bit stays set when at least C entries have keys >= the candidate. Then every
// token with key > T is chosen (fewer than C of them), and the C - #(key > T) lowest-indexed
// tokens with key == T fill the rest (a team scan over the column in token order). Cost: one
// counting pass over the column per key bit, O(bits N E) in all, with no scratch memory; the
// result depends on no thread order (deterministic on every backend).
#pragma once

#include <cstdint>
#include <cstring>

#include "common.hpp"

namespace moe {

namespace expert_choice_detail {

template <class Real>
struct KeyType;
template <>
struct KeyType<float> {
  using type = std::uint32_t;
};
template <>
struct KeyType<double> {
  using type = std::uint64_t;
};

// The order-preserving unsigned key of a probability (x >= 0).
template <class Real>
KOKKOS_INLINE_FUNCTION typename KeyType<Real>::type key_of(Real x) {
  typename KeyType<Real>::type k;
  memcpy(&k, &x, sizeof k);
  return k;
}

}  // namespace expert_choice_detail

// Fills expert_of and gate [N*E] from probs [N,E] with capacity C per expert (C >= N takes
// every token), and counts[e] = tokens expert e took (min(C, N)).
template <class Real>
void expert_choice_forward(View1<const Real> probs, View1<int> expert_of, View1<Real> gate,
                           View1<int> counts, int N, int E, int C) {
  using Key = typename expert_choice_detail::KeyType<Real>::type;
  using Policy = Kokkos::TeamPolicy<ExecSpace>;
  // The sign bit is 0 for every probability: the select starts one bit below it.
  constexpr int kTopBit = int(sizeof(Key)) * 8 - 2;
  Kokkos::parallel_for(
      "moe::expert_choice_forward", Policy(E, Kokkos::AUTO),
      KOKKOS_LAMBDA(const Policy::member_type& team) {
        const int e = team.league_rank();
        auto key = [&](const int n) {
          return expert_choice_detail::key_of<Real>(probs(Index(n) * E + e));
        };
        // T: the largest key with at least C entries >= T (0 when C > N: every entry counts).
        Key T = 0;
        for (int bit = kTopBit; bit >= 0; --bit) {
          const Key candidate = T | (Key(1) << bit);
          int at_least = 0;
          Kokkos::parallel_reduce(
              Kokkos::TeamThreadRange(team, N),
              [&](const int n, int& c) { c += key(n) >= candidate ? 1 : 0; }, at_least);
          if (at_least >= C) T = candidate;  // the team reduction gives every thread the sum
        }
        int above = 0;
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(team, N), [&](const int n, int& c) { c += key(n) > T ? 1 : 0; },
            above);
        const int room = C - above;  // ties at T taken, lowest token index first
        Kokkos::parallel_scan(Kokkos::TeamThreadRange(team, N),
                              [&](const int n, int& ties_before, const bool final) {
                                const Key k = key(n);
                                if (final) {
                                  const bool chosen = k > T || (k == T && ties_before < room);
                                  const Index i = Index(n) * E + e;
                                  expert_of(i) = chosen ? e : -1;
                                  gate(i) = chosen ? probs(i) : Real(0);
                                }
                                ties_before += k == T ? 1 : 0;
                              });
        Kokkos::single(Kokkos::PerTeam(team), [&]() { counts(e) = C < N ? C : N; });
      });
}

// dprobs[n,e] += dgate[n*E+e] for every chosen slot: the gate is the probability itself, and
// the selection is piecewise constant in the probabilities (no gradient through the choice).
// Slot n*E+e maps to dprobs entry n*E+e, so the writes never collide.
template <class Real>
void expert_choice_backward(View1<const int> expert_of, View1<const Real> dgate, View1<Real> dprobs,
                            int N, int E) {
  Kokkos::parallel_for(
      "moe::expert_choice_backward", range(Index(N) * E), KOKKOS_LAMBDA(const Index i) {
        if (expert_of(i) >= 0) dprobs(i) += dgate(i);
      });
}

}  // namespace moe
