#include "train/trainer.hpp"

#include <chrono>
#include <cmath>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <stdexcept>

#include "adamw.hpp"
#include "grad_clip.hpp"
#include "train/schedule.hpp"

namespace moe {

Trainer::Trainer(const Config& cfg, const Corpus& corpus, RunFile* run, std::ostream* log)
    : cfg_(cfg),
      corpus_(corpus),
      run_(run),
      log_(log),
      model_(cfg, cfg.train.batch_size, /*force_moe=*/false, &corpus.train_counts) {
  model_.init_parameters(cfg.train.seed);
  m_ = Buffer<float>("moe::adam.m", model_.num_params());
  v_ = Buffer<float>("moe::adam.v", model_.num_params());
  const Index N = Index(cfg.train.batch_size) * cfg.model.seq_len;
  tokens_ = Buffer<int>("moe::batch.tokens", N);
  targets_ = Buffer<int>("moe::batch.targets", N);
}

void Trainer::upload(const Batch& b) {
  // The one host-to-device copy of a step: the batch's token ids.
  auto ht = Kokkos::create_mirror_view(tokens_);
  auto hg = Kokkos::create_mirror_view(targets_);
  for (std::size_t i = 0; i < b.tokens.size(); ++i) {
    ht(i) = b.tokens[i];
    hg(i) = b.targets[i];
  }
  Kokkos::deep_copy(tokens_, ht);
  Kokkos::deep_copy(targets_, hg);
}

double Trainer::step(std::int64_t step) {
  upload(train_batch(corpus_, cfg_, step));
  model_.zero_grad();
  last_ = model_.forward(tokens_, targets_, /*training=*/true, step);
  if (!std::isfinite(last_.loss))
    throw std::runtime_error("non-finite training loss at step " + std::to_string(step));
  model_.backward();

  const Index n = model_.num_params();
  View1<float> grads = slice(model_.grads(), 0, n);
  last_norm_ = clip_grad_norm<float>(grads, n, cfg_.train.grad_clip);
  if (!std::isfinite(last_norm_))
    throw std::runtime_error("non-finite gradient norm at step " + std::to_string(step));
  last_lr_ = learning_rate(cfg_.train, step);
  const int t = int(step + 1);  // AdamW bias correction counts steps from 1
  for (const TensorInfo& ti : model_.layout().tensors) {
    adamw_update<float>(slice(model_.params(), ti.offset, ti.size),
                        slice(model_.grads(), ti.offset, ti.size), slice(m_, ti.offset, ti.size),
                        slice(v_, ti.offset, ti.size), ti.size, t, float(last_lr_), 0.9f, 0.95f,
                        1e-8f, ti.decay ? float(cfg_.train.weight_decay) : 0.0f);
  }
  return last_.loss;
}

double Trainer::evaluate() {
  const int nb = num_val_batches(corpus_, cfg_);
  double total = 0;
  for (int i = 0; i < nb; ++i) {
    upload(val_batch(corpus_, cfg_, i));
    total += model_.forward(tokens_, targets_, /*training=*/false, 0).loss;
  }
  return total / nb;
}

void Trainer::record_step(std::int64_t step, const ForwardStats& st, double lr, double grad_norm,
                          double tokens_per_s) {
  if (!run_) return;
  run_->append("/train/step", std::int64_t(step));
  run_->append("/train/loss", st.loss);
  run_->append("/train/aux_loss", st.aux.weighted);
  run_->append("/train/balance_loss", st.aux.balance);
  run_->append("/train/z_loss", st.aux.z);
  run_->append("/train/lr", lr);
  run_->append("/train/grad_norm", grad_norm);
  run_->append("/train/tokens_per_s", tokens_per_s);
  for (int i = 0; i < model_.num_moe_layers(); ++i) {
    const auto& layer = model_.moe_layer(i);
    const std::string g = "/routing/layer_" + std::to_string(model_.moe_block(i));
    auto counts = Kokkos::create_mirror_view(layer.routing().counts);
    Kokkos::deep_copy(counts, layer.routing().counts);
    std::vector<std::int64_t> row(layer.num_experts());
    for (int e = 0; e < layer.num_experts(); ++e) row[e] = counts(e);
    run_->append_row(g + "/tokens_per_expert", row);
    run_->append(g + "/dropped", std::int64_t(layer.plan().dropped));
  }
}

TrainSummary Trainer::train(std::int64_t first, std::int64_t max_steps) {
  TrainSummary sum;
  const std::int64_t total = cfg_.train.steps;
  const std::int64_t end = max_steps < 0 ? total : std::min(total, first + max_steps);
  const double tokens_per_step = double(cfg_.train.batch_size) * cfg_.model.seq_len;
  const int log_every = std::max<std::int64_t>(1, total / 20);
  using clock = std::chrono::steady_clock;

  for (std::int64_t s = first; s < end; ++s) {
    const auto t0 = clock::now();
    step(s);
    ExecSpace().fence();
    const double secs = std::chrono::duration<double>(clock::now() - t0).count();
    const double tps = tokens_per_step / secs;
    record_step(s, last_, last_lr_, last_norm_, tps);
    sum.last_loss = last_.loss;
    sum.steps_done = s + 1 - first;

    const bool last_step = (s + 1 == total);
    const bool eval_now =
        last_step || (cfg_.train.eval_every > 0 && (s + 1) % cfg_.train.eval_every == 0);
    if (log_ && (s % log_every == 0 || eval_now)) {
      *log_ << "step " << std::setw(6) << s + 1 << "/" << total << "  loss " << std::fixed
            << std::setprecision(4) << last_.loss << "  aux " << std::setprecision(4)
            << last_.aux.weighted << "  lr " << std::scientific << std::setprecision(2)
            << last_lr_ << "  grad_norm " << std::fixed << std::setprecision(3) << last_norm_
            << "  tokens/s " << std::setprecision(0) << tps << "\n"
            << std::defaultfloat << std::flush;
    }
    if (eval_now) {
      const double vl = evaluate();
      sum.last_val_loss = vl;
      if (run_) {
        run_->append("/eval/step", std::int64_t(s + 1));
        run_->append("/eval/val_loss", vl);
        run_->append("/eval/val_ppl", std::exp(vl));
        run_->flush();
      }
      if (log_)
        *log_ << "eval   " << std::setw(6) << s + 1 << "  val_loss " << std::fixed
              << std::setprecision(4) << vl << "  val_ppl " << std::setprecision(2)
              << std::exp(vl) << "\n"
              << std::defaultfloat << std::flush;
    }
  }
  sum.finished = (end == total);
  return sum;
}

}  // namespace moe
