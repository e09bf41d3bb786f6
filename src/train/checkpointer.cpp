#include "train/checkpointer.hpp"

#include <stdexcept>
#include <string>

#include "train/device_batch.hpp"
#include "train/run_schema.hpp"

namespace moe {

Checkpointer::Checkpointer(const Config& cfg, RunFile* run, Transformer<float>& model,
                           Optimizer& optimizer, Evaluator& evaluator)
    : cfg_(cfg), run_(run), model_(model), optimizer_(optimizer), evaluator_(evaluator) {}

void Checkpointer::save(std::int64_t next_step) {
  optimizer_.gather_state();
  if (!run_) return;
  run_->flush();
  Checkpoint ck;
  ck.next_step = next_step;
  ck.config_text = config_to_toml(cfg_);
  ck.shape = model_shape(cfg_.model);
  const Index n = model_.num_params();
  ck.params = host_copy(model_.params(), n);
  ck.adam_m = host_copy(optimizer_.first_moment(), n);
  ck.adam_v = host_copy(optimizer_.second_moment(), n);
  ck.series_rows = run_->series_rows();
  ck.run_file_image = run_->image();  // a resume rebuilds the run file from this
  ck.probe_top1 = evaluator_.probe_top1();
  ck.last_val_loss = evaluator_.last_val_loss();
  write_checkpoint(checkpoint_path(run_->path()), ck);
  run_->set_attr(schema::kCheckpointStep, std::int64_t(next_step));
  run_->save();  // the file on disk is then at least as recent as the checkpoint
}

std::int64_t Checkpointer::restore(const Checkpoint& ck) {
  const Index n = model_.num_params();
  if (Index(ck.params.size()) != n || Index(ck.adam_m.size()) != n || Index(ck.adam_v.size()) != n)
    throw std::runtime_error("checkpoint holds " + std::to_string(ck.params.size()) +
                             " parameters, the model has " + std::to_string(n));
  auto load = [n](Buffer<float>& dst, const std::vector<float>& src) {
    Kokkos::View<const float*, Kokkos::HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>> h(
        src.data(), std::size_t(n));
    Kokkos::deep_copy(Kokkos::subview(dst, std::make_pair(Index(0), n)), h);
  };
  load(model_.params(), ck.params);
  load(optimizer_.first_moment(), ck.adam_m);
  load(optimizer_.second_moment(), ck.adam_v);
  evaluator_.restore(ck.probe_top1, ck.last_val_loss);
  return ck.next_step;
}

}  // namespace moe
