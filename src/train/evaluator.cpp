#include "train/evaluator.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "router.hpp"

namespace moe {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// exp(loss sum / count), NaN for no tokens.
double perplexity(double loss_sum, double count) {
  return count > 0 ? std::exp(loss_sum / count) : kNaN;
}

}  // namespace

Evaluator::Evaluator(const Config& cfg, const Corpus& corpus, Transformer<float>& model,
                     DeviceBatch& batch, const Comm& comm)
    : cfg_(cfg),
      corpus_(corpus),
      model_(model),
      batch_(batch),
      comm_(comm),
      buckets_(frequency_buckets(corpus.train_counts, kFrequencyBuckets)),
      infrequent_(infrequent_tokens(corpus.train_counts, frequency_split(), cfg.router.mask_by)),
      probe_(eval_batch(corpus.val, cfg, 0)),
      top1_idx_(std::string("moe::probe.top1"), std::size_t(batch.size())),
      top1_val_(std::string("moe::probe.top1_val"), std::size_t(batch.size())) {}

double Evaluator::frequency_split() const {
  return cfg_.router.mask_ratio > 0 ? cfg_.router.mask_ratio : 0.5;
}

double Evaluator::infrequent_train_mass() const {
  double mass = 0, total = 0;
  for (std::size_t t = 0; t < infrequent_.size(); ++t) {
    total += double(corpus_.train_counts[t]);
    if (infrequent_[t]) mass += double(corpus_.train_counts[t]);
  }
  return total > 0 ? mass / total : std::numeric_limits<double>::quiet_NaN();
}

std::int64_t Evaluator::infrequent_types() const {
  return std::int64_t(std::count(infrequent_.begin(), infrequent_.end(), true));
}

void Evaluator::restore(const std::vector<std::vector<std::int32_t>>& probe_top1,
                        double last_val_loss) {
  prev_top1_ = probe_top1;
  last_val_loss_ = last_val_loss;
}

EvalResult Evaluator::evaluate(std::int64_t steps_done) {
  EvalResult r;
  r.step = steps_done;
  r.val_loss = score_split(corpus_.val, steps_done, r.tokens, &r);
  last_val_loss_ = r.val_loss;
  probe_fluctuation(r);
  return r;
}

TestResult Evaluator::test(std::int64_t steps_done) {
  TestResult t;
  t.step = steps_done;
  t.loss = score_split(corpus_.test, steps_done, t.tokens, nullptr);
  return t;
}

double Evaluator::score_split(const std::vector<std::int32_t>& split, std::int64_t step,
                              std::int64_t& tokens, EvalResult* r) {
  const int nb = num_eval_batches(split, cfg_);
  const std::int64_t windows = eval_windows(split, cfg_);
  const Index N = batch_.size();
  const std::size_t first = batch_.first();
  const int S = cfg_.model.seq_len, B = cfg_.train.batch_size;
  // Sums over this rank's evaluated tokens, reduced over the ranks: [loss, count, bucket loss
  // (5), bucket count (5), frequent loss, frequent count, infrequent loss, infrequent count].
  std::vector<double> sums(2 + 2 * kFrequencyBuckets + 4, 0.0);
  double* bucket = sums.data() + 2;
  if (r) {
    r->tokens_per_expert.assign(model_.num_moe_layers(), {});
    for (int i = 0; i < model_.num_moe_layers(); ++i)
      r->tokens_per_expert[i].assign(model_.moe_layer(i).num_experts(), 0);
  }
  for (int i = 0; i < nb; ++i) {
    const Batch b = eval_batch(split, cfg_, i);
    batch_.upload(b);
    model_.forward(batch_.tokens(), batch_.targets(), /*training=*/false, step);
    const auto losses = host_copy(model_.token_losses(), N);
    for (Index n = 0; n < N; ++n) {
      // Rows past the evaluated windows only fill the last batch's shape.
      const std::int64_t row = std::int64_t(first + n) / S;
      if (std::int64_t(i) * B + row >= windows) continue;
      sums[0] += losses[n];
      sums[1] += 1;
      if (!r) continue;
      const int tok = b.targets[first + n];
      const int k = buckets_.bucket_of[tok];
      bucket[k] += losses[n];
      bucket[kFrequencyBuckets + k] += 1;
      const int c = 2 * kFrequencyBuckets + (infrequent_[tok] ? 2 : 0);
      bucket[c] += losses[n];
      bucket[c + 1] += 1;
    }
    if (!r) continue;
    for (int l = 0; l < model_.num_moe_layers(); ++l) {
      auto& tpe = r->tokens_per_expert[l];
      const auto counts = host_copy(model_.moe_layer(l).routing().counts, Index(tpe.size()));
      for (std::size_t e = 0; e < tpe.size(); ++e) tpe[e] += counts[e];
    }
  }
  comm_.sum(sums.data(), int(sums.size()));
  tokens = windows * S;
  if (r) {
    for (auto& tpe : r->tokens_per_expert) comm_.sum(tpe.data(), int(tpe.size()));
    r->bucket_ppl.resize(kFrequencyBuckets);
    for (int k = 0; k < kFrequencyBuckets; ++k)
      r->bucket_ppl[k] = perplexity(bucket[k], bucket[kFrequencyBuckets + k]);
    const double* cls = bucket + 2 * kFrequencyBuckets;
    r->ppl_frequent = perplexity(cls[0], cls[1]);
    r->ppl_infrequent = perplexity(cls[2], cls[3]);
    r->infrequent_val_share = cls[1] + cls[3] > 0 ? cls[3] / (cls[1] + cls[3]) : kNaN;
  }
  return sums[1] > 0 ? sums[0] / sums[1] : kNaN;
}

void Evaluator::probe_fluctuation(EvalResult& r) {
  // Routing fluctuation on the fixed probe set (StableMoE): the share of probe tokens whose
  // top-1 expert changed since the previous evaluation; NaN at the first one.
  batch_.upload(probe_);
  model_.forward(batch_.tokens(), batch_.targets(), /*training=*/false, r.step);
  auto top1 = probe_top1_now();
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
    r.fluctuation.push_back(row);
  }
  prev_top1_ = std::move(top1);
}

std::vector<std::vector<std::int32_t>> Evaluator::probe_top1_now() {
  std::vector<std::vector<std::int32_t>> out;
  const Index N = batch_.size();
  for (int i = 0; i < model_.num_moe_layers(); ++i) {
    const auto& layer = model_.moe_layer(i);
    // Top-1 expert = argmax of the router distribution the layer used.
    topk_rows<float>(layer.routing().probs, top1_idx_, top1_val_, int(N), layer.num_experts(), 1);
    const auto idx = host_copy(top1_idx_, N);
    const auto all = comm_.allgather(std::vector<int>(idx.begin(), idx.end()));
    out.emplace_back(all.begin(), all.end());
  }
  return out;
}

}  // namespace moe
