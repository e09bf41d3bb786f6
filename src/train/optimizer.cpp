#include "train/optimizer.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include "adamw.hpp"
#include "grad_clip.hpp"
#include "train/schedule.hpp"

namespace moe {

std::pair<Index, Index> owned_range(const TensorInfo& t, const Comm& comm) {
  if (!t.expert) return {t.offset, t.size};
  const Index E = t.shape[0], per_expert = t.size / E;
  const Index local = E / comm.ep_size(), first = local * comm.ep_rank();
  return {t.offset + first * per_expert, local * per_expert};
}

Optimizer::Optimizer(const TrainConfig& train, Transformer<float>& model, const Comm& comm)
    : train_(train),
      model_(model),
      comm_(comm),
      m_(std::string("moe::adam.m"), std::size_t(model.num_params())),
      v_(std::string("moe::adam.v"), std::size_t(model.num_params())) {
  // Owned ranges in layout order; neighbours with the same flags merge into one segment.
  std::vector<Index> begins[3], sizes[3];
  std::vector<float> flags[3];
  auto add = [&](int set, Index off, Index size, float flag) {
    if (size == 0) return;
    if (!begins[set].empty() && begins[set].back() + sizes[set].back() == off &&
        flags[set].back() == flag) {
      sizes[set].back() += size;
      return;
    }
    begins[set].push_back(off);
    sizes[set].push_back(size);
    flags[set].push_back(flag);
  };
  for (const TensorInfo& ti : model.layout().tensors) {
    const auto [off, size] = owned_range(ti, comm);
    add(0, off, size, ti.decay ? 1.0f : 0.0f);
    add(ti.expert ? 2 : 1, off, size, 0.0f);
  }
  owned_ = Segments(begins[0], sizes[0], flags[0]);
  dense_ = Segments(begins[1], sizes[1], flags[1]);
  experts_ = Segments(begins[2], sizes[2], flags[2]);
}

OptimizerStep Optimizer::apply(std::int64_t step) {
  sync_gradients();
  OptimizerStep out;
  out.grad_norm = gradient_norm();
  if (!std::isfinite(out.grad_norm))
    throw std::runtime_error("non-finite gradient norm at step " + std::to_string(step));
  out.clipped = train_.grad_clip > 0 && out.grad_norm > train_.grad_clip;  // clip_to_norm's test
  // Clipping scales the gradients by grad_clip / norm; the AdamW launch applies the factor.
  const float clip_scale = out.clipped ? float(train_.grad_clip / out.grad_norm) : 1.0f;
  out.lr = learning_rate(train_, step);
  const int t = int(step + 1);  // AdamW bias correction counts steps from 1
  // Each rank updates the dense tensors and its own experts, all in one launch.
  const Index n = model_.num_params();
  const AdamW<float> h{t, float(out.lr), 0.9f, 0.95f, 1e-8f, float(train_.weight_decay)};
  adamw_update_segments<float>(exec_, slice(model_.params(), 0, n), slice(model_.grads(), 0, n),
                               slice(m_, 0, n), slice(v_, 0, n), h, owned_, clip_scale);
  return out;
}

void Optimizer::sync_gradients() {
  if (!comm_.distributed()) return;
  if (comm_.ep_size() <= 1) {  // every tensor is summed over every rank: one call
    comm_.sum<float>(slice(model_.grads(), 0, model_.num_params()), model_.num_params(),
                     comm_.world());
    return;
  }
  Index run_begin = 0, run_size = 0;  // consecutive dense tensors
  auto flush = [&] {
    if (run_size > 0)
      comm_.sum<float>(slice(model_.grads(), run_begin, run_size), run_size, comm_.world());
    run_size = 0;
  };
  for (const TensorInfo& ti : model_.layout().tensors) {
    if (!ti.expert) {
      if (run_size == 0) run_begin = ti.offset;
      run_size += ti.size;
      continue;
    }
    flush();
    const auto [off, size] = owned_range(ti, comm_);
    comm_.sum<float>(slice(model_.grads(), off, size), size, comm_.replica());
  }
  flush();
}

void Optimizer::sync_gradients_per_tensor() {
  if (!comm_.distributed()) return;
  // Dense tensors: every rank saw different tokens; sum over all ranks. Experts: the owner has
  // every token routed to them within its expert-parallel group; sum over the groups.
  for (const TensorInfo& ti : model_.layout().tensors) {
    const auto [off, size] = owned_range(ti, comm_);
    comm_.sum<float>(slice(model_.grads(), off, size), size,
                     ti.expert ? comm_.replica() : comm_.world());
  }
}

double Optimizer::gradient_norm() const {
  // Global norm: dense tensors are identical on every rank after the sum; each expert is
  // counted once, on its owner, and the owners' parts are summed over the expert group.
  // With one expert group every rank owns everything: one reduction over all of it.
  const Index n = model_.num_params();
  const View1<const float> grads = slice(model_.grads(), 0, n);
  double dense = 0, experts = 0;
  if (comm_.ep_size() <= 1) {
    dense = grad_norm_squared_segments<float>(exec_, grads, owned_);
  } else {
    dense = grad_norm_squared_segments<float>(exec_, grads, dense_);
    experts = comm_.sum(grad_norm_squared_segments<float>(exec_, grads, experts_), comm_.ep());
  }
  return std::sqrt(dense + experts);
}

void Optimizer::gather_state() {
  gather_experts(model_.params());
  gather_experts(m_);
  gather_experts(v_);
}

void Optimizer::gather_experts(Buffer<float>& buf) {
  // Expert blocks are in ep-rank order, so one in-place all-gather per expert tensor.
  if (comm_.ep_size() <= 1) return;
  for (const TensorInfo& ti : model_.layout().tensors) {
    if (!ti.expert) continue;
    const Index block = owned_range(ti, comm_).second;
    comm_.allgather_blocks<float>(slice(buf, ti.offset, ti.size), block, comm_.ep());
  }
}

}  // namespace moe
