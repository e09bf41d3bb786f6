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
double frequency_split(const RouterConfig& r) {
  return r.mask_ratio > 0 ? r.mask_ratio : 0.5;
}

std::string layer_group(const Transformer<float>& m, int i) {
  return "layer_" + std::to_string(m.moe_block(i));
}

}  // namespace

Trainer::Trainer(const Config& cfg, const Corpus& corpus, RunFile* run, std::ostream* log,
                 const Comm* comm)
    : comm_(comm ? comm : &solo_),
      B_local_(cfg.train.batch_size / comm_->size()),
      cfg_(cfg),
      corpus_(corpus),
      run_(run),
      log_(log),
      model_(cfg, B_local_, /*force_moe=*/false, &corpus.train_counts, comm_) {
  model_.init_parameters(cfg.train.seed);
  model_.set_timer(&timer_);
  m_ = Buffer<float>(std::string("moe::adam.m"), std::size_t(model_.num_params()));
  v_ = Buffer<float>(std::string("moe::adam.v"), std::size_t(model_.num_params()));
  const auto N = std::size_t(B_local_) * cfg.model.seq_len;
  tokens_ = Buffer<int>(std::string("moe::batch.tokens"), N);
  targets_ = Buffer<int>(std::string("moe::batch.targets"), N);
  top1_idx_ = Buffer<int>(std::string("moe::probe.top1"), N);
  top1_val_ = Buffer<float>(std::string("moe::probe.top1_val"), N);
  buckets_ = frequency_buckets(corpus.train_counts, kFrequencyBuckets);
  infrequent_ =
      infrequent_tokens(corpus.train_counts, frequency_split(cfg.router), cfg.router.mask_by);
  probe_ = val_batch(corpus, cfg, 0);
  if (run_) {
    run_->write_array("/eval/bucket_min_count", buckets_.min_count);
    run_->write_array("/eval/bucket_types", buckets_.types);
    run_->set_attr("/eval/frequency_split", frequency_split(cfg.router));
    // What "infrequent" covered: its vocabulary types and its share of the training tokens.
    double infrequent_mass = 0, total = 0;
    std::int64_t infrequent_types = 0;
    for (std::size_t t = 0; t < infrequent_.size(); ++t) {
      const double c = double(corpus.train_counts[t]);
      total += c;
      if (infrequent_[t]) infrequent_mass += c, ++infrequent_types;
    }
    run_->set_attr("/eval/infrequent_train_mass", total > 0 ? infrequent_mass / total : kNaN);
    run_->set_attr("/eval/infrequent_types", infrequent_types);
  }
}

void Trainer::upload(const Batch& b) {
  // The one host-to-device copy of a step: this rank's share of the batch's token ids (rank r
  // takes sequences [r * B_local, (r + 1) * B_local) of the global batch).
  auto ht = Kokkos::create_mirror_view(tokens_);
  auto hg = Kokkos::create_mirror_view(targets_);
  const std::size_t n = ht.extent(0), first = n * std::size_t(comm_->rank());
  for (std::size_t i = 0; i < n; ++i) {
    ht(i) = b.tokens[first + i];
    hg(i) = b.targets[first + i];
  }
  Kokkos::deep_copy(tokens_, ht);
  Kokkos::deep_copy(targets_, hg);
}

double Trainer::step(std::int64_t step) {
  timer_.start();
  upload(train_batch(corpus_, cfg_, step));
  model_.zero_grad();
  last_ = model_.forward(tokens_, targets_, /*training=*/true, step);
  last_.loss = global_mean(last_.loss);  // the auxiliary losses are global already
  if (!std::isfinite(last_.loss))
    throw std::runtime_error("non-finite training loss at step " + std::to_string(step));
  model_.backward();

  sync_gradients();
  last_norm_ = clip_gradients();
  if (!std::isfinite(last_norm_))
    throw std::runtime_error("non-finite gradient norm at step " + std::to_string(step));
  last_lr_ = learning_rate(cfg_.train, step);
  const int t = int(step + 1);  // AdamW bias correction counts steps from 1
  for (const TensorInfo& ti : model_.layout().tensors) {
    // Each rank updates the dense tensors and its own experts.
    const auto [off, size] = owned(ti);
    adamw_update<float>(slice(model_.params(), off, size), slice(model_.grads(), off, size),
                        slice(m_, off, size), slice(v_, off, size), size, t, float(last_lr_), 0.9f,
                        0.95f, 1e-8f, ti.decay ? float(cfg_.train.weight_decay) : 0.0f);
  }
  timer_.lap(Phase::Optimizer);
  phase_seconds_ = timer_.take();
  return last_.loss;
}

std::pair<Index, Index> Trainer::owned(const TensorInfo& t) const {
  if (!t.expert) return {t.offset, t.size};
  const Index E = t.shape[0], per_expert = t.size / E;
  const Index local = E / comm_->ep_size(), first = local * comm_->ep_rank();
  return {t.offset + first * per_expert, local * per_expert};
}

double Trainer::global_mean(double local) const {
  return comm_->sum(local) / comm_->size();
}

std::vector<int> Trainer::gather_ints(const std::vector<int>& mine) const {
  return comm_->allgather(mine);
}

void Trainer::sync_gradients() {
  if (!comm_->distributed()) return;
  // Dense tensors: every rank saw different tokens; sum over all ranks. Experts: the owner has
  // every token routed to them within its expert-parallel group; sum over the groups.
  for (const TensorInfo& ti : model_.layout().tensors) {
    const auto [off, size] = owned(ti);
    comm_->sum<float>(slice(model_.grads(), off, size), size,
                      ti.expert ? comm_->replica() : comm_->world());
  }
}

double Trainer::clip_gradients() {
  // Global norm: dense tensors are identical on every rank after the sum; each expert is
  // counted once, on its owner, and the owners' parts are summed over the expert group.
  double dense = 0, experts = 0;
  for (const TensorInfo& ti : model_.layout().tensors) {
    const auto [off, size] = owned(ti);
    (ti.expert ? experts : dense) +=
        grad_norm_squared<float>(slice(model_.grads(), off, size), size);
  }
  if (comm_->ep_size() > 1) {
    MpiTimer t;
    MPI_Allreduce(MPI_IN_PLACE, &experts, 1, MPI_DOUBLE, MPI_SUM, comm_->ep());
  }
  const double norm = std::sqrt(dense + experts);
  const Index n = model_.num_params();
  clip_to_norm<float>(slice(model_.grads(), 0, n), n, norm, cfg_.train.grad_clip);
  return norm;
}

void Trainer::gather_experts(Buffer<float>& buf) {
  // Before a checkpoint: every rank of an expert group gets every expert (blocks are in ep-rank
  // order, so one in-place all-gather per expert tensor).
  if (comm_->ep_size() <= 1) return;
  ExecSpace().fence();
  auto host = Kokkos::create_mirror_view(buf);
  Kokkos::deep_copy(host, buf);
  for (const TensorInfo& ti : model_.layout().tensors) {
    if (!ti.expert) continue;
    const auto [off, size] = owned(ti);
    (void)off;
    MPI_Allgather(MPI_IN_PLACE, 0, MPI_FLOAT, host.data() + ti.offset, int(size), MPI_FLOAT,
                  comm_->ep());
  }
  Kokkos::deep_copy(buf, host);
}

std::vector<std::vector<std::int32_t>> Trainer::probe_top1() {
  std::vector<std::vector<std::int32_t>> out;
  const int N = B_local_ * cfg_.model.seq_len;
  for (int i = 0; i < model_.num_moe_layers(); ++i) {
    const auto& layer = model_.moe_layer(i);
    // Top-1 expert = argmax of the router distribution the layer used.
    topk_rows<float>(layer.routing().probs, top1_idx_, top1_val_, N, layer.num_experts(), 1);
    const auto idx = host_copy(top1_idx_, N);
    const auto all = gather_ints(std::vector<int>(idx.begin(), idx.end()));
    out.emplace_back(all.begin(), all.end());
  }
  return out;
}

double Trainer::evaluate(std::int64_t steps_done) {
  const int nb = num_val_batches(corpus_, cfg_);
  const int N = B_local_ * cfg_.model.seq_len;
  const std::size_t first = std::size_t(N) * std::size_t(comm_->rank());
  // Sums over this rank's tokens, reduced over the ranks: [bucket loss (5), bucket count (5),
  // frequent loss, frequent count, infrequent loss, infrequent count].
  std::vector<double> sums(2 * kFrequencyBuckets + 4, 0.0);
  double total = 0;
  for (int i = 0; i < nb; ++i) {
    const Batch b = val_batch(corpus_, cfg_, i);
    upload(b);
    total += model_.forward(tokens_, targets_, /*training=*/false, steps_done).loss;
    const auto losses = host_copy(model_.token_losses(), N);
    for (int n = 0; n < N; ++n) {
      const int tok = b.targets[first + n];
      const int bucket = buckets_.bucket_of[tok];
      sums[bucket] += losses[n];
      sums[kFrequencyBuckets + bucket] += 1;
      const int c = 2 * kFrequencyBuckets + (infrequent_[tok] ? 2 : 0);
      sums[c] += losses[n];
      sums[c + 1] += 1;
    }
  }
  const double val = global_mean(total / nb);
  comm_->sum(sums.data(), int(sums.size()));
  last_val_loss_ = val;

  // Routing fluctuation on the fixed probe set (StableMoE): the share of probe tokens whose
  // top-1 expert changed since the previous evaluation; NaN at the first one.
  upload(probe_);
  model_.forward(tokens_, targets_, /*training=*/false, steps_done);
  auto top1 = probe_top1();
  std::vector<std::vector<double>> fluctuation;
  for (std::size_t i = 0; i < top1.size(); ++i) {
    double changed[3] = {0, 0, 0}, count[3] = {0, 0, 0};  // all, frequent, infrequent
    if (prev_top1_.size() == top1.size()) {
      for (std::size_t n = 0; n < top1[i].size(); ++n) {
        const int c = infrequent_[probe_.tokens[n]] ? 2 : 1;
        const double d = top1[i][n] != prev_top1_[i][n] ? 1.0 : 0.0;
        changed[0] += d, count[0] += 1;
        changed[c] += d, count[c] += 1;
      }
    }
    std::vector<double> row(3);
    for (int c = 0; c < 3; ++c) row[c] = count[c] > 0 ? changed[c] / count[c] : kNaN;
    fluctuation.push_back(row);
  }
  prev_top1_ = std::move(top1);
  record_trace("/trace/eval", steps_done);  // collective: every rank takes part
  if (!run_) return val;

  const auto t0 = clock_type::now();
  run_->append("/eval/step", std::int64_t(steps_done));
  run_->append("/eval/val_loss", val);
  run_->append("/eval/val_ppl", std::exp(val));
  std::vector<double> ppl(kFrequencyBuckets);
  for (int b = 0; b < kFrequencyBuckets; ++b) {
    const double n = sums[kFrequencyBuckets + b];
    ppl[b] = n > 0 ? std::exp(sums[b] / n) : kNaN;
  }
  run_->append_row("/eval/bucket_ppl", ppl);
  const double* cls = sums.data() + 2 * kFrequencyBuckets;
  run_->append("/eval/ppl_frequent", cls[1] > 0 ? std::exp(cls[0] / cls[1]) : kNaN);
  run_->append("/eval/ppl_infrequent", cls[3] > 0 ? std::exp(cls[2] / cls[3]) : kNaN);
  run_->append("/eval/infrequent_val_share",
               cls[1] + cls[3] > 0 ? cls[3] / (cls[1] + cls[3]) : kNaN);
  for (std::size_t i = 0; i < fluctuation.size(); ++i)
    run_->append_row("/eval/fluctuation/" + layer_group(model_, int(i)), fluctuation[i]);
  run_->flush();
  record_seconds_ += seconds_since(t0);
  return val;
}

void Trainer::record_trace(const std::string& group, std::int64_t step) {
  // Token ids, assigned experts (-1: none) and gates of the last forward, per MoE layer,
  // gathered from every rank in global token order.
  const Index N = Index(B_local_) * cfg_.model.seq_len;
  const auto tok = host_copy(tokens_, N);
  const auto all_tok = gather_ints(std::vector<int>(tok.begin(), tok.end()));
  if (run_) {
    run_->append(group + "/step", std::int64_t(step));
    run_->append_row(group + "/tokens", std::vector<std::int64_t>(all_tok.begin(), all_tok.end()));
  }
  for (int i = 0; i < model_.num_moe_layers(); ++i) {
    const auto& r = model_.moe_layer(i).routing();
    const Index NK = N * model_.moe_layer(i).router().slots_per_token();
    const auto experts = host_copy(r.expert_of, NK);
    const auto gates = host_copy(r.gate, NK);
    const auto all_experts = gather_ints(std::vector<int>(experts.begin(), experts.end()));
    const auto all_gates = comm_->allgather(std::vector<float>(gates.begin(), gates.end()));
    if (!run_) continue;
    const std::string g = group + "/" + layer_group(model_, i);
    run_->append_row(g + "/experts",
                     std::vector<std::int64_t>(all_experts.begin(), all_experts.end()));
    run_->append_row(g + "/gates", std::vector<double>(all_gates.begin(), all_gates.end()));
  }
}

void Trainer::record_step(std::int64_t step, double tokens_per_s) {
  // Routing statistics of the global batch (collectives: every rank takes part).
  const int N = B_local_ * cfg_.model.seq_len;
  struct LayerStats {
    std::vector<std::int64_t> counts;
    std::int64_t dropped;
    double entropy;
  };
  std::vector<LayerStats> layers;
  for (int i = 0; i < model_.num_moe_layers(); ++i) {
    const auto& layer = model_.moe_layer(i);
    const auto c = host_copy(layer.routing().counts, layer.num_experts());
    LayerStats st{std::vector<std::int64_t>(c.begin(), c.end()), layer.plan().dropped,
                  global_mean(layer.router_entropy(N))};
    comm_->sum(st.counts.data(), int(st.counts.size()));
    comm_->sum(&st.dropped, 1);
    layers.push_back(std::move(st));
  }
  if (!run_) return;
  run_->append("/train/step", std::int64_t(step));
  run_->append("/train/loss", last_.loss);
  run_->append("/train/aux_loss", last_.aux.weighted);
  run_->append("/train/balance_loss", last_.aux.balance);
  run_->append("/train/z_loss", last_.aux.z);
  run_->append("/train/cluster_loss", last_.aux.cluster);
  run_->append("/train/lr", last_lr_);
  run_->append("/train/grad_norm", last_norm_);
  // 1 when the clip scaled this step's gradients down (clip_to_norm's condition), so the share
  // of clipped steps, e.g. under a badly scaled auxiliary loss, can be read off the run.
  const double clip = cfg_.train.grad_clip;
  run_->append("/train/clipped", std::int64_t(clip > 0 && last_norm_ > clip ? 1 : 0));
  run_->append("/train/tokens_per_s", tokens_per_s);
  for (int p = 0; p < kNumPhases; ++p)
    run_->append(std::string("/train/time/") + phase_name(p), phase_seconds_[p]);
  for (int i = 0; i < model_.num_moe_layers(); ++i) {
    const LayerStats& st = layers[i];
    const std::string g = "/routing/" + layer_group(model_, i);
    double total = 0, most = 0;
    for (auto c : st.counts) total += double(c), most = std::max(most, double(c));
    run_->append_row(g + "/tokens_per_expert", st.counts);
    run_->append(g + "/dropped", st.dropped);
    run_->append(g + "/max_over_mean_load",
                 total > 0 ? most / (total / double(st.counts.size())) : kNaN);
    run_->append(g + "/router_entropy", st.entropy);
  }
}

void Trainer::save_checkpoint(std::int64_t next_step) {
  // Collective: the expert groups first complete every rank's copy of the experts; then rank 0
  // (the one with the run file) writes.
  gather_experts(model_.params());
  gather_experts(m_);
  gather_experts(v_);
  if (!run_) return;
  run_->flush();
  Checkpoint ck;
  ck.next_step = next_step;
  ck.config_text = config_to_toml(cfg_);
  ck.shape = model_shape(cfg_.model);
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

void Trainer::guarded_step(std::int64_t s) {
  // A failure on one rank must end every rank, with its reason: agree after each step.
  std::string error;
  try {
    step(s);
  } catch (const std::exception& e) {
    error = e.what();
  }
  error = agreed_error(comm_->world(), error);  // a one-rank Comm's world is MPI_COMM_NULL
  if (!error.empty()) throw std::runtime_error(error);
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
    guarded_step(s);
    const double tps = tokens_per_step / seconds_since(t0);
    const auto r0 = clock_type::now();
    record_step(s, tps);
    if (cfg_.output.trace_every > 0 && (s + 1) % cfg_.output.trace_every == 0)
      record_trace("/trace/train", s);
    // Flush about once a second: a killed run loses at most the last second of metrics.
    if (run_ && seconds_since(last_flush) >= 1.0) {
      run_->flush();
      last_flush = clock_type::now();
    }
    record_seconds_ += seconds_since(r0);
    sum.last_loss = last_.loss;
    sum.steps_done = s + 1 - first;
    sum.next_step = s + 1;

    const bool last_step = (s + 1 == total);
    const bool eval_now =
        last_step || (cfg_.train.eval_every > 0 && (s + 1) % cfg_.train.eval_every == 0);
    if (log_ && (s % log_every == 0 || eval_now)) {
      *log_ << "step " << std::setw(6) << s + 1 << "/" << total << "  loss " << std::fixed
            << std::setprecision(4) << last_.loss << "  aux " << last_.aux.weighted << "  lr "
            << std::scientific << std::setprecision(2) << last_lr_ << "  grad_norm " << std::fixed
            << std::setprecision(3) << last_norm_ << "  tokens/s " << std::setprecision(0) << tps
            << "\n"
            << std::defaultfloat << std::flush;
    }
    if (eval_now) {
      sum.last_val_loss = evaluate(s + 1);
      if (log_)
        *log_ << "eval   " << std::setw(6) << s + 1 << "  val_loss " << std::fixed
              << std::setprecision(4) << sum.last_val_loss << "  val_ppl " << std::setprecision(2)
              << std::exp(sum.last_val_loss) << "\n"
              << std::defaultfloat << std::flush;
    }
    if (last_step) break;
    const bool ckpt_due =
        cfg_.output.checkpoint_every > 0 && (s + 1) % cfg_.output.checkpoint_every == 0;
    // Every rank must stop at the same step: a signal may reach them at different moments.
    const bool asked = comm_->sum((stop_requested && stop_requested()) ? 1.0 : 0.0) > 0;
    const bool stop = (s + 1 == end) || asked;
    if (ckpt_due || stop) save_checkpoint(s + 1);
    if (stop) break;
  }
  sum.finished = (sum.next_step == total);
  return sum;
}

}  // namespace moe
