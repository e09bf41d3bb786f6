// Causal multi-head self-attention core: given the fused q|k|v activations, computes
// softmax(q k^T / sqrt(hd)) v per head with a causal mask. The QKV and output projections are
// ordinary linear layers owned by the caller.
//
// Every S x S x hd product runs as gemms over row blocks of T query rows (T = block_rows): block
// i only meets the keys up to its diagonal, so the masked upper triangle is computed only inside
// the diagonal blocks (about (1 + 1/nb) / 2 of the square for nb = S / T blocks). Each block is
// one gemm_batched call over all B sequences and H heads (one strided-batched cuBLAS call per
// head on a GPU); only the row softmax and its backward are Kokkos kernels.
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

// Rows [r0, r0 + rows) of the query block `blk` of T rows, for S tokens.
struct Block {
  int r0, rows;
  Block(int blk, int T, int S) : r0(blk * T), rows(T < S - blk * T ? T : S - blk * T) {}
  int end() const { return r0 + rows; }
};

// The (sequence, head) batch of one product: head h of sequence b sits at b * seq + h * head
// in each operand (strides in elements; A, B, C in that order).
inline GemmBatch heads(int B, int H, Index seq_a, Index head_a, Index seq_b, Index head_b,
                       Index seq_c, Index head_c) {
  return GemmBatch{H, head_a, head_b, head_c, B, seq_a, seq_b, seq_c};
}

}  // namespace attention_detail

// Query rows per block of the causal products (the last block may be shorter). On the host, 64
// rows: the products skip most of the masked upper triangle. On a device, one block (the whole
// S x S square): each block costs min(B, H) cuBLAS calls per product, and there the calls cost
// more than the masked half's FLOPs (reference shape, S = 256: 4x fewer attention calls for about
// 5% more model FLOPs). Any height gives the same result up to rounding.
constexpr int kAttentionBlockRowsHost = 64, kAttentionBlockRowsDevice = 1 << 20;
constexpr int kAttentionBlockRows =
    Kokkos::SpaceAccessibility<Kokkos::HostSpace, MemSpace>::accessible ? kAttentionBlockRowsHost
                                                                        : kAttentionBlockRowsDevice;

// The scores of B sequences of S tokens over H heads: [B,H,S,S].
template <class T>
using ScoreView =
    Kokkos::View<T****, Kokkos::LayoutRight, MemSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

// qkv [B*S, 3C]: row n = b*S + s is [q | k | v], each C wide and split into H heads of
// hd = C/H contiguous values. att [B,H,S,S] receives the softmax probabilities (zero above the
// diagonal; saved for backward). out [B*S, C]: head h of token n at out(n, h*hd ...).
// B, H and S are att's extents, C is out's; block_rows is T above (any T >= 1 gives the same
// result up to rounding).
template <class Real>
void attention_forward(const ExecSpace& exec, View2<const Real> qkv, ScoreView<Real> att,
                       View2<Real> out, int block_rows = kAttentionBlockRows) {
  const int B = int(att.extent(0)), H = int(att.extent(1)), S = int(att.extent(2));
  const int C = int(out.extent(1));
  MOE_CHECK(H > 0 && C % H == 0, "attention: C must be a multiple of H");
  MOE_CHECK(Index(qkv.extent(0)) == Index(B) * S && int(qkv.extent(1)) == 3 * C,
            "attention: qkv must be [B*S, 3C]");
  MOE_CHECK(block_rows > 0, "attention: block_rows must be positive");
  const int hd = C / H, T = block_rows, nb = (S + T - 1) / T;
  const Index SS = Index(S) * S, seq = Index(S) * 3 * C;
  const Real scale = Real(1) / std::sqrt(Real(hd));
  using attention_detail::Block;
  const Real* q = qkv.data();
  // scores[b,h] rows of block i = scale * Q_i K_{0..end(i)}^T.
  const GemmBatch qk = attention_detail::heads(B, H, seq, hd, seq, hd, H * SS, SS);
  for (int i = 0; i < nb; ++i) {
    const Block blk(i, T, S);
    gemm_batched<Real>(false, true, blk.rows, blk.end(), hd, scale, q + Index(blk.r0) * 3 * C,
                       3 * C, q + C, 3 * C, Real(0), att.data() + Index(blk.r0) * S, S, qk);
  }

  // Causal mask + numerically stable softmax, one team per (b,h,s) row: the team's threads walk
  // the row together so that device memory accesses are coalesced. Team reductions have a
  // fixed order, so the result is deterministic. Only t <= s is read (the products above leave
  // the rest of the row unwritten); the rest is set to zero.
  using attention_detail::RowMember;
  using attention_detail::RowPolicy;
  Kokkos::parallel_for(
      "moe::attention_softmax", RowPolicy(exec, B * H * S, Kokkos::AUTO),
      KOKKOS_LAMBDA(const RowMember& team) {
        const attention_detail::ScoreRow r(team.league_rank(), H, S);
        Real* row = &att(r.b, r.h, r.s, 0);
        const int s = r.s;  // query position s: keys t <= s are visible
        Real mx = row[0];
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(team, s + 1),
            [&](const int t, Real& m) { m = row[t] > m ? row[t] : m; }, Kokkos::Max<Real>(mx));
        Real total = 0;
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(team, s + 1),
            [&](const int t, Real& acc) {
              const Real e = math::exp(row[t] - mx);
              row[t] = e;
              acc += e;
            },
            total);
        const Real inv = Real(1) / total;  // total >= 1: the max term contributes exp(0)
        team.team_barrier();
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, S),
                             [&](const int t) { row[t] = t <= s ? row[t] * inv : Real(0); });
      });

  // out rows of block i = att_i V_{0..end(i)}, straight into the head's columns of out.
  const GemmBatch pv = attention_detail::heads(B, H, H * SS, SS, seq, hd, Index(S) * C, hd);
  for (int i = 0; i < nb; ++i) {
    const Block blk(i, T, S);
    gemm_batched<Real>(false, false, blk.rows, hd, blk.end(), Real(1),
                       att.data() + Index(blk.r0) * S, S, q + 2 * C, 3 * C, Real(0),
                       out.data() + Index(blk.r0) * C, C, pv);
  }
}

// Writes dqkv [B*S, 3C], the gradient of the loss given dout [B*S, C]: every entry, so the
// caller need not zero it (in bf16 mode it is then a fresh, bf16-rounded activation gradient,
// like datt). att is the forward's saved softmax; datt [B,H,S,S] is scratch (overwritten; holds
// dpre on return, zero above the diagonal). block_rows as in the forward.
template <class Real>
void attention_backward(const ExecSpace& exec, View2<const Real> dout, View2<const Real> qkv,
                        ScoreView<const Real> att, ScoreView<Real> datt, View2<Real> dqkv,
                        int block_rows = kAttentionBlockRows) {
  const int B = int(att.extent(0)), H = int(att.extent(1)), S = int(att.extent(2));
  const int C = int(dout.extent(1));
  MOE_CHECK(H > 0 && C % H == 0, "attention: C must be a multiple of H");
  MOE_CHECK(block_rows > 0, "attention: block_rows must be positive");
  const int hd = C / H, T = block_rows, nb = (S + T - 1) / T;
  const Index SS = Index(S) * S, seq = Index(S) * 3 * C, seq_o = Index(S) * C;
  const Real scale = Real(1) / std::sqrt(Real(hd));
  using attention_detail::Block;
  using attention_detail::heads;
  const Real *q = qkv.data(), *dO = dout.data(), *P = att.data();
  Real *dq = dqkv.data(), *dP = datt.data();

  for (int i = 0; i < nb; ++i) {
    const Block blk(i, T, S);  // query rows of block i; as keys, the block's columns
    // datt rows of block i = dout_i V_{0..end(i)}^T  (overwrites the scratch)
    gemm_batched<Real>(false, true, blk.rows, blk.end(), hd, Real(1), dO + Index(blk.r0) * C, C,
                       q + 2 * C, 3 * C, Real(0), dP + Index(blk.r0) * S, S,
                       heads(B, H, seq_o, hd, seq, hd, H * SS, SS));
    // dV_i = att[r0.., cols of i]^T dout[r0..]: only queries from r0 on see keys of block i.
    // Every product here and below writes the rows of its own block i once, each a full
    // product over all the queries (dV, dK) or keys (dQ) involved, so beta = 0: together the
    // blocks write every entry of dqkv exactly once and nothing is accumulated across blocks.
    gemm_batched<Real>(true, false, blk.rows, hd, S - blk.r0, Real(1),
                       P + Index(blk.r0) * S + blk.r0, S, dO + Index(blk.r0) * C, C, Real(0),
                       dq + Index(blk.r0) * 3 * C + 2 * C, 3 * C,
                       heads(B, H, H * SS, SS, seq_o, hd, seq, hd));
  }

  // Softmax backward in place: dpre = att * (datt - sum_t datt*att) * scale, with the scale of
  // the scores folded in here so that the gemms below are plain products. Masked entries
  // (t > s) are set to zero explicitly so that nothing leaks from the future.
  using attention_detail::RowMember;
  using attention_detail::RowPolicy;
  Kokkos::parallel_for(
      "moe::attention_softmax_backward", RowPolicy(exec, B * H * S, Kokkos::AUTO),
      KOKKOS_LAMBDA(const RowMember& team) {
        const attention_detail::ScoreRow r(team.league_rank(), H, S);
        const Real* p = &att(r.b, r.h, r.s, 0);
        Real* g = &datt(r.b, r.h, r.s, 0);
        const int s = r.s;
        Real d = 0;
        Kokkos::parallel_reduce(
            Kokkos::TeamThreadRange(team, s + 1),
            [&](const int t, Real& acc) { acc += g[t] * p[t]; }, d);
        team.team_barrier();  // every thread has read datt before anyone overwrites it
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, S), [&](const int t) {
          g[t] = t <= s ? p[t] * (g[t] - d) * scale : Real(0);
        });
      });

  const Real* dpre = dP;
  for (int i = 0; i < nb; ++i) {
    const Block blk(i, T, S);
    // dQ_i = dpre[rows of i, 0..end(i)] K_{0..end(i)}
    gemm_batched<Real>(false, false, blk.rows, hd, blk.end(), Real(1), dpre + Index(blk.r0) * S, S,
                       q + C, 3 * C, Real(0), dq + Index(blk.r0) * 3 * C, 3 * C,
                       heads(B, H, H * SS, SS, seq, hd, seq, hd));
    // dK_i = dpre[r0.., cols of i]^T Q[r0..]
    gemm_batched<Real>(true, false, blk.rows, hd, S - blk.r0, Real(1),
                       dpre + Index(blk.r0) * S + blk.r0, S, q + Index(blk.r0) * 3 * C, 3 * C,
                       Real(0), dq + Index(blk.r0) * 3 * C + C, 3 * C,
                       heads(B, H, H * SS, SS, seq, hd, seq, hd));
  }
}

}  // namespace moe
