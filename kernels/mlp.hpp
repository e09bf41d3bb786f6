// The GELU MLP, out = gelu(x w1 + b1) w2 + b2, in grouped form: rows of x are partitioned
// into G contiguous groups and group g uses its own weights. One group is the dense FFN; one
// group per expert is the MoE layer's expert MLP (token copies already sorted by expert).
// Each group is two linear layers (gemms issued from the host, hence host-side offsets); the
// GELU runs as one elementwise kernel over all rows at once.
#pragma once

#include <cmath>
#include <type_traits>
#include <vector>

#include "common.hpp"
#include "matmul.hpp"

namespace moe {

namespace mlp_detail {

// GELU, tanh approximation: 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), computed as
// x * sigmoid(2u) = x / (1 + exp(-2u)) (the same function: 0.5 (1 + tanh u) = sigmoid(2u)).
template <class Real>
KOKKOS_INLINE_FUNCTION Real gelu(Real x) {
  const Real k0 = Real(0.7978845608028654);  // sqrt(2/pi)
  const Real k1 = Real(0.044715);
  const Real u = k0 * (x + k1 * x * x * x);
  return x / (Real(1) + math::fast_exp(Real(-2) * u));
}

// d gelu / dx = s + 2 x s (1 - s) du/dx with s = sigmoid(2u), du/dx = sqrt(2/pi)(1 + 3k1 x^2)
// (that is 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) du/dx).
template <class Real>
KOKKOS_INLINE_FUNCTION Real gelu_grad(Real x) {
  const Real k0 = Real(0.7978845608028654);
  const Real k1 = Real(0.044715);
  const Real s = Real(1) / (Real(1) + math::fast_exp(Real(-2) * k0 * (x + k1 * x * x * x)));
  const Real du = k0 * (Real(1) + Real(3) * k1 * x * x);
  return s + Real(2) * x * s * (Real(1) - s) * du;
}

// Rows [offsets[g], offsets[g+1]) form group g; checks the partition is well formed.
inline int mlp_groups(const std::vector<int>& offsets) {
  MOE_CHECK(!offsets.empty(), "mlp: offsets needs at least one entry");
  for (std::size_t g = 0; g + 1 < offsets.size(); ++g)
    MOE_CHECK(offsets[g] <= offsets[g + 1], "mlp: offsets must be non-decreasing");
  return int(offsets.size()) - 1;
}

}  // namespace mlp_detail

// out = gelu(x), elementwise over n values.
template <class Real>
void gelu_forward(const ExecSpace& exec, View1<const Real> x, View1<Real> out, Index n) {
  Kokkos::parallel_for(
      "moe::gelu_forward", range(exec, n),
      KOKKOS_LAMBDA(const Index i) { out(i) = mlp_detail::gelu(x(i)); });
}

// The row partition of a grouped MLP handed to a kernel by value, as a kernel argument: no
// device buffer and no copy. Rows [off[j], off[j+1]) belong to group first + j, for up to
// kMaxGroups groups (a larger partition is cut into chunks of that many, one launch each).
struct GroupRows {
  static constexpr int kMaxGroups = 128;
  int first = 0, count = 0;
  int off[kMaxGroups + 1] = {};

  // Group of row r, off[0] <= r < off[count] (binary search; empty groups are skipped).
  KOKKOS_INLINE_FUNCTION int group_of(int r) const {
    int lo = 0, hi = count - 1;
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      if (off[mid] <= r)
        lo = mid;
      else
        hi = mid - 1;
    }
    return first + lo;
  }
};

namespace mlp_detail {
// Calls f(chunk) for the groups of `offsets` in chunks of at most GroupRows::kMaxGroups that
// hold at least one row.
template <class F>
void for_group_chunks(const std::vector<int>& offsets, F&& f) {
  const int G = int(offsets.size()) - 1;
  for (int g0 = 0; g0 < G; g0 += GroupRows::kMaxGroups) {
    GroupRows c;
    c.first = g0;
    c.count = G - g0 < GroupRows::kMaxGroups ? G - g0 : GroupRows::kMaxGroups;
    for (int j = 0; j <= c.count; ++j) c.off[j] = offsets[std::size_t(g0 + j)];
    if (c.off[c.count] > c.off[0]) f(c);
  }
}
}  // namespace mlp_detail

// For every row r of group g: out[r,:] += b[g,:], and with a non-empty act also
// act[r,:] = gelu(out[r,:]) in the same pass (the first linear layer's bias and activation; the
// second layer's bias alone). All groups in one launch; one team per row, threads over columns
// (coalesced; a plain loop that vectorizes on a CPU). b [G,W] group-major; out, act [M,W].
template <class Real>
void grouped_bias_forward(const ExecSpace& exec, View1<const Real> b, View2<Real> out,
                          View2<Real> act, const std::vector<int>& offsets) {
  using Policy = Kokkos::TeamPolicy<ExecSpace>;
  const int W = int(out.extent(1));
  const bool with_gelu = act.extent(0) > 0;
  mlp_detail::for_group_chunks(offsets, [&](const GroupRows& rows) {
    Kokkos::parallel_for(
        "moe::grouped_bias", Policy(exec, rows.off[rows.count] - rows.off[0], Kokkos::AUTO),
        KOKKOS_LAMBDA(const Policy::member_type& team) {
          const int r = rows.off[0] + team.league_rank();
          const Real* bias = &b(Index(rows.group_of(r)) * W);
          Real* o = &out(r, 0);
          if (with_gelu) {
            Real* a = &act(r, 0);
            Kokkos::parallel_for(Kokkos::TeamThreadRange(team, W), [&](const int c) {
              const Real v = o[c] + bias[c];
              o[c] = v;
              a[c] = mlp_detail::gelu(v);
            });
          } else {
            Kokkos::parallel_for(Kokkos::TeamThreadRange(team, W),
                                 [&](const int c) { o[c] += bias[c]; });
          }
        });
  });
}

// dx += gelu'(x) * dout.
template <class Real>
void gelu_backward(const ExecSpace& exec, View1<const Real> x, View1<const Real> dout,
                   View1<Real> dx, Index n) {
  Kokkos::parallel_for(
      "moe::gelu_backward", range(exec, n),
      KOKKOS_LAMBDA(const Index i) { dx(i) += mlp_detail::gelu_grad(x(i)) * dout(i); });
}

// The tensors of G MLPs of width C -> F -> C, flat and group-major: w1 [G,C,F], b1 [G,F],
// w2 [G,F,C], b2 [G,C] (parameters, or their gradients).
template <class Real>
struct MlpWeights {
  View1<Real> w1, b1, w2, b2;
  MlpWeights() = default;
  MlpWeights(View1<Real> w1_, View1<Real> b1_, View1<Real> w2_, View1<Real> b2_)
      : w1(w1_), b1(b1_), w2(w2_), b2(b2_) {}
  template <class Other>  // MlpWeights<T> -> MlpWeights<const T>
  MlpWeights(const MlpWeights<Other>& o) : w1(o.w1), b1(o.b1), w2(o.w2), b2(o.b2) {}
  // Group g's matrices and bias vectors.
  View2<Real> w1_of(int g, int C, int F) const {
    return View2<Real>(w1.data() + g * Index(C) * F, C, F);
  }
  View2<Real> w2_of(int g, int C, int F) const {
    return View2<Real>(w2.data() + g * Index(C) * F, F, C);
  }
  View1<Real> b1_of(int g, int F) const { return slice(b1, Index(g) * F, F); }
  View1<Real> b2_of(int g, int C) const { return slice(b2, Index(g) * C, C); }
};

// What the forward keeps for the backward, [M,F] each: pre = x w1 + b1 and act = gelu(pre).
template <class Real>
struct MlpActivations {
  View2<Real> pre, act;
};

// Per group g (rows [offsets[g], offsets[g+1]) of x [M,C]):
//   pre = x w1_g + b1_g, act = gelu(pre), out = act w2_g + b2_g.
// C = x.extent(1), F = a.pre.extent(1). Empty groups issue no work.
template <class Real>
void mlp_forward(const ExecSpace& exec, View2<const Real> x, const MlpWeights<const Real>& w,
                 const MlpActivations<Real>& a, View2<Real> out, const std::vector<int>& offsets) {
  const int G = mlp_detail::mlp_groups(offsets);
  const int C = int(x.extent(1)), F = int(a.pre.extent(1));
  // The products per group; each bias pass is one launch over all the groups' rows.
  for (int g = 0; g < G; ++g) {
    const int n = offsets[g + 1] - offsets[g];
    if (n == 0) continue;
    gemm<Real>(false, false, n, F, C, Real(1), row_block(x, offsets[g], n).data(), C,
               w.w1_of(g, C, F).data(), F, Real(0), row_block(a.pre, offsets[g], n).data(), F);
  }
  grouped_bias_forward<Real>(exec, w.b1, a.pre, a.act, offsets);
  for (int g = 0; g < G; ++g) {
    const int n = offsets[g + 1] - offsets[g];
    if (n == 0) continue;
    gemm<Real>(false, false, n, C, F, Real(1), row_block(a.act, offsets[g], n).data(), F,
               w.w2_of(g, C, F).data(), C, Real(0), row_block(out, offsets[g], n).data(), C);
  }
  grouped_bias_forward<Real>(exec, w.b2, out, View2<Real>(), offsets);
}

// Backward of mlp_forward given dout [M,C]: accumulates into dx [M,C] (or writes it, with
// DxMode::Overwrite: every row belongs to a group) and into the gradients d (same layout as the
// weights). dpre [M,F] is scratch, overwritten.
template <class Real>
void mlp_backward(const ExecSpace& exec, View2<const Real> dout, View2<const Real> x,
                  const MlpActivations<const Real>& a, const MlpWeights<const Real>& w,
                  View2<Real> dpre, View2<Real> dx, const MlpWeights<Real>& d,
                  const std::vector<int>& offsets, DxMode dx_mode = DxMode::Accumulate) {
  const int G = mlp_detail::mlp_groups(offsets);
  const int C = int(x.extent(1)), F = int(a.pre.extent(1));
  for (int g = 0; g < G; ++g) {
    const int n = offsets[g + 1] - offsets[g];
    if (n == 0) continue;
    const auto dout_g = row_block(dout, offsets[g], n);
    // dact = dout w2_g^T, written with beta = 0 into the dpre scratch: this is the '=' that
    // saves zeroing it first (linear_backward would accumulate).
    gemm<Real>(false, true, n, F, C, Real(1), dout_g.data(), C, w.w2_of(g, C, F).data(), C, Real(0),
               row_block(dpre, offsets[g], n).data(), F);
    // dw2_g += act^T dout, db2_g += column sums of dout (no dx: handled just above).
    linear_backward<Real>(exec, dout_g, row_block(a.act, offsets[g], n), w.w2_of(g, C, F),
                          View2<Real>(), d.w2_of(g, C, F), d.b2_of(g, C));
  }
  // dpre = gelu'(pre) * dact, in place (dpre holds dact), one kernel over all grouped rows.
  {
    const Index r0 = offsets.front(), m = (Index(offsets.back()) - r0) * F;
    View1<Real> dp(dpre.data() + r0 * F, m);
    View1<const Real> p(a.pre.data() + r0 * F, m);
    Kokkos::parallel_for(
        "moe::gelu_backward_inplace", range(exec, m),
        KOKKOS_LAMBDA(const Index i) { dp(i) = mlp_detail::gelu_grad(p(i)) * dp(i); });
  }
  for (int g = 0; g < G; ++g) {
    const int n = offsets[g + 1] - offsets[g];
    if (n == 0) continue;
    // dx_g += dpre w1_g^T, dw1_g += x^T dpre, db1_g += column sums of dpre.
    linear_backward<Real>(exec, row_block(View2<const Real>(dpre), offsets[g], n),
                          row_block(x, offsets[g], n), w.w1_of(g, C, F),
                          row_block(dx, offsets[g], n), d.w1_of(g, C, F), d.b1_of(g, F), dx_mode);
  }
}

}  // namespace moe
