// The optimizer: gradient synchronisation over the ranks, clipping to a global norm, and AdamW.
// Under expert parallelism every rank updates the dense tensors and only its own experts (the
// experts of its ep-rank); the moments of the other experts stay stale until gather_state()
// completes every rank's copy (before a checkpoint).
#pragma once

#include <cstdint>
#include <utility>

#include "config/config.hpp"
#include "model/transformer.hpp"
#include "parallel/comm.hpp"
#include "segments.hpp"

namespace moe {

// [offset, size) of the part of tensor `t` this rank owns: the whole tensor when dense, its own
// experts' blocks when t is an expert tensor (E / ep_size experts from ep_rank * E / ep_size on).
std::pair<Index, Index> owned_range(const TensorInfo& t, const Comm& comm);

struct OptimizerStep {
  double lr = 0;         // the learning rate applied
  double grad_norm = 0;  // global gradient norm before clipping
  bool clipped = false;  // clipping scaled the gradients down (grad_norm > train.grad_clip > 0)
};

class Optimizer {
 public:
  Optimizer(const TrainConfig& train, Transformer<float>& model, const Comm& comm);

  // One update of the model's parameters from its gradients for training step `step`: sums the
  // gradients over the ranks, clips them to train.grad_clip and applies AdamW (the clipping
  // factor is applied inside the AdamW launch; the gradient buffer keeps the unclipped sum). Throws
  // std::runtime_error when the gradient norm is not finite (nothing is updated then).
  OptimizerStep apply(std::int64_t step);

  // Collective over the expert-parallel group: every rank's parameters and moments get every
  // expert's current values.
  void gather_state();

  // The gradient sum over the ranks, in as few calls as the layout allows: with one expert
  // group, the whole flat buffer in one all-reduce; otherwise one per run of consecutive dense
  // tensors (over all ranks) and one per expert tensor's owned block (over its replicas).
  void sync_gradients();
  // The same sum, one all-reduce per tensor (the reference the bucketed sum is tested against).
  void sync_gradients_per_tensor();

  Buffer<float>& first_moment() { return m_; }
  Buffer<float>& second_moment() { return v_; }

 private:
  // The global gradient norm (after the sum over the ranks).
  double gradient_norm() const;
  void gather_experts(Buffer<float>& buf);

  ExecSpace exec_;  // where the optimizer's kernels run
  const TrainConfig& train_;
  Transformer<float>& model_;
  const Comm& comm_;
  Buffer<float> m_, v_;  // AdamW moments, laid out like the parameters
  // The parts of the flat buffers this rank updates (flag: weight decay applies), and the same
  // split into dense and expert parts, each walked by one kernel launch.
  Segments owned_, dense_, experts_;
};

}  // namespace moe
