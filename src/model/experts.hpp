// The experts of an MoE layer: E GELU MLPs (C -> F -> C), run as one grouped computation over
// rows already grouped by expert. A rank may hold a contiguous range of the experts (expert
// parallelism); the rows it gets are those of its experts only.
#pragma once

#include <vector>

#include "common.hpp"

namespace moe {

// Views of one FFN's tensors (parameters, or their gradients) in the flat buffers.
template <class Real>
struct FfnTensors {
  View1<Real> router_w;  // [C,E], empty for a dense FFN or a router without weights
  View1<Real> w1, b1, w2, b2;
};

// Which experts the rows on this rank belong to: experts [first, first + count), expert
// first + g owning rows [offsets[g], offsets[g + 1]) (host copy, count + 1 entries).
struct ExpertRows {
  int first = 0, count = 0;
  const std::vector<int>* offsets = nullptr;
  Index rows() const { return offsets->back(); }
};

template <class Real>
class GroupedExperts {
 public:
  GroupedExperts(int C, int F) : C_(C), F_(F) {}

  // y [rows, C] = each row's expert MLP applied to x [rows, C]; p holds every expert's tensors.
  // Keeps x and the activations for backward.
  void forward(const FfnTensors<Real>& p, const ExpertRows& rows, View1<const Real> x,
               View1<Real> y);
  // For the last forward, given dy [rows, C]: dx += d/dx (dx [rows, C]), and the gradients of
  // these experts' tensors += into g.
  void backward(const FfnTensors<Real>& p, const FfnTensors<Real>& g, const ExpertRows& rows,
                View1<const Real> dy, View1<Real> dx);

 private:
  // The tensors of experts [rows.first, rows.first + rows.count) within every expert's.
  FfnTensors<Real> local(const FfnTensors<Real>& t, const ExpertRows& rows) const;

  ExecSpace exec_;  // where the experts' kernels run
  int C_, F_;
  View1<const Real> x_;            // the last forward's input rows
  Buffer<Real> pre_, act_, dpre_;  // [rows, F]
};

}  // namespace moe
