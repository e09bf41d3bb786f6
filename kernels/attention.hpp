// Causal multi-head self-attention core: given the fused q|k|v activations, computes
// softmax(q k^T / sqrt(hd)) v per head with a causal mask. The QKV and output projections are
// ordinary linear layers owned by the caller.
//
// All four S x S x hd products per head go through gemm_strided_batched (batched over the H
// heads of one sequence), so attention runs at gemm speed; only the row softmax and its
// backward are Kokkos kernels. The full S x S score matrix is computed and then masked: that
// wastes the upper triangle but keeps every product one dense, well-shaped gemm.
#pragma once

#include <cmath>

#include "common.hpp"
#include "matmul.hpp"

namespace moe {

namespace attention_detail {

using RowPolicy = Kokkos::TeamPolicy<ExecSpace>;
using RowMember = RowPolicy::member_type;

// The (b, h, s) row of the scores a team works on: league rank (b * H + h) * S + s.
struct ScoreRow {
  int b, h, s;
  KOKKOS_INLINE_FUNCTION ScoreRow(int rank, int H, int S)
      : b(rank / (H * S)), h((rank / S) % H), s(rank % S) {}
};

}  // namespace attention_detail

// The scores of B sequences of S tokens over H heads: [B,H,S,S].
template <class T>
using ScoreView =
    Kokkos::View<T****, Kokkos::LayoutRight, MemSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

// qkv [B*S, 3C]: row n = b*S + s is [q | k | v], each C wide and split into H heads of
// hd = C/H contiguous values. att [B,H,S,S] receives the softmax probabilities (zero above the
// diagonal; saved for backward). out [B*S, C]: head h of token n at out(n, h*hd ...).
// B, H and S are att's extents, C is out's.
template <class Real>
void attention_forward(const ExecSpace& exec, View2<const Real> qkv, ScoreView<Real> att,
                       View2<Real> out) {
  const int B = int(att.extent(0)), H = int(att.extent(1)), S = int(att.extent(2));
  const int C = int(out.extent(1));
  MOE_CHECK(H > 0 && C % H == 0, "attention: C must be a multiple of H");
  MOE_CHECK(Index(qkv.extent(0)) == Index(B) * S && int(qkv.extent(1)) == 3 * C,
            "attention: qkv must be [B*S, 3C]");
  const int hd = C / H;
  const Index SS = Index(S) * S;
  const Real scale = Real(1) / std::sqrt(Real(hd));

  // scores[b,h] = scale * Q_h K_h^T. Within one sequence the heads of q are hd apart with row
  // stride 3C, so the H heads are one strided batch; across b the offset is not a multiple of
  // one stride, hence the loop over b.
  for (int b = 0; b < B; ++b) {
    const Real* base = qkv.data() + Index(b) * S * 3 * C;
    gemm_strided_batched<Real>(false, true, S, S, hd, scale, base, 3 * C, hd, base + C, 3 * C, hd,
                               Real(0), att.data() + Index(b) * H * SS, S, SS, H);
  }

  // Causal mask + numerically stable softmax, one team per (b,h,s) row: the team's threads walk
  // the row together so that device memory accesses are coalesced. Team reductions have a
  // fixed order, so the result is deterministic.
  using attention_detail::RowMember;
  using attention_detail::RowPolicy;
  Kokkos::parallel_for(
      "moe::attention_softmax", RowPolicy(exec, B * H * S, Kokkos::AUTO),
      KOKKOS_LAMBDA(const RowMember& team) {
        const attention_detail::ScoreRow r(team.league_rank(), H, S);
        const int b = r.b, h = r.h, s = r.s;  // query position s: keys t <= s are visible
        Real mx = 0;
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(team, s + 1),
            [&](const int t, Real& m) {
              const Real v = att(b, h, s, t);
              if (v > m) m = v;
            },
            Kokkos::Max<Real>(mx));
        Real total = 0;
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(team, S),
            [&](const int t, Real& acc) {
              const Real e = t <= s ? math::exp(att(b, h, s, t) - mx) : Real(0);
              att(b, h, s, t) = e;
              acc += e;
            },
            total);
        const Real inv = Real(1) / total;  // total >= 1: the max term contributes exp(0)
        team.team_barrier();
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, s + 1),
                             [&](const int t) { att(b, h, s, t) *= inv; });
      });

  // out[b,h] = att[b,h] V_h, written straight into the head's columns of out (row stride C).
  for (int b = 0; b < B; ++b) {
    const Real* v = qkv.data() + Index(b) * S * 3 * C + 2 * C;
    gemm_strided_batched<Real>(false, false, S, hd, S, Real(1), att.data() + Index(b) * H * SS, S,
                               SS, v, 3 * C, hd, Real(0), out.data() + Index(b) * S * C, C, hd, H);
  }
}

// Accumulates into dqkv [B*S, 3C] the gradient of the loss given dout [B*S, C]. att is the
// forward's saved softmax; datt [B,H,S,S] is scratch (overwritten; holds dpre on return).
template <class Real>
void attention_backward(const ExecSpace& exec, View2<const Real> dout, View2<const Real> qkv,
                        ScoreView<const Real> att, ScoreView<Real> datt, View2<Real> dqkv) {
  const int B = int(att.extent(0)), H = int(att.extent(1)), S = int(att.extent(2));
  const int C = int(dout.extent(1));
  MOE_CHECK(H > 0 && C % H == 0, "attention: C must be a multiple of H");
  const int hd = C / H;
  const Index SS = Index(S) * S;
  const Real scale = Real(1) / std::sqrt(Real(hd));

  for (int b = 0; b < B; ++b) {
    const Real* base = qkv.data() + Index(b) * S * 3 * C;
    const Real* dO = dout.data() + Index(b) * S * C;
    const Real* P = att.data() + Index(b) * H * SS;
    Real* dP = datt.data() + Index(b) * H * SS;
    Real* dbase = dqkv.data() + Index(b) * S * 3 * C;
    // datt = dout V^T  (overwrites the scratch)
    gemm_strided_batched<Real>(false, true, S, S, hd, Real(1), dO, C, hd, base + 2 * C, 3 * C, hd,
                               Real(0), dP, S, SS, H);
    // dV += att^T dout
    gemm_strided_batched<Real>(true, false, S, hd, S, Real(1), P, S, SS, dO, C, hd, Real(1),
                               dbase + 2 * C, 3 * C, hd, H);
  }

  // Softmax backward in place: dpre = att * (datt - sum_t datt*att) * scale, with the scale of
  // the scores folded in here so that the two gemms below are plain products. Masked entries
  // (t > s) are set to zero explicitly so that nothing leaks from the future.
  using attention_detail::RowMember;
  using attention_detail::RowPolicy;
  Kokkos::parallel_for(
      "moe::attention_softmax_backward", RowPolicy(exec, B * H * S, Kokkos::AUTO),
      KOKKOS_LAMBDA(const RowMember& team) {
        const attention_detail::ScoreRow r(team.league_rank(), H, S);
        const int b = r.b, h = r.h, s = r.s;
        Real d = 0;
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(team, s + 1),
            [&](const int t, Real& acc) { acc += datt(b, h, s, t) * att(b, h, s, t); }, d);
        team.team_barrier();  // every thread has read datt before anyone overwrites it
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, S), [&](const int t) {
          datt(b, h, s, t) = t <= s ? att(b, h, s, t) * (datt(b, h, s, t) - d) * scale : Real(0);
        });
      });

  for (int b = 0; b < B; ++b) {
    const Real* base = qkv.data() + Index(b) * S * 3 * C;
    const Real* dP = datt.data() + Index(b) * H * SS;
    Real* dbase = dqkv.data() + Index(b) * S * 3 * C;
    // dQ += dpre K
    gemm_strided_batched<Real>(false, false, S, hd, S, Real(1), dP, S, SS, base + C, 3 * C, hd,
                               Real(1), dbase, 3 * C, hd, H);
    // dK += dpre^T Q
    gemm_strided_batched<Real>(true, false, S, hd, S, Real(1), dP, S, SS, base, 3 * C, hd, Real(1),
                               dbase + C, 3 * C, hd, H);
  }
}

}  // namespace moe
