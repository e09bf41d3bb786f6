#include "train/metrics_recorder.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "train/run_schema.hpp"

namespace moe {
namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// Routing statistics of one MoE layer over the global batch.
struct LayerStats {
  std::vector<std::int64_t> counts;
  std::int64_t dropped;
  double entropy;
};

}  // namespace

MetricsRecorder::MetricsRecorder(RunFile* run, const Transformer<float>& model,
                                 const DeviceBatch& batch, const Comm& comm)
    : run_(run), model_(model), batch_(batch), comm_(comm), last_flush_(clock_type::now()) {}

void MetricsRecorder::record_buckets(const FrequencyBuckets& buckets, double frequency_split) {
  if (!run_) return;
  run_->write_array(schema::kEvalBucketMinCount, buckets.min_count);
  run_->write_array(schema::kEvalBucketTypes, buckets.types);
  run_->set_attr(schema::kEvalFrequencySplit, frequency_split);
}

void MetricsRecorder::record_frequency_classes(double infrequent_train_mass,
                                               std::int64_t infrequent_types) {
  if (!run_) return;
  run_->set_attr(schema::kEvalInfrequentTrainMass, infrequent_train_mass);
  run_->set_attr(schema::kEvalInfrequentTypes, infrequent_types);
}

void MetricsRecorder::record_step(std::int64_t step, const StepMetrics& m, double tokens_per_s) {
  // Routing statistics of the global batch (collectives: every rank takes part).
  const int N = int(batch_.size());
  std::vector<LayerStats> layers;
  for (int i = 0; i < model_.num_moe_layers(); ++i) {
    const auto& layer = model_.moe_layer(i);
    const auto c = host_copy(layer.routing().counts, layer.num_experts());
    LayerStats st{std::vector<std::int64_t>(c.begin(), c.end()), layer.plan().dropped,
                  comm_.sum(layer.router_entropy(N)) / comm_.size()};
    comm_.sum(st.counts.data(), int(st.counts.size()));
    comm_.sum(&st.dropped, 1);
    layers.push_back(std::move(st));
  }
  if (!run_) return;
  run_->append(schema::kTrainStep, std::int64_t(step));
  run_->append(schema::kTrainLoss, m.forward.loss);
  run_->append(schema::kTrainAuxLoss, m.forward.aux.weighted);
  run_->append(schema::kTrainBalanceLoss, m.forward.aux.balance);
  run_->append(schema::kTrainZLoss, m.forward.aux.z);
  run_->append(schema::kTrainClusterLoss, m.forward.aux.cluster);
  run_->append(schema::kTrainLr, m.lr);
  run_->append(schema::kTrainGradNorm, m.grad_norm);
  // The share of clipped steps, e.g. under a badly scaled auxiliary loss, can be read off.
  run_->append(schema::kTrainClipped, std::int64_t(m.clipped ? 1 : 0));
  run_->append(schema::kTrainTokensPerS, tokens_per_s);
  for (int p = 0; p < kNumPhases; ++p)
    run_->append(schema::train_time(phase_name(p)), m.phase_seconds[p]);
  for (int i = 0; i < model_.num_moe_layers(); ++i) {
    const LayerStats& st = layers[i];
    const int block = model_.moe_block(i);
    double total = 0, most = 0;
    for (auto c : st.counts) total += double(c), most = std::max(most, double(c));
    run_->append_row(schema::routing(block, schema::kTokensPerExpert), st.counts);
    run_->append(schema::routing(block, schema::kDropped), st.dropped);
    run_->append(schema::routing(block, schema::kMaxOverMeanLoad),
                 total > 0 ? most / (total / double(st.counts.size()))
                           : std::numeric_limits<double>::quiet_NaN());
    run_->append(schema::routing(block, schema::kRouterEntropy), st.entropy);
  }
}

void MetricsRecorder::record_eval(const EvalResult& r) {
  if (!run_) return;
  const auto t0 = clock_type::now();
  run_->append(schema::kEvalStep, std::int64_t(r.step));
  run_->append(schema::kEvalValLoss, r.val_loss);
  run_->append(schema::kEvalValPpl, std::exp(r.val_loss));
  run_->append(schema::kEvalTokens, r.tokens);
  run_->append_row(schema::kEvalBucketPpl, r.bucket_ppl);
  run_->append(schema::kEvalPplFrequent, r.ppl_frequent);
  run_->append(schema::kEvalPplInfrequent, r.ppl_infrequent);
  run_->append(schema::kEvalInfrequentValShare, r.infrequent_val_share);
  for (std::size_t i = 0; i < r.fluctuation.size(); ++i) {
    const int block = model_.moe_block(int(i));
    run_->append_row(schema::eval_fluctuation(block), r.fluctuation[i]);
    run_->append_row(schema::eval_tokens_per_expert(block), r.tokens_per_expert[i]);
  }
  run_->flush();
  seconds_ += seconds_since(t0);
}

void MetricsRecorder::record_data(RunFile& f, const Corpus& corpus) {
  f.set_attr("/data_description", corpus.description);
  f.set_attr(schema::kDataSplit, corpus.split);
  f.set_attr(schema::kDataTrainTokens, std::int64_t(corpus.train.size()));
  f.set_attr(schema::kDataValTokens, std::int64_t(corpus.val.size()));
  f.set_attr(schema::kDataTestTokens, std::int64_t(corpus.test.size()));
  f.set_attr("/data_unigram_entropy", corpus.unigram_entropy);
  f.set_attr("/data_entropy_rate", corpus.entropy_rate);
}

void MetricsRecorder::record_test(const TestResult& t) {
  if (!run_) return;
  run_->append(schema::kTestStep, t.step);
  run_->append(schema::kTestLoss, t.loss);
  run_->append(schema::kTestPpl, std::exp(t.loss));
  run_->append(schema::kTestTokens, t.tokens);
  run_->flush();
}

void MetricsRecorder::record_trace(const std::string& group, std::int64_t step) {
  const Index N = batch_.size();
  const auto tok = host_copy(batch_.tokens(), N);
  const auto all_tok = comm_.allgather(std::vector<int>(tok.begin(), tok.end()));
  if (run_) {
    run_->append(schema::trace_step(group), std::int64_t(step));
    run_->append_row(schema::trace_tokens(group),
                     std::vector<std::int64_t>(all_tok.begin(), all_tok.end()));
  }
  for (int i = 0; i < model_.num_moe_layers(); ++i) {
    const auto& r = model_.moe_layer(i).routing();
    const Index NK = N * model_.moe_layer(i).router().slots_per_token();
    const auto experts = host_copy(r.expert_of, NK);
    const auto gates = host_copy(r.gate, NK);
    const auto all_experts = comm_.allgather(std::vector<int>(experts.begin(), experts.end()));
    const auto all_gates = comm_.allgather(std::vector<float>(gates.begin(), gates.end()));
    if (!run_) continue;
    const int block = model_.moe_block(i);
    run_->append_row(schema::trace_layer(group, block, "experts"),
                     std::vector<std::int64_t>(all_experts.begin(), all_experts.end()));
    run_->append_row(schema::trace_layer(group, block, "gates"),
                     std::vector<double>(all_gates.begin(), all_gates.end()));
  }
}

void MetricsRecorder::flush_if_due() {
  if (!run_ || seconds_since(last_flush_) < 1.0) return;
  run_->flush();
  last_flush_ = clock_type::now();
}

}  // namespace moe
