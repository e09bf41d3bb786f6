#include "train/trainer.hpp"

#include <chrono>
#include <cmath>
#include <iomanip>
#include <limits>
#include <ostream>
#include <stdexcept>

#include "adamw.hpp"
#include "grad_clip.hpp"
#include "router.hpp"
#include "train/schedule.hpp"

namespace moe {
namespace {

constexpr int kFrequencyBuckets = 5;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

template <class V>
std::vector<typename V::non_const_value_type> host_copy(const V& v, Index n) {
  using T = typename V::non_const_value_type;
  Kokkos::View<T*, Kokkos::HostSpace> h(std::string("moe::host_copy"), std::size_t(n));
  Kokkos::deep_copy(h, Kokkos::subview(v, std::make_pair(Index(0), n)));
  return std::vector<T>(h.data(), h.data() + n);
}

// The ratio that splits frequent from infrequent tokens in the metrics: MaskMoE's mask_ratio
// when set, else one half.
double frequency_split(const RouterConfig& r) { return r.mask_ratio > 0 ? r.mask_ratio : 0.5; }

std::string layer_group(const Transformer<float>& m, int i) {
  return "layer_" + std::to_string(m.moe_block(i));
}

}  // namespace

Trainer::Trainer(const Config& cfg, const Corpus& corpus, RunFile* run, std::ostream* log)
    : cfg_(cfg),
      corpus_(corpus),
      run_(run),
      log_(log),
      model_(cfg, cfg.train.batch_size, /*force_moe=*/false, &corpus.train_counts) {
  model_.init_parameters(cfg.train.seed);
  model_.set_timer(&timer_);
  m_ = Buffer<float>(std::string("moe::adam.m"), std::size_t(model_.num_params()));
  v_ = Buffer<float>(std::string("moe::adam.v"), std::size_t(model_.num_params()));
  const auto N = std::size_t(cfg.train.batch_size) * cfg.model.seq_len;
  tokens_ = Buffer<int>(std::string("moe::batch.tokens"), N);
  targets_ = Buffer<int>(std::string("moe::batch.targets"), N);
  top1_idx_ = Buffer<int>(std::string("moe::probe.top1"), N);
  top1_val_ = Buffer<float>(std::string("moe::probe.top1_val"), N);
  buckets_ = frequency_buckets(corpus.train_counts, kFrequencyBuckets);
  infrequent_ = infrequent_tokens(corpus.train_counts, frequency_split(cfg.router),
                                  cfg.router.mask_by);
  probe_ = val_batch(corpus, cfg, 0);
  if (run_) {
    run_->write_array("/eval/bucket_min_count", buckets_.min_count);
    run_->write_array("/eval/bucket_types", buckets_.types);
    run_->set_attr("/eval/frequency_split", frequency_split(cfg.router));
  }
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
  timer_.start();
  upload(train_batch(corpus_, cfg_, step));
  model_.zero_grad();
  last_ = model_.forward(tokens_, targets_, /*training=*/true, step);
  if (!std::isfinite(last_.loss))
    throw std::runtime_error("non-finite training loss at step " + std::to_string(step));
  model_.backward();

  const Index n = model_.num_params();
  last_norm_ = clip_grad_norm<float>(slice(model_.grads(), 0, n), n, cfg_.train.grad_clip);
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
  timer_.lap(Phase::Optimizer);
  phase_seconds_ = timer_.take();
  return last_.loss;
}

std::vector<std::vector<std::int32_t>> Trainer::probe_top1() {
  std::vector<std::vector<std::int32_t>> out;
  const int N = cfg_.train.batch_size * cfg_.model.seq_len;
  for (int i = 0; i < model_.num_moe_layers(); ++i) {
    const auto& layer = model_.moe_layer(i);
    // Top-1 expert = argmax of the router distribution the layer used.
    topk_rows<float>(layer.routing().probs, top1_idx_, top1_val_, N, layer.num_experts(), 1);
    auto idx = host_copy(top1_idx_, N);
    out.emplace_back(idx.begin(), idx.end());
  }
  return out;
}

double Trainer::evaluate(std::int64_t steps_done) {
  const int nb = num_val_batches(corpus_, cfg_);
  const int N = cfg_.train.batch_size * cfg_.model.seq_len;
  std::vector<double> bucket_loss(kFrequencyBuckets, 0.0), bucket_n(kFrequencyBuckets, 0.0);
  double cls_loss[2] = {0, 0}, cls_n[2] = {0, 0};  // [frequent, infrequent]
  double total = 0;
  for (int i = 0; i < nb; ++i) {
    const Batch b = val_batch(corpus_, cfg_, i);
    upload(b);
    total += model_.forward(tokens_, targets_, /*training=*/false, steps_done).loss;
    if (!run_) continue;
    const auto losses = host_copy(model_.token_losses(), N);
    for (int n = 0; n < N; ++n) {
      const int tok = b.targets[n];
      bucket_loss[buckets_.bucket_of[tok]] += losses[n];
      bucket_n[buckets_.bucket_of[tok]] += 1;
      const int c = infrequent_[tok] ? 1 : 0;
      cls_loss[c] += losses[n];
      cls_n[c] += 1;
    }
  }
  const double val = total / nb;
  last_val_loss_ = val;
  if (!run_) return val;

  const auto t0 = clock_type::now();
  run_->append("/eval/step", std::int64_t(steps_done));
  run_->append("/eval/val_loss", val);
  run_->append("/eval/val_ppl", std::exp(val));
  std::vector<double> ppl(kFrequencyBuckets);
  for (int b = 0; b < kFrequencyBuckets; ++b)
    ppl[b] = bucket_n[b] > 0 ? std::exp(bucket_loss[b] / bucket_n[b]) : kNaN;
  run_->append_row("/eval/bucket_ppl", ppl);
  run_->append("/eval/ppl_frequent", cls_n[0] > 0 ? std::exp(cls_loss[0] / cls_n[0]) : kNaN);
  run_->append("/eval/ppl_infrequent", cls_n[1] > 0 ? std::exp(cls_loss[1] / cls_n[1]) : kNaN);

  // Routing fluctuation on the fixed probe set (StableMoE): the share of probe tokens whose
  // top-1 expert changed since the previous evaluation; NaN at the first one.
  upload(probe_);
  model_.forward(tokens_, targets_, /*training=*/false, steps_done);
  auto top1 = probe_top1();
  for (int i = 0; i < model_.num_moe_layers(); ++i) {
    double changed[3] = {0, 0, 0}, count[3] = {0, 0, 0};  // all, frequent, infrequent
    if (prev_top1_.size() == top1.size()) {
      for (int n = 0; n < N; ++n) {
        const int c = infrequent_[probe_.tokens[n]] ? 2 : 1;
        const double d = top1[i][n] != prev_top1_[i][n] ? 1.0 : 0.0;
        changed[0] += d, count[0] += 1;
        changed[c] += d, count[c] += 1;
      }
    }
    std::vector<double> row(3);
    for (int c = 0; c < 3; ++c) row[c] = count[c] > 0 ? changed[c] / count[c] : kNaN;
    run_->append_row("/eval/fluctuation/" + layer_group(model_, i), row);
  }
  prev_top1_ = std::move(top1);
  record_trace("/trace/eval", steps_done);
  run_->flush();
  record_seconds_ += seconds_since(t0);
  return val;
}

void Trainer::record_trace(const std::string& group, std::int64_t step) {
  // Token ids, assigned experts (-1: none) and gates of the last forward, per MoE layer.
  const Index N = Index(cfg_.train.batch_size) * cfg_.model.seq_len;
  run_->append(group + "/step", std::int64_t(step));
  const auto tok = host_copy(tokens_, N);
  run_->append_row(group + "/tokens", std::vector<std::int64_t>(tok.begin(), tok.end()));
  for (int i = 0; i < model_.num_moe_layers(); ++i) {
    const auto& r = model_.moe_layer(i).routing();
    const Index NK = N * model_.moe_layer(i).router().slots_per_token();
    const auto experts = host_copy(r.expert_of, NK);
    const auto gates = host_copy(r.gate, NK);
    const std::string g = group + "/" + layer_group(model_, i);
    run_->append_row(g + "/experts", std::vector<std::int64_t>(experts.begin(), experts.end()));
    run_->append_row(g + "/gates", std::vector<double>(gates.begin(), gates.end()));
  }
}

void Trainer::record_step(std::int64_t step, double tokens_per_s) {
  run_->append("/train/step", std::int64_t(step));
  run_->append("/train/loss", last_.loss);
  run_->append("/train/aux_loss", last_.aux.weighted);
  run_->append("/train/balance_loss", last_.aux.balance);
  run_->append("/train/z_loss", last_.aux.z);
  run_->append("/train/cluster_loss", last_.aux.cluster);
  run_->append("/train/lr", last_lr_);
  run_->append("/train/grad_norm", last_norm_);
  run_->append("/train/tokens_per_s", tokens_per_s);
  for (int p = 0; p < kNumPhases; ++p)
    run_->append(std::string("/train/time/") + phase_name(p), phase_seconds_[p]);
  const int N = cfg_.train.batch_size * cfg_.model.seq_len;
  for (int i = 0; i < model_.num_moe_layers(); ++i) {
    const auto& layer = model_.moe_layer(i);
    const std::string g = "/routing/" + layer_group(model_, i);
    const auto counts = host_copy(layer.routing().counts, layer.num_experts());
    std::vector<std::int64_t> row(counts.begin(), counts.end());
    double total = 0, most = 0;
    for (auto c : row) total += double(c), most = std::max(most, double(c));
    run_->append_row(g + "/tokens_per_expert", row);
    run_->append(g + "/dropped", std::int64_t(layer.plan().dropped));
    run_->append(g + "/max_over_mean_load", total > 0 ? most / (total / row.size()) : kNaN);
    run_->append(g + "/router_entropy", layer.router_entropy(N));
  }
}

void Trainer::save_checkpoint(std::int64_t next_step) {
  if (!run_) return;
  run_->flush();
  Checkpoint ck;
  ck.next_step = next_step;
  ck.config_text = config_to_toml(cfg_);
  const ModelConfig& m = cfg_.model;
  ck.shape = {{"model.vocab_size", m.vocab_size}, {"model.d_model", m.d_model},
              {"model.n_layers", m.n_layers},     {"model.n_heads", m.n_heads},
              {"model.d_ff", m.d_ff},             {"model.seq_len", m.seq_len},
              {"model.num_experts", m.num_experts}, {"model.top_k", m.top_k},
              {"model.moe_every", m.moe_every}};
  const Index n = model_.num_params();
  ck.params = host_copy(model_.params(), n);
  ck.adam_m = host_copy(m_, n);
  ck.adam_v = host_copy(v_, n);
  ck.series_rows = run_->series_rows();
  ck.probe_top1 = prev_top1_;
  ck.last_val_loss = last_val_loss_;
  write_checkpoint(checkpoint_path(run_->path()), ck);
  run_->set_attr("/checkpoint_step", std::int64_t(next_step));
  run_->flush();
}

std::int64_t Trainer::restore(const Checkpoint& ck) {
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
  load(m_, ck.adam_m);
  load(v_, ck.adam_v);
  prev_top1_ = ck.probe_top1;
  last_val_loss_ = ck.last_val_loss;
  return ck.next_step;
}

TrainSummary Trainer::train(std::int64_t first, std::int64_t max_steps,
                            const std::function<bool()>& stop_requested) {
  TrainSummary sum;
  const std::int64_t total = cfg_.train.steps;
  const std::int64_t end = max_steps < 0 ? total : std::min(total, first + max_steps);
  const double tokens_per_step = double(cfg_.train.batch_size) * cfg_.model.seq_len;
  const int log_every = int(std::max<std::int64_t>(1, total / 20));
  auto last_flush = clock_type::now();
  sum.next_step = first;
  sum.last_val_loss = last_val_loss_;

  for (std::int64_t s = first; s < end; ++s) {
    const auto t0 = clock_type::now();
    step(s);
    const double tps = tokens_per_step / seconds_since(t0);
    if (run_) {
      const auto r0 = clock_type::now();
      record_step(s, tps);
      if (cfg_.output.trace_every > 0 && (s + 1) % cfg_.output.trace_every == 0)
        record_trace("/trace/train", s);
      // Flush about once a second: a killed run loses at most the last second of metrics.
      if (seconds_since(last_flush) >= 1.0) {
        run_->flush();
        last_flush = clock_type::now();
      }
      record_seconds_ += seconds_since(r0);
    }
    sum.last_loss = last_.loss;
    sum.steps_done = s + 1 - first;
    sum.next_step = s + 1;

    const bool last_step = (s + 1 == total);
    const bool eval_now =
        last_step || (cfg_.train.eval_every > 0 && (s + 1) % cfg_.train.eval_every == 0);
    if (log_ && (s % log_every == 0 || eval_now)) {
      *log_ << "step " << std::setw(6) << s + 1 << "/" << total << "  loss " << std::fixed
            << std::setprecision(4) << last_.loss << "  aux " << last_.aux.weighted << "  lr "
            << std::scientific << std::setprecision(2) << last_lr_ << "  grad_norm "
            << std::fixed << std::setprecision(3) << last_norm_ << "  tokens/s "
            << std::setprecision(0) << tps << "\n"
            << std::defaultfloat << std::flush;
    }
    if (eval_now) {
      sum.last_val_loss = evaluate(s + 1);
      if (log_)
        *log_ << "eval   " << std::setw(6) << s + 1 << "  val_loss " << std::fixed
              << std::setprecision(4) << sum.last_val_loss << "  val_ppl "
              << std::setprecision(2) << std::exp(sum.last_val_loss) << "\n"
              << std::defaultfloat << std::flush;
    }
    if (last_step) break;
    const bool ckpt_due =
        cfg_.output.checkpoint_every > 0 && (s + 1) % cfg_.output.checkpoint_every == 0;
    const bool stop = (s + 1 == end) || (stop_requested && stop_requested());
    if (ckpt_due || stop) save_checkpoint(s + 1);
    if (stop) break;
  }
  sum.finished = (sum.next_step == total);
  return sum;
}

}  // namespace moe
