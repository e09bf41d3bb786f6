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
      v_(std::string("moe::adam.v"), std::size_t(model.num_params())) {}

OptimizerStep Optimizer::apply(std::int64_t step) {
  sync_gradients();
  OptimizerStep out;
  out.grad_norm = clip_gradients();
  if (!std::isfinite(out.grad_norm))
    throw std::runtime_error("non-finite gradient norm at step " + std::to_string(step));
  out.clipped = train_.grad_clip > 0 && out.grad_norm > train_.grad_clip;  // clip_to_norm's test
  out.lr = learning_rate(train_, step);
  const int t = int(step + 1);  // AdamW bias correction counts steps from 1
  for (const TensorInfo& ti : model_.layout().tensors) {
    // Each rank updates the dense tensors and its own experts.
    const auto [off, size] = owned_range(ti, comm_);
    const AdamW<float> h{t,     float(out.lr), 0.9f,
                         0.95f, 1e-8f,         ti.decay ? float(train_.weight_decay) : 0.0f};
    adamw_update<float>(exec_, slice(model_.params(), off, size), slice(model_.grads(), off, size),
                        slice(m_, off, size), slice(v_, off, size), h);
  }
  return out;
}

void Optimizer::sync_gradients() {
  if (!comm_.distributed()) return;
  // Dense tensors: every rank saw different tokens; sum over all ranks. Experts: the owner has
  // every token routed to them within its expert-parallel group; sum over the groups.
  for (const TensorInfo& ti : model_.layout().tensors) {
    const auto [off, size] = owned_range(ti, comm_);
    comm_.sum<float>(slice(model_.grads(), off, size), size,
                     ti.expert ? comm_.replica() : comm_.world());
  }
}

double Optimizer::clip_gradients() {
  // Global norm: dense tensors are identical on every rank after the sum; each expert is
  // counted once, on its owner, and the owners' parts are summed over the expert group.
  double dense = 0, experts = 0;
  for (const TensorInfo& ti : model_.layout().tensors) {
    const auto [off, size] = owned_range(ti, comm_);
    (ti.expert ? experts : dense) +=
        grad_norm_squared<float>(exec_, slice(model_.grads(), off, size));
  }
  experts = comm_.sum(experts, comm_.ep());
  const double norm = std::sqrt(dense + experts);
  const Index n = model_.num_params();
  clip_to_norm<float>(exec_, slice(model_.grads(), 0, n), norm, train_.grad_clip);
  return norm;
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
